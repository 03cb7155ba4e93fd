"""``kedro run --env pereira`` on a tiny Pereira et al. 2018 fixture (tests/pereira_fixture.py:
2 subjects x 2 experiments (48 and 36 sentences from three alternating topics), 20 voxels of which
8 language voxels carry a planted topic signal and 12 are noise; the visual atlas labels no voxel).

Checks: the score table is complete and finite for the voxels of the networks (the 4 voxels in
no network are left out by ``voxels: networks``), the planted voxels score above the noise voxels,
the sentence features are one row per sentence (box downsampling, no delays, no trimming), the
words table keeps the reader's sentence ids, and the ROI summary is the mean over subjects."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro_project import copy_project, only_conditions, run_kedro
from pereira_fixture import EXPECTED, NOISE, PLANTED, SUBJECTS, make_sentences, write_pereira_study


@pytest.mark.slow
def test_pereira_env_run(tmp_path):
    study = write_pereira_study(tmp_path / "pereira2018")

    def small(params):
        params["layers"] = [0, 4]
        only_conditions(params, pretrained={"model": "all-MiniLM-L6-v2", "context_words": 64})
        params["encoding"]["alphas"] = {"low": 0.1, "high": 1.0e5, "n": 7}
        params["encoding"]["null_model"] = {"enabled": True, "min_shift": 10}
        params["decoding"] = {"null_model": {"min_shift": 10, "n_draws": 19}}   # 48 sentences per experiment here

    proj = copy_project(tmp_path / "proj", "pereira", small)
    proc = run_kedro(proj, "run", "--env", "pereira", env_vars={"BRAINALIGN_PEREIRA_DIR": str(study)})
    log = proc.stdout + proc.stderr
    assert "atlas 'visual' labels no voxel" in log

    out = proj / "data" / "pereira"
    words = pd.read_parquet(out / "02_intermediate" / "words.parquet")
    for story in ("exp2", "exp3"):
        sentences = make_sentences(story)[0]
        w = words[words.story == story]
        assert w["sentence_id"].nunique() == len(sentences)
        # sentence k's words are the words of keySentences[k], in [k, k + 1) s
        for k in (0, len(sentences) - 1):
            assert w[w.sentence_id == k]["word"].tolist() == sentences[k].split()
        assert ((w["onset"] >= w["sentence_id"]) & (w["offset"] < w["sentence_id"] + 1)).all()
    feats = np.load(out / "04_feature" / "pretrained" / "tr" / "layer_4" / "exp2.npy")
    assert feats.shape == (len(make_sentences("exp2")[0]), 384)  # one row per sentence, no delays
    assert (np.abs(feats).sum(1) > 0).all()                      # every sentence landed in its "TR"

    scores = pd.read_parquet(out / "07_model_output" / "encoding_scores.parquet")
    assert set(scores["subject"]) == set(SUBJECTS) and set(scores["layer"]) == {0, 4}
    in_networks = [v for v, (_, net) in EXPECTED.items() if net != "none"]
    for _, g in scores.groupby(["subject", "layer"]):
        assert sorted(g["target"]) == sorted(f"v{v}" for v in in_networks)
    assert not scores[["r", "r2", "alpha", "r_null"]].isna().any().any()
    roi = scores.drop_duplicates("target").set_index("target")["roi"]
    assert all(roi[f"v{v}"] == EXPECTED[v][0] for v in in_networks)
    layer4 = scores[scores.layer == 4]
    planted = layer4[layer4.target.isin([f"v{v}" for v in PLANTED])]["r"]
    noise = layer4[layer4.target.isin([f"v{v}" for v in NOISE])]["r"]
    assert planted.mean() > 0.4 and planted.mean() > noise.mean() + 0.3, (planted.mean(), noise.mean())

    summary = pd.read_csv(out / "08_reporting" / "roi_summary.csv")
    assert (summary["n_subjects"] == 2).all() and np.isfinite(summary["mean_r"]).all()
    got = summary[(summary.layer == 4) & (summary.roi == "LH_IFG")]["mean_r"].item()
    ref = layer4[layer4.roi == "LH_IFG"].groupby("subject")["r"].mean().mean()
    assert got == pytest.approx(ref, abs=1e-9)

    # decoding: the items are sentences (no delays), each held out once; the planted language
    # network decodes the sentences' topic pattern, the noise networks sit at chance
    dec = pd.read_parquet(out / "07_model_output" / "decoding_scores.parquet")
    assert set(dec["subject"]) == set(SUBJECTS) and set(dec["layer"]) == {4}
    n_sentences = sum(len(make_sentences(s)[0]) for s in ("exp2", "exp3"))
    assert (dec["n_items"] == n_sentences).all(), dec[["roi", "n_items"]]
    # a network whose targets are one ROI's (default mode: one ROI here) is decoded once, as that ROI
    dmn_roi = EXPECTED[12][0]
    assert set(dec.loc[dec["unit"] == "network", "roi"]) == {"language", "multiple_demand"}
    acc = dec.set_index(["subject", "unit", "roi"])["pairwise_accuracy"]
    for subject in SUBJECTS:
        language = acc[(subject, "network", "language")]
        noise = [acc[(subject, "network", "multiple_demand")], acc[(subject, "roi", dmn_roi)]]
        assert language > 0.65 and max(noise) < language - 0.1, (subject, language, noise)
        # the noise units are within their permutation null (the language network's own p is not
        # checked: the fixture's topics repeat every 3 passages, so some circular shifts realign them)
        p = dec.set_index(["subject", "unit", "roi"])["p"]
        noise_p = [p[(subject, "network", "multiple_demand")], p[(subject, "roi", dmn_roi)]]
        assert min(noise_p) > 0.1, (subject, noise_p)
