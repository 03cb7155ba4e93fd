"""The simulated study (core/synthetic.py) and its planted ground truth.

``expected_r`` is documented as the correlation, over the kept TRs, of a voxel's noise-free signal
with its simulated response (signal + unit-variance Gaussian noise; signal scaled to variance
``snr``), 0 for pure-noise voxels. The tests rebuild the noise-free signal from the written BOLD
arrays and the random draws the simulation made (recorded by wrapping the random generator), then
compute the correlation with numpy; and check it against the theoretical value
``sqrt(snr / (1 + snr))`` that a variance ratio ``snr`` implies.
"""
from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.core.synthetic import study as S


class RecordingRng:
    """Wraps a numpy Generator and records the draws of ``standard_normal`` and ``normal``."""

    def __init__(self, rng):
        self._rng = rng
        self.standard_normal_draws = []
        self.normal_draws = []

    def standard_normal(self, *args, **kwargs):
        out = self._rng.standard_normal(*args, **kwargs)
        self.standard_normal_draws.append(np.array(out, copy=True))
        return out

    def normal(self, *args, **kwargs):
        out = self._rng.normal(*args, **kwargs)
        self.normal_draws.append(np.array(out, copy=True))
        return out

    def __getattr__(self, name):
        return getattr(self._rng, name)


def _simulate_recorded(monkeypatch, tiny_study_config, n_words=150, n_subjects=2, seed=11):
    cfg = tiny_study_config
    rng = np.random.default_rng(seed)
    words = {s: S.time_words(t, rng, max_words=n_words) for s, t in S.story_texts(cfg["stories"]).items()}
    feats = {s: rng.standard_normal((len(w), 10)) for s, w in words.items()}
    recorders = []
    real_default_rng = np.random.default_rng

    def recording_default_rng(*args, **kwargs):
        rec = RecordingRng(real_default_rng(*args, **kwargs))
        recorders.append(rec)
        return rec

    monkeypatch.setattr(np.random, "default_rng", recording_default_rng)
    study = S.simulate_study(feats, words, n_subjects=n_subjects, tr=cfg["tr"],
                             volume_shape=cfg["volume_shape"], trim_start=cfg["trim_start"],
                             trim_end=cfg["trim_end"], seed=seed)
    monkeypatch.undo()
    assert len(recorders) == 1
    return study, recorders[0]


@pytest.fixture
def recorded(monkeypatch, tiny_study_config):
    return _simulate_recorded(monkeypatch, tiny_study_config)


def _decompose(study, rec, cfg):
    """Per subject: (noise-free signal, noisy response) over the kept TRs of all stories, from the
    BOLD arrays and the recorded noise / drift draws."""
    stories = list(study.words)
    n_trs = {s: study.bold[("sub-01", s)].shape[-1] for s in stories}
    vox = np.nonzero(study.mask)
    n_vox = len(vox[0])
    noise = [d for d in rec.standard_normal_draws
             if d.ndim == 2 and d.shape[1] == n_vox and d.shape[0] in set(n_trs.values())]
    drift_scale = [d for d in rec.normal_draws if d.shape == (n_vox,)]
    subjects = sorted({sub for sub, _ in study.bold})
    assert len(noise) == len(drift_scale) == len(subjects) * len(stories)
    out, k = {}, 0
    for subject in subjects:
        sig, resp = [], []
        for s in stories:
            n = n_trs[s]
            assert noise[k].shape == (n, n_vox)
            y = study.bold[(subject, s)][vox].T.astype(np.float64) / 5.0  # baseline/5 + resp + drift
            drift = np.linspace(-1, 1, n)[:, None] * drift_scale[k]
            keep = slice(cfg["trim_start"], n - cfg["trim_end"])
            resp.append((y - drift)[keep])
            sig.append((y - drift - noise[k])[keep])
            k += 1
        out[subject] = (np.concatenate(sig), np.concatenate(resp))
    return out


def _corr_columns(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a ** 2).sum(0) * (b ** 2).sum(0))


def test_expected_r_is_the_signal_response_correlation(recorded, tiny_study_config):
    study, rec = recorded
    parts = _decompose(study, rec, tiny_study_config)
    gt = study.ground_truth
    tids = S.target_ids(study.mask)
    for subject, (sig, resp) in parts.items():
        g = gt[gt["subject"] == subject].set_index("target").loc[tids]
        signal_voxels = ~g["is_noise"].to_numpy()
        assert signal_voxels.sum() > 20
        r = _corr_columns(sig[:, signal_voxels], resp[:, signal_voxels])
        np.testing.assert_allclose(g["expected_r"].to_numpy()[signal_voxels], r, atol=1e-4)
        # the signal has variance snr (noise has variance 1) over the kept TRs
        np.testing.assert_allclose(sig[:, signal_voxels].std(0),
                                   np.sqrt(g["snr"].to_numpy()[signal_voxels]), rtol=2e-3)
        # pure-noise voxels: no signal at all, expected_r exactly 0
        assert sig[:, ~signal_voxels].std(0).max() < 1e-3
        assert (g["expected_r"].to_numpy()[~signal_voxels] == 0).all()


