"""End to end: decoding and representational similarity on the simulated study (tiny test env) in
one ``kedro run``.

Checks against independent references: the group table's means against a pandas groupby of the
score table, the similarity table's CKA and RSA against direct formulas (numpy HSIC, scipy pdist +
spearmanr) on the saved TR features, and the planted ground truth: ROIs whose voxels carry the
planted layer-4 signal decode better than the white-matter noise, which stays near chance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro_project import copy_project, run_kedro
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    def update(p):
        p["layers"] = [4]
        p["conditions"] = {**p["conditions"], "random_init": {"kind": "control", "control": "random_init",
                                                              "model": "all-MiniLM-L6-v2", "seed": 0,
                                                              "context_words": 5},
                           # fitted per outer fold (the fold rule): decoded fold by fold
                           "residual": {"kind": "derived", "source": "pretrained", "transform": "residual",
                                        "against": "random_init"}}
        p["decoding"] = {"enabled": True, "kinds": None, "layers": [4], "null_model": {"n_draws": 19, "min_shift": 15}}
        p["encoding"] = {**p["encoding"], "bootstrap": {"enabled": False}}
        p["synthetic"] = {**p["synthetic"], "n_subjects": 3}

    dest = copy_project(tmp_path_factory.mktemp("decoding") / "project", env="test", update=update)
    run_kedro(dest, "run", "--env", "test", timeout=900)
    return dest


def _csv(project, rel):
    return pd.read_csv(project / "data" / rel, keep_default_na=False, na_values=[""])


def test_decoding_table(project):
    d = pd.read_parquet(project / "data/07_model_output/decoding_scores.parquet")
    targets = pd.read_parquet(project / "data/03_primary/targets/sub-01.parquet")
    rois = list(dict.fromkeys(targets["roi"]))
    assert set(d["condition"]) == {"pretrained", "random_init", "residual"} and set(d["layer"]) == {4}
    assert set(d["subject"]) == {"sub-01", "sub-02", "sub-03"}
    assert set(d.loc[d["unit"] == "roi", "roi"]) == set(rois)
    for r in d[d["unit"] == "roi"].itertuples():
        assert r.n_targets == int((targets["roi"] == r.roi).sum()) or r.subject != "sub-01"
    assert ((d["pairwise_accuracy"] >= 0) & (d["pairwise_accuracy"] <= 1)).all()
    # n_pairs: all pairs within each fold's test items (2 stories: 2 folds)
    assert (d["n_pairs"] < d["n_items"] * (d["n_items"] - 1) / 2).all()
    assert ((d["p"] >= 1 / 20) & (d["p"] <= 1)).all() and d["q"].between(0, 1).all()


def test_planted_rois_decode_above_noise(project):
    d = pd.read_parquet(project / "data/07_model_output/decoding_scores.parquet")
    truth = pd.read_parquet(project / "data/01_raw/synthetic/ground_truth.parquet")
    # ROIs whose voxels carry the planted layer-4 semantic signal (the features decoded here)
    t = truth.assign(semantic=truth["expected_r"] * truth["semantic_share"]).groupby("roi")["semantic"].mean()
    planted = t[t > 0.25].index
    pre = d[(d["condition"] == "pretrained") & (d["unit"] == "roi")].groupby("roi")["pairwise_accuracy"].mean()
    assert len(planted) >= 2 and "WM" in pre.index
    assert (pre[planted] > 0.6).all(), pre
    assert abs(pre["WM"] - 0.5) < 0.1, pre
    assert (pre[planted] > pre["WM"] + 0.1).all(), pre


def test_group_summary_against_pandas(project):
    d = pd.read_parquet(project / "data/07_model_output/decoding_scores.parquet")
    s = _csv(project, "08_reporting/decoding_summary.csv")
    ref = d.groupby(["condition", "layer", "roi"])["pairwise_accuracy"].agg(["mean", "std", "count"])
    m = s.set_index(["condition", "layer", "roi"]).join(ref)
    np.testing.assert_allclose(m["mean_accuracy"], m["mean"], atol=1e-9)
    np.testing.assert_allclose(m["sem_accuracy"], m["std"] / np.sqrt(m["count"]), atol=1e-9)
    assert (m["n_subjects"] == 3).all()
    assert (project / "data/08_reporting/decoding.png").stat().st_size > 10_000


def test_similarity_against_direct_formulas(project):
    sim = _csv(project, "08_reporting/similarity.csv")
    assert set(sim["condition"]) == {"random_init", "residual"}
    assert (sim.loc[sim["condition"] == "residual", "base_condition"] == "pretrained").all()
    row = sim[(sim["condition"] == "random_init") & (sim["layer"] == 4)]
    assert len(row) == 1 and row["base_condition"].iloc[0] == "pretrained"
    grids = pd.read_parquet(next((project / "data").glob("**/tr_grids.parquet")))
    stories = grids["story"].tolist()

    def block0(cond):
        root = project / "data/04_feature" / cond / "tr/layer_4"
        X = np.concatenate([np.load(root / f"{s}.npy") for s in stories])
        return X[:, : X.shape[1] // 4].astype(np.float64)   # delays [1, 2, 3, 4]: the first block

    A, B = block0("random_init"), block0("pretrained")
    ok = np.any(A != 0, 1) & np.any(B != 0, 1)   # two folds, each story held out once: all rows
    A, B = A[ok], B[ok]
    n = len(A)
    H = np.eye(n) - 1 / n
    K, L = H @ A @ A.T @ H, H @ B @ B.T @ H
    cka = np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L))
    np.testing.assert_allclose(row["cka"].iloc[0], cka, rtol=1e-6)
    assert row["n_items"].iloc[0] == n
    if n <= 2000:
        np.testing.assert_allclose(row["rsa"].iloc[0], spearmanr(pdist(A, "correlation"),
                                                                 pdist(B, "correlation"))[0], rtol=1e-6)
