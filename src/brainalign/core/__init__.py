"""The science of brainalign, importable without Kedro.

Modules: stimuli (word tables, TextGrid, TR grids), resample (Lanczos, FIR, HRF), features
(layer-wise extraction, model registry), folds (cross-validation), ridge (himalaya-backed CV
encoding), metrics (r, R2, inter-subject correlation), preprocess (trim, detrend, exclusions),
synthetic (the simulated default study), stats (summaries), plots.
"""