def test_expected_r_follows_the_snr(monkeypatch, tiny_study_config):
    """r of signal (variance snr) with signal + unit noise is sqrt(snr / (1 + snr)) in expectation."""
    study, _ = _simulate_recorded(monkeypatch, tiny_study_config, n_words=250, n_subjects=3, seed=5)
    gt = study.ground_truth
    sig = gt[~gt["is_noise"]]
    theory = np.sqrt(sig["snr"] / (1 + sig["snr"]))
    assert np.corrcoef(theory, sig["expected_r"])[0, 1] > 0.9
    assert np.abs(theory - sig["expected_r"]).mean() < 0.1
    assert np.median(sig["expected_r"] - theory) == pytest.approx(0, abs=0.05)


def test_pure_noise_voxels(tiny_simulated_study):
    gt = tiny_simulated_study.ground_truth
    noise = gt[gt["is_noise"]]
    assert len(noise) > 0
    assert (noise["expected_r"] == 0).all()
    assert (noise["snr"] == 0).all()
    assert (noise["semantic_share"] == 0).all()
    wm = gt[gt["roi"] == "WM"]
    assert len(wm) > 0 and wm["is_noise"].all()
    # voxels with a clear signal (theoretical r > 0.48) score well above 0
    assert (gt.loc[gt["snr"] > 0.3, "expected_r"] > 0.2).all()
    assert (gt["expected_r"].abs() <= 1).all()


def test_ground_truth_targets_are_the_mask_voxels(tiny_simulated_study, tiny_study_config):
    st = tiny_simulated_study
    gt = st.ground_truth
    ii, jj, kk = np.nonzero(st.mask)
    expected_ids = [f"v{i}_{j}_{k}" for i, j, k in zip(ii, jj, kk)]
    assert sorted(gt["subject"].unique()) == [f"sub-{i:02d}" for i in range(1, tiny_study_config["n_subjects"] + 1)]
    for _, g in gt.groupby("subject"):
        assert g["target"].tolist() == expected_ids
        assert g["roi"].tolist() == [st.roi_names[v - 1] for v in st.labels[ii, jj, kk]]
    # voxel parameters are shared by subjects
    per_sub = [g.set_index("target")[["snr", "semantic_share", "is_noise"]] for _, g in gt.groupby("subject")]
    pd.testing.assert_frame_equal(per_sub[0], per_sub[1])


def test_mask_and_labels_geometry(tiny_study_config):
    shape = tiny_study_config["volume_shape"]
    names = list(S.ROI_SPECS)
    mask, labels = S.ellipsoid_rois(shape, names)
    g = np.indices(shape).astype(float)
    c = (np.array(shape) - 1) / 2
    r = np.array(shape) / 2
    inside = sum(((g[a] - c[a]) / r[a]) ** 2 for a in range(3)) <= 1
    np.testing.assert_array_equal(mask.astype(bool), inside)
    assert (labels[~inside] == 0).all()
    assert set(np.unique(labels[inside])) == set(range(1, len(names) + 1))
    counts = np.bincount(labels[inside], minlength=len(names) + 1)[1:]
    assert counts.max() - counts.min() <= 1  # equal slabs


def test_time_words_follow_the_documented_durations():
    text = "Alice was beginning to get very tired, of sitting by her sister. On the bank!"
    rng = np.random.default_rng(0)
    w = S.time_words(text, rng, start=6.0)
    tokens = text.split()
    assert w["word"].tolist() == tokens
    assert w["onset"].iloc[0] == 6.0
    letters = np.array([len(re.sub(r"[^A-Za-z]", "", t)) or 1 for t in tokens])
    nominal = 0.13 + 0.055 * letters
    dur = (w["offset"] - w["onset"]).to_numpy()
    assert np.all(dur >= 0.85 * nominal - 1e-12) and np.all(dur <= 1.15 * nominal + 1e-12)
    gaps = w["onset"].to_numpy()[1:] - w["offset"].to_numpy()[:-1]
    expected_gaps = [0.45 if t.endswith((".", "!", "?")) else 0.15 if t.endswith(",") else 0.0
                     for t in tokens[:-1]]
    np.testing.assert_allclose(gaps, expected_gaps, atol=1e-9)
    assert len(S.time_words(text, rng, max_words=4)) == 4


def test_unknown_story_is_named():
    with pytest.raises(ValueError, match="no_such_story"):
        S.story_texts(["no_such_story"])


