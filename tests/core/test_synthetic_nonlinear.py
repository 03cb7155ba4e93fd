"""The NONLIN region of the simulated study (core/synthetic/study.py): a planted signal that is a
nonlinear (quadratic) function of word features, the brain-tuning study's positive control.

References are independent of the code under test: the region's place is checked against the WM
slab's geometry, the untouched voxels against the study drawn without NONLIN, and the signal
against ridge regressions (sklearn) fitted here, once on the word features themselves (a linear
readout must miss it, while it predicts a linear signal planted here nearly perfectly) and once on
their pairwise products (a quadratic readout must capture it: the signal is smooth, learnable).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import RidgeCV

from brainalign.core.synthetic import study as S
from brainalign.core.timing.resample import hrf_convolve, lanczos_downsample
from brainalign.core.timing.stimuli import word_times

SHAPE = (6, 6, 5)


def _inputs(n_words=150, dim=10, seed=5, stories=("lighthouse", "orchard")):
    rng = np.random.default_rng(seed)
    words = {s: S.time_words(t, rng, max_words=n_words) for s, t in S.story_texts(list(stories)).items()}
    feats = {s: rng.standard_normal((len(w), dim)) for s, w in words.items()}
    other = {s: rng.standard_normal((len(w), dim + 2)) for s, w in words.items()}
    prop = {s: np.arange(len(w)) % 7.0 for s, w in words.items()}
    return words, feats, other, prop


KW = dict(n_subjects=2, tr=2.0, volume_shape=SHAPE, seed=3, noise_ar=0.5, drift_sd=0.5, trim_start=2, trim_end=2)


def _sub01(study):
    gt = study.ground_truth
    return gt[gt["subject"] == "sub-01"].reset_index(drop=True)


@pytest.mark.parametrize("with_prop", [False, True])
def test_nonlinear_region_leaves_every_other_voxel_unchanged(with_prop):
    """NONLIN is the second quarter of the WM slab (along the first axis); every other voxel's BOLD
    and ground truth, PROP's included, are those of the study drawn without it."""
    words, feats, other, prop = _inputs()
    kw = dict(KW, **({"property_values": prop, "property_name": "pos7"} if with_prop else {}))
    plain = S.simulate_study(feats, words, **kw)
    planted = S.simulate_study(feats, words, nonlinear_features=other, nonlinear_layer=2, **kw)
    gt0, gt1 = _sub01(plain), _sub01(planted)
    is_nl = (gt1["roi"] == "NONLIN").to_numpy()

    # place: the WM slab's voxels ordered along the first axis (ties by the second)
    mask, labels = S.ellipsoid_rois(SHAPE, list(S.ROI_SPECS))
    vox = np.nonzero(mask)
    wm = np.flatnonzero(labels[vox] == list(S.ROI_SPECS).index("WM") + 1)
    order = wm[np.lexsort((vox[1][wm], vox[0][wm]))]
    half = wm.size // 2
    np.testing.assert_array_equal(np.flatnonzero(is_nl), np.sort(order[half // 2:half]))
    assert is_nl.sum() == half - half // 2 > 0
    assert (gt1.loc[order[:half // 2], "roi"] == "WM").all()
    assert (gt1.loc[order[half:], "roi"] == ("PROP" if with_prop else "WM")).all()
    assert planted.roi_names[-1] == "NONLIN"
    assert (planted.labels[vox][is_nl] == len(planted.roi_names)).all()
    np.testing.assert_array_equal(planted.labels[vox][~is_nl], plain.labels[vox][~is_nl])

    # ground truth: the new column, and every other voxel's row as without NONLIN
    assert (gt1.loc[is_nl, "nonlinear_share"] == 1).all() and (gt1.loc[~is_nl, "nonlinear_share"] == 0).all()
    assert "nonlinear_share" not in gt0.columns
    pd.testing.assert_frame_equal(gt0[~is_nl], gt1.drop(columns="nonlinear_share")[~is_nl])
    nl = gt1[is_nl]
    assert (gt0.loc[is_nl, "expected_r"] == 0).all() and (nl["expected_r"] > 0.3).all()
    assert not nl["is_noise"].any() and (nl["semantic_share"] == 0).all() and (nl["sound_power_share"] == 0).all()
    assert ((nl["snr"] >= 0.5) & (nl["snr"] <= 2.0)).all()
    assert planted.meta["nonlinear"]["layer"] == 2 and planted.meta["nonlinear"]["snr"] == [0.5, 2.0]
    assert "nonlinear" not in plain.meta

    for key in plain.bold:
        a, b = plain.bold[key][vox], planted.bold[key][vox]
        np.testing.assert_array_equal(a[~is_nl], b[~is_nl])
        assert not np.allclose(a[is_nl], b[is_nl])


def test_nonlinear_draws_do_not_depend_on_prop():
    """NONLIN's generator is the same whether PROP is planted or not, so are its voxels."""
    words, feats, other, prop = _inputs()
    alone = S.simulate_study(feats, words, nonlinear_features=other, **KW)
    both = S.simulate_study(feats, words, nonlinear_features=other, property_values=prop, **KW)
    assert both.roi_names[-2:] == ["PROP", "NONLIN"]
    is_nl = (_sub01(alone)["roi"] == "NONLIN").to_numpy()
    vox = np.nonzero(alone.mask)
    for key in alone.bold:
        np.testing.assert_array_equal(alone.bold[key][vox][is_nl], both.bold[key][vox][is_nl])
    cols = ["expected_r", "snr", "nonlinear_share"]
    pd.testing.assert_frame_equal(_sub01(alone).loc[is_nl, cols], _sub01(both).loc[is_nl, cols])


def _to_trs(x, w, n_trs, tr):
    return hrf_convolve(lanczos_downsample(x, word_times(w), tr * np.arange(n_trs)), tr)


def _cv_r(X, Y, stories):
    """Leave-one-story-out ridge (alpha by generalised CV on the training stories, per target);
    Pearson r per target on each held-out story, averaged over stories."""
    rs = []
    for test in stories:
        train = [s for s in stories if s != test]
        xt, yt = np.concatenate([X[s] for s in train]), np.concatenate([Y[s] for s in train])
        mu, sd = xt.mean(0), xt.std(0)
        model = RidgeCV(alphas=np.logspace(-6, 6, 25), alpha_per_target=True).fit((xt - mu) / sd, yt - yt.mean(0))
        p = model.predict((X[test] - mu) / sd)
        p, y = p - p.mean(0), Y[test] - Y[test].mean(0)
        rs.append((p * y).sum(0) / np.sqrt((p ** 2).sum(0) * (y ** 2).sum(0)))
    return np.mean(rs, 0)


def test_linear_readout_misses_the_nonlinear_signal_a_quadratic_one_finds_it():
    """NONLIN planted from the *same* features (10 dimensions, so the top 8 components are a part
    of them) that drive a linear signal planted here: a ridge from those features (same path to
    TRs) predicts the linear signal almost perfectly and the NONLIN signal poorly; a ridge from
    the features and their pairwise products predicts NONLIN almost perfectly (it is quadratic)."""
    tr, dim = 2.0, 10
    words, feats, _, _ = _inputs(n_words=260, dim=dim, seed=8, stories=("lighthouse", "market", "orchard"))
    stories = list(words)
    # noise (sd 1) and drift are negligible next to a signal of variance 1e8
    study = S.simulate_study(feats, words, nonlinear_features=feats, nonlinear_snr=(1e8, 1e8),
                             **dict(KW, n_subjects=1, trim_start=0, trim_end=0))
    is_nl = (_sub01(study)["roi"] == "NONLIN").to_numpy()
    vox = np.nonzero(study.mask)
    n_trs = {s: study.bold[("sub-01", s)].shape[-1] for s in stories}
    nonlin = {s: study.bold[("sub-01", s)][vox][is_nl].T.astype(np.float64) for s in stories}

    rng = np.random.default_rng(0)
    proj = rng.standard_normal((dim, 8))
    linear = {s: _to_trs(feats[s] @ proj, words[s], n_trs[s], tr) for s in stories}
    X_lin = {s: _to_trs(np.c_[np.ones(len(words[s])), feats[s]], words[s], n_trs[s], tr) for s in stories}
    iu = np.triu_indices(dim)
    products = {s: (feats[s][:, :, None] * feats[s][:, None, :])[:, iu[0], iu[1]] for s in stories}
    X_quad = {s: _to_trs(np.c_[np.ones(len(words[s])), feats[s], products[s]], words[s], n_trs[s], tr)
              for s in stories}

    r_linear = _cv_r(X_lin, linear, stories)
    r_nonlin = _cv_r(X_lin, nonlin, stories)
    r_quad = _cv_r(X_quad, nonlin, stories)
    assert r_linear.min() > 0.95, r_linear
    assert r_nonlin.mean() < 0.35 and r_nonlin.max() < 0.6, r_nonlin
    assert r_quad.min() > 0.95, r_quad


def test_nonlinear_word_signal_is_uncorrelated_with_the_top_components():
    """Against sklearn's PCA of the z-scored features: the word signals have mean 0, are
    uncorrelated with the top NONLINEAR_PCS component scores, are not 0, and do not depend on
    the signs of the features (the SVD's sign choices)."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    # skewed, correlated features: the square of a component would correlate with the component
    f = np.exp(rng.standard_normal((400, 12)) @ rng.standard_normal((12, 12)) / 4)
    feats = {"a": f[:250], "b": f[250:]}
    g = S.nonlinear_word_signal(feats, np.random.default_rng(1))
    assert g["a"].shape == (250, S.NONLINEAR_COMPONENTS) and g["b"].shape == (150, S.NONLINEAR_COMPONENTS)
    gg = np.concatenate([g["a"], g["b"]])
    z = (f - f.mean(0)) / f.std(0)
    scores = PCA(n_components=S.NONLINEAR_PCS).fit_transform(z)
    np.testing.assert_allclose(gg.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(scores.T @ gg / len(gg), 0, atol=1e-10)
    assert (gg.std(0) > 0.3).all()
    # before the residual step the squares did correlate with the components (skewed scores)
    h2 = (scores @ np.random.default_rng(2).standard_normal(S.NONLINEAR_PCS)) ** 2
    a = np.c_[np.ones(len(z)), scores]
    fit = a @ np.linalg.lstsq(a, h2, rcond=None)[0]
    assert np.corrcoef(fit, h2)[0, 1] > 0.3
    neg = S.nonlinear_word_signal({k: -v for k, v in feats.items()}, np.random.default_rng(1))
    np.testing.assert_allclose(np.concatenate([neg["a"], neg["b"]]), gg, atol=1e-9)


@pytest.mark.parametrize("change, match", [
    (lambda f: {k: v for k, v in f.items() if k != "orchard"}, r"no features for stories \['orchard'\]"),
    (lambda f: {**f, "orchard": f["orchard"][:-1]},
     r"story orchard: .*one row per word \(150\), got shape \(149, 12\)"),
    (lambda f: {**f, "orchard": f["orchard"][:, 0]}, r"story orchard: .*\(n_words, dim\)"),
    (lambda f: {**f, "orchard": np.where(np.arange(150)[:, None] == 3, np.nan, f["orchard"])},
     r"story orchard: nonlinear_features has non-finite values"),
    (lambda f: {**f, "orchard": f["orchard"][:, :5]}, r"different dimensions per story"),
])
def test_bad_nonlinear_features_name_the_story(change, match):
    words, feats, other, _ = _inputs()
    with pytest.raises(ValueError, match=match):
        S.simulate_study(feats, words, nonlinear_features=change(other), **KW)


@pytest.mark.parametrize("snr", [(0.0, 1.0), (2.0, 1.0), 1.0, (1.0, float("nan"))])
def test_bad_nonlinear_snr_is_named(snr):
    words, feats, other, _ = _inputs()
    with pytest.raises(ValueError, match="nonlinear_snr"):
        S.simulate_study(feats, words, nonlinear_features=other, nonlinear_snr=snr, **KW)


def test_constant_features_and_a_tiny_volume_are_errors():
    words, feats, other, _ = _inputs()
    with pytest.raises(ValueError, match="constant"):
        S.simulate_study(feats, words, nonlinear_features={s: np.ones_like(v) for s, v in other.items()}, **KW)
    with pytest.raises(ValueError, match="too few for a NONLIN region"):
        S.simulate_study(feats, words, nonlinear_features=other, **dict(KW, volume_shape=(2, 2, 2)))


def _base_synthetic():
    root = Path(__file__).resolve().parents[2]
    return yaml.safe_load((root / "conf" / "base" / "parameters.yml").read_text())["synthetic"]


@pytest.mark.parametrize("nonlinear_layer", ["base", None])
def test_simulate_node_extracts_both_layers_in_one_call(monkeypatch, nonlinear_layer):
    from brainalign.pipelines.data_prep import nodes

    synthetic = _base_synthetic()
    assert synthetic["nonlinear_layer"] == 2 and synthetic["semantic_layer"] == 4
    if nonlinear_layer is None:
        synthetic["nonlinear_layer"] = None
    calls, seen = [], {}
    monkeypatch.setattr(nodes, "load_model", lambda *a, **k: (None, None))

    def fake_extract(words, tok, model, layers, **k):
        calls.append(list(layers))
        return {l: np.full((len(words), 4), float(l)) for l in layers}

    def fake_simulate(feats, words, **kw):
        seen.update(kw, feats=feats)
        return type("St", (), {"mask": np.ones(1)})()

    monkeypatch.setattr(nodes, "extract_word_features", fake_extract)
    monkeypatch.setattr(nodes, "simulate_study", fake_simulate)
    nodes.simulate({**synthetic, "audio": False, "stories": ["orchard", "market"], "max_words_per_story": 20},
                   {"trim_start": 2, "trim_end": 2})
    assert (seen["feats"]["orchard"] == 4).all()
    if nonlinear_layer is None:
        assert calls == [[4], [4]]
        assert "nonlinear_features" not in seen
    else:
        assert calls == [[4, 2], [4, 2]]   # one extraction per story gives both layers
        assert sorted(seen["nonlinear_features"]) == ["market", "orchard"]
        assert all((f == 2).all() and f.shape == (20, 4) for f in seen["nonlinear_features"].values())
        assert seen["nonlinear_layer"] == 2
        assert seen["nonlinear_snr"] == tuple(float(x) for x in synthetic["nonlinear_snr"])
