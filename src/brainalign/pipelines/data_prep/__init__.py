"""data_prep: study files -> words, TR grids, folds, per-subject responses, noise ceiling."""
from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