# --------------------------------------------------------------------------- written files
def test_written_nifti_files(tiny_study, tiny_simulated_study, tiny_study_config):
    st = tiny_simulated_study
    for (subject, story), vol in st.bold.items():
        func = tiny_study / subject / "func"
        img = nib.load(func / f"{subject}_task-{story}_bold.nii.gz")
        assert img.header["pixdim"][4] == pytest.approx(2.0)
        assert img.header.get_zooms()[3] == pytest.approx(tiny_study_config["tr"])
        assert img.header.get_xyzt_units() == ("mm", "sec")
        assert img.shape == (*tiny_study_config["volume_shape"], vol.shape[-1])
        np.testing.assert_array_equal(np.asarray(img.dataobj), vol)
        np.testing.assert_allclose(img.affine, st.affine)
        mask = np.asarray(nib.load(func / f"{subject}_task-{story}_desc-brain_mask.nii.gz").dataobj)
        dseg = np.asarray(nib.load(func / f"{subject}_task-{story}_desc-roi_dseg.nii.gz").dataobj)
        np.testing.assert_array_equal(mask, st.mask)
        np.testing.assert_array_equal(dseg, st.labels)
        # the brain voxels carry a BOLD-like baseline, the rest is zero
        assert (np.asarray(img.dataobj)[mask > 0] > 100).all()
        assert (np.asarray(img.dataobj)[mask == 0] == 0).all()


def test_written_ground_truth_and_tables(tiny_study, tiny_simulated_study):
    gt = pd.read_parquet(tiny_study / "ground_truth.parquet")
    assert {"subject", "target", "expected_r"} <= set(gt.columns)
    n_vox = int((np.asarray(nib.load(next(tiny_study.glob("sub-01/func/*_desc-brain_mask.nii.gz"))).dataobj) > 0).sum())
    n_sub = len(list(tiny_study.glob("sub-*")))
    assert len(gt) == n_vox * n_sub
    np.testing.assert_allclose(gt["expected_r"], tiny_simulated_study.ground_truth["expected_r"])
    labels = pd.read_csv(tiny_study / "roi_labels.tsv", sep="\t")
    assert labels["index"].tolist() == list(range(1, len(S.ROI_SPECS) + 1))
    assert labels["name"].tolist() == list(S.ROI_SPECS)
    for story, w in tiny_simulated_study.words.items():
        tsv = pd.read_csv(tiny_study / "stimuli" / f"{story}_words.tsv", sep="\t", keep_default_na=False)
        assert list(tsv.columns) == ["onset", "duration", "word"]
        assert tsv["word"].tolist() == w["word"].tolist()
        np.testing.assert_allclose(tsv["duration"], w["offset"] - w["onset"], atol=1e-4)
    import json

    desc = json.loads((tiny_study / "dataset_description.json").read_text())
    assert desc["RepetitionTime"] == 2.0


def test_scan_covers_the_words_plus_tail(tiny_simulated_study, tiny_study_config):
    st = tiny_simulated_study
    for story, w in st.words.items():
        n = st.bold[("sub-01", story)].shape[-1]
        assert n == int(np.ceil((w["offset"].max() + 20.0) / tiny_study_config["tr"]))


def test_planted_property_leaves_every_other_voxel_unchanged(tiny_study_config):
    """PROP (the upper half of the WM slab) responds to the planted property alone; every other
    voxel, its noise and drift are the draws of the study without it (own generator)."""
    cfg = tiny_study_config
    rng = np.random.default_rng(5)
    words = {s: S.time_words(t, rng, max_words=150) for s, t in S.story_texts(cfg["stories"]).items()}
    feats = {s: rng.standard_normal((len(w), 10)) for s, w in words.items()}
    prop = {s: np.arange(len(w)) % 7.0 for s, w in words.items()}   # e.g. a position in a sentence
    kw = dict(n_subjects=2, tr=cfg["tr"], volume_shape=cfg["volume_shape"], seed=3, noise_ar=0.5, drift_sd=0.5)
    plain = S.simulate_study(feats, words, **kw)
    planted = S.simulate_study(feats, words, property_values=prop, property_name="pos7", **kw)
    gt0, gt1 = (g[g["subject"] == "sub-01"].reset_index(drop=True) for g in (plain.ground_truth, planted.ground_truth))
    is_prop = (gt1["roi"] == "PROP").to_numpy()
    n_wm = int((gt0["roi"] == "WM").sum())
    assert is_prop.sum() == n_wm - n_wm // 2 and planted.roi_names[-1] == "PROP"
    assert (gt1.loc[is_prop, "property_share"] == 1).all() and (gt1.loc[~is_prop, "property_share"] == 0).all()
    np.testing.assert_array_equal(gt0.loc[~is_prop, "expected_r"], gt1.loc[~is_prop, "expected_r"])
    assert gt0.loc[is_prop, "expected_r"].abs().max() == 0 and gt1.loc[is_prop, "expected_r"].abs().min() > 0.2
    vox = np.nonzero(plain.mask)
    assert (planted.labels[vox][is_prop[: len(vox[0])]] == len(planted.roi_names)).all()
    for key in plain.bold:
        a, b = plain.bold[key][vox], planted.bold[key][vox]
        n_vox = len(vox[0])
        np.testing.assert_array_equal(a[~is_prop[:n_vox]], b[~is_prop[:n_vox]])
        # the PROP voxels' signal is the HRF-convolved property: correlated with it, not with the words' rate
        assert not np.allclose(a[is_prop[:n_vox]], b[is_prop[:n_vox]])
    with pytest.raises(ValueError, match="one finite value per word"):
        S.simulate_study(feats, words, property_values={s: v[:-1] for s, v in prop.items()}, **kw)
