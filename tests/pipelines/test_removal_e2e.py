"""End to end: property removal on the simulated study (tiny test env) in one ``kedro run``.

The simulation plants ``position_in_sentence`` in the PROP region (half of WM); the run annotates
the words, probes the source layer, removes the property by residual and INLP (fitted per fold
on training words), encodes the removed features and tests the drop against the source with the
paired block-swap test. Checks: the drop table's r equal the score table's (one scoring path),
the planted region loses alignment while the pure-noise WM does not gain any, INLP leaves a
fresh held-out probe at the majority baseline, and the conditions are described.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro_project import copy_project, run_kedro

pytestmark = pytest.mark.slow
PROP = "position_in_sentence"
CONDS = {m: f"pretrained-removed-{PROP}-{m}" for m in ("residual", "inlp")}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    from tiny_gpt2 import make_tiny_gpt2

    from brainalign.core.synthetic.study import story_texts

    root = tmp_path_factory.mktemp("removal")
    gpt2 = make_tiny_gpt2(root / "gpt2", " ".join(story_texts().values()).split(), seed=0)

    def update(p):
        p["layers"] = [4]
        # a causal model beside MiniLM (method card 4 removes from BERT and GPT-2): a tiny random GPT-2
        p["conditions"] = {**p["conditions"], "gpt2": {"kind": "text", "model": str(gpt2), "context_words": 5,
                                                       "layers": [2]}}
        p["removal"] = {"enabled": True, "source": ["pretrained", "gpt2"], "layers": None,
                        "drop_test": {"n_perm": 200, "block_len": 5}}
        p["synthetic"] = {**p["synthetic"], "property_snr": [1.0, 2.0]}
        p["encoding"] = {**p["encoding"], "bootstrap": {"enabled": False}}

    dest = copy_project(root / "project", env="test", update=update)
    run_kedro(dest, "run", "--env", "test", timeout=900)
    return dest


def _read(project, rel):
    path = project / "data" / rel
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False)


def test_drop_table_scores_what_the_score_table_scores(project):
    scores = _read(project, "07_model_output/encoding_scores.parquet")
    for method, cond in CONDS.items():
        cells = sorted((project / "data/07_model_output/removal_drop").glob(f"*/{cond}/layer_4.parquet"))
        assert len(cells) == 2
        d = pd.concat(pd.read_parquet(c) for c in cells)
        m = d.merge(scores[(scores["condition"] == "pretrained") & (scores["layer"] == 4)][["subject", "target", "r"]],
                    on=["subject", "target"]).merge(
            scores[scores["condition"] == cond][["subject", "target", "r"]].rename(columns={"r": "r_rm"}),
            on=["subject", "target"])
        assert len(m) == len(d)
        np.testing.assert_allclose(m["r_base"], m["r"], atol=1e-5)
        np.testing.assert_allclose(m["r_removed"], m["r_rm"], atol=1e-5)
        assert ((d["p"] > 0) & (d["p"] <= 1)).all()


def test_planted_region_loses_alignment(project):
    t = pd.read_csv(project / "data/08_reporting/removal_drop.csv")
    sub = t[t["subject"] != "group"]
    for cond in CONDS.values():
        c = sub[sub["condition"] == cond].set_index(["subject", "roi"])["drop"].unstack()
        assert (c["PROP"] > 0.03).all(), c
        assert (c["PROP"] > c["WM"] + 0.03).all(), c
    assert set(t["test"]) == {"block_swap", "block_swap_fixed", "sign_flip"}
    fixed = t[t["test"] == "block_swap_fixed"].set_index(["condition", "roi"])
    for cond in CONDS.values():   # pooled over the two subjects (160 words a story here: significance is
        # measured on the default study, docs/methods.md)
        assert fixed.loc[(cond, "PROP"), "p"] < fixed.loc[(cond, "WM"), "p"], fixed
    png = project / "data/08_reporting/removal_drop.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probes_before_and_after(project):
    """Two paths to the same probe agree (the cross-validated probe of the source layer and the
    removal's own held-out probe of the original features); INLP lowers it. On this tiny study
    (one training story of 160 words per fold) the majority class of the training story is rare
    in the test story, so the at-baseline check lives in tests/core/test_removal_apply.py and the
    default study (docs/methods.md)."""
    p = pd.read_csv(project / "data/08_reporting/probe_accuracy.csv")
    p = p[p["condition"] == "pretrained"].set_index("features")
    assert p.loc["original", "accuracy"] > p.loc["original", "baseline"] + 0.1
    for m in ("residual", "inlp"):
        assert p.loc[f"removed-{m}", "accuracy_before"] == pytest.approx(p.loc["original", "accuracy"], abs=1e-9)
    assert p.loc["removed-inlp", "accuracy"] < p.loc["removed-inlp", "accuracy_before"]
    summary = json.loads((project / "data/07_model_output/removal" / CONDS["inlp"] / "layer_4.json").read_text())
    folds = pd.read_parquet(project / "data/05_model_input/folds.parquet")
    assert [f["fold"] for f in summary["folds"]] == sorted(folds["fold"].unique())
    assert all(f["rank_removed"] > 0 for f in summary["folds"])


def test_conditions_and_annotations(project):
    c = pd.read_csv(project / "data/08_reporting/conditions.csv", keep_default_na=False).set_index("condition")
    assert c.loc[CONDS["inlp"], "method"] == "removed-inlp" and c.loc[CONDS["inlp"], "source"] == "pretrained"
    assert c.loc[CONDS["residual"], "details"] == f"removed-{PROP}"
    words = _read(project, "02_intermediate/words.parquet")
    ann = _read(project, "02_intermediate/annotations.parquet")
    assert len(ann) == len(words)
    # position in sentence, by hand from the words table's sentence ids
    expected = words.groupby(["story", "sentence_id"]).cumcount()
    np.testing.assert_array_equal(ann[PROP].to_numpy(), expected.to_numpy())


def test_a_causal_model_goes_through_the_same_removal(project):
    t = pd.read_csv(project / "data/08_reporting/removal_drop.csv")
    g = t[t["base_condition"] == "gpt2"]
    assert set(g["condition"]) == {f"gpt2-removed-{PROP}-{m}" for m in ("residual", "inlp")}
    assert set(g["layer"]) == {2} and set(g["subject"]) == {"sub-01", "sub-02", "group"}
    p = pd.read_csv(project / "data/08_reporting/probe_accuracy.csv")
    assert set(p.loc[p["condition"] == "gpt2", "features"]) == {"original", "removed-residual", "removed-inlp"}
