"""Brain-tuning objectives on the default study: held-out gain of one outer fold, tuned vs untuned.

Reads the data folder of a finished default run (``kedro run``: words, TR grids, folds, responses
and targets of sub-01..03), brain-tunes MiniLM on sub-01 and sub-02 for one outer fold with the
``TuningConfig`` fields given as JSON (plus ``fold`` and ``permuted``: the brain-permuted control),
then fits a ridge (himalaya ``RidgeCV``, alphas 1e0..1e6, 4 inner folds) of the layer-6 FIR design on
the fold's training TRs and scores it on the fold's test story, per subject and ROI, for the untuned
and the tuned backbone. Prints the untuned r, the gain per subject x ROI and the mean gain over the
planted ROIs (all but WM).

    PYTHONPATH=src python benchmarks/brain_tuning_objective.py data '{"objective": "ridge_cv", "epochs": 2, "steps_per_epoch": 4, "lr_backbone": 2e-4}'
"""
import glob, sys, time, json, copy
from pathlib import Path
import numpy as np, pandas as pd, torch
from brainalign.core.brain_tuning.data import SampleIndex, select_targets, split_validation, training_matrix
from brainalign.core.encoding.metrics import pearson_r
from brainalign.core.brain_tuning.run import load_backbone
from brainalign.core.brain_tuning.stimulus import STIMULI
from brainalign.core.brain_tuning.train import TuningConfig, brain_tune
from brainalign.core.brain_tuning.model import BrainTuner

D = Path(sys.argv[1] if len(sys.argv) > 1 else "data")
cfg_over = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
fold = int(cfg_over.pop("fold", 0))
permuted = bool(cfg_over.pop("permuted", False))
words = pd.read_parquet(D / "02_intermediate/words.parquet")
grids = pd.read_parquet(D / "02_intermediate/tr_grids.parquet")
folds = pd.read_parquet(D / "05_model_input/folds.parquet")
subs = ["sub-01", "sub-02", "sub-03"]
resp = {s: {Path(f).stem: np.load(f) for f in glob.glob(str(D / f"03_primary/responses/{s}/*.npy"))} for s in subs}
targ = {s: pd.read_parquet(D / f"03_primary/targets/{s}.parquet") for s in subs}
index = SampleIndex.from_grids(grids)
train = np.sort(folds.loc[(folds.fold == fold) & (folds.role == "train"), "sample"].to_numpy(np.int64))
test = np.sort(folds.loc[(folds.fold == fold) & (folds.role == "test"), "sample"].to_numpy(np.int64))
fit, val = split_validation(index, train, "auto", 1, 0.2, 5, fold=fold)
tuned_subs = ["sub-01", "sub-02"]
rois = ["NONLIN", "aTL", "pSTS", "AG", "IFG"]
columns = select_targets({s: targ[s] for s in tuned_subs}, {s: resp[s] for s in tuned_subs}, index, train, rois, None)
proc, backbone, fam = load_backbone("text", "all-MiniLM-L6-v2", "cpu", None)
stim = STIMULI["text"](proc, words, grids, 20, "midpoint", 512)
base = dict(epochs=3, lr_backbone=2e-5, lr_head=1e-5, chunk_trs=16, batch_size=32, patience=1, train_top_layers=2,
            delays=(1, 2, 3, 4))
base.update(cfg_over)
config = TuningConfig(**base)
untuned = copy.deepcopy(backbone)
t0 = time.perf_counter()
train_resp = {s: resp[s] for s in tuned_subs}
if permuted:
    from brainalign.core.brain_tuning.run import permuted_responses
    train_resp = permuted_responses(train_resp, list(index.stories), 10, 1)
model, hist, summ = brain_tune(backbone, stim, train_resp, columns, index, fit, val, config,
                               desc="exp")
secs = time.perf_counter() - t0

def story_rows(samples):
    return [(index.stories[int(index.story[c[0]])], index.volume[c]) for c in index.segments(samples)]

def design(bb, samples):
    m = BrainTuner(bb, stim, 6, (1, 2, 3, 4), {}, 384, 32)
    m.mu.copy_(model.mu); m.sd.copy_(model.sd)
    m.eval()
    with torch.no_grad():
        return torch.cat([m.design(st, v) for st, v in story_rows(samples)]).numpy()

def Ymat(s, samples):
    return training_matrix(resp[s], index, samples, np.arange(len(targ[s])))

from himalaya.ridge import RidgeCV
from sklearn.model_selection import KFold
res = {}
for name, bb in (("untuned", untuned), ("tuned", backbone)):
    Xtr, Xte = design(bb, train), design(bb, test)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-8
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    for s in subs:
        Ytr, Yte = Ymat(s, train), Ymat(s, test)
        ym, ys = Ytr.mean(0), Ytr.std(0) + 1e-8
        m = RidgeCV(alphas=np.logspace(0, 6, 13), cv=KFold(4), solver_params={"warn": False})
        m.fit(Xtr, (Ytr - ym) / ys)
        r = pearson_r(m.predict(Xte), (Yte - ym) / ys)
        t = targ[s]
        for roi in ["pSTS", "aTL", "AG", "IFG", "A1", "NONLIN", "PROP", "WM"]:
            res[(name, s, roi)] = float(np.nanmean(r[(t.roi == roi).to_numpy()]))
out = pd.Series(res).unstack(0)
out["gain"] = out["tuned"] - out["untuned"]
print(json.dumps(cfg_over), f"fold {fold} best_epoch {summ['best_epoch']} {secs:.0f}s",
      [(h['epoch'], round(h['val_loss'], 4), round(h['val_r'], 4)) for h in hist])
print(out["untuned"].unstack(1).round(3).to_string())
g = out["gain"].unstack(1)
planted = ["pSTS", "aTL", "AG", "IFG", "A1", "NONLIN", "PROP"]
print(g.round(4).to_string())
print("mean gain over planted ROIs per subject:", g[planted].mean(axis=1).round(4).to_dict())
