"""Per-target null distributions (core.stats.nulls): the fast path against a direct refit with
sklearn, the p-value formula, and calibration on autocorrelated null targets with real word
features (MiniLM on the packaged stories)."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.core.encoding.folds import leave_stories_out
from brainalign.core.encoding.ridge import apply_shifts, cross_validated_encoding, standardize
from brainalign.core.stats import nulls


def _ar1(n, m, phi, rng):
    e = rng.standard_normal((n, m))
    y = np.empty_like(e)
    y[0] = e[0]
    for t in range(1, n):
        y[t] = phi * y[t - 1] + np.sqrt(1 - phi ** 2) * e[t]
    return y


@pytest.fixture(scope="module")
def word_features(minilm):
    """Real contextual features of two packaged stories on a 2 s TR grid, FIR-delayed."""
    from brainalign.core.representations.text import extract_word_features
    from brainalign.core.synthetic.study import story_texts, time_words
    from brainalign.core.timing.resample import fir_delays, lanczos_downsample

    tok, model = minilm
    rng = np.random.default_rng(0)
    out, sos = [], []
    for k, (name, text) in enumerate(story_texts(["lighthouse", "orchard", "market"]).items()):
        w = time_words(text, rng, max_words=260)
        f = extract_word_features(w["word"].tolist(), tok, model, [4], context_words=10)[4]
        n = int(np.ceil((w["offset"].max() + 10) / 2.0))
        z = lanczos_downsample(f, ((w["onset"] + w["offset"]) / 2).to_numpy(), 2.0 * np.arange(n))
        out.append(fir_delays(z, (1, 2, 3, 4)))
        sos.append(np.full(n, k))
    return np.concatenate(out), np.concatenate(sos)


def test_fast_path_equals_a_direct_refit_with_sklearn():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    n, p, m = 120, 15, 6
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, m)) * 0.3 + rng.standard_normal((n, m))
    sos = np.repeat([0, 1, 2], 40)
    folds = leave_stories_out([40, 40, 40])
    fold_alpha = np.array([[1.0, 10.0, 10.0, 100.0, 1.0, 1000.0]] * 3)
    draws = nulls.shift_draws(sos, 4, min_shift=10, seed=3)
    got_r, got_r2 = nulls.null_distribution(X, Y, folds, sos, fold_alpha, draws)
    for k, shifts in enumerate(draws):
        Ys = apply_shifts(Y, sos, shifts)
        ref = np.zeros(m)
        for f, (train, test) in enumerate(folds):
            Xtr, Xte = standardize(X[train], X[test])
            mu = Ys[train].mean(0)
            for j in range(m):
                model = Ridge(alpha=fold_alpha[f, j], fit_intercept=False).fit(Xtr, Ys[train, j] - mu[j])
                ref[j] += np.corrcoef(model.predict(Xte), Ys[test, j] - mu[j])[0, 1] / len(folds)
        np.testing.assert_allclose(got_r[k], ref, atol=1e-8)


def test_p_value_formula_and_smallest_p():
    null = np.array([[0.1, 0.5], [0.2, 0.6], [0.3, 0.7], [0.0, 0.8]])
    p = nulls.permutation_p(np.array([0.25, 0.9]), null)
    np.testing.assert_allclose(p, [(1 + 1) / 5, 1 / 5])


def test_bh_matches_a_textbook_loop():
    rng = np.random.default_rng(0)
    p = np.r_[rng.uniform(size=50), rng.uniform(0, 0.01, 10)]
    n = len(p)
    order = np.argsort(p)
    ref = np.empty(n)
    for i in range(n):           # q_(i) = min_{j >= i} p_(j) n / j
        ref[order[i]] = min(1.0, min(p[order[j]] * n / (j + 1) for j in range(i, n)))
    np.testing.assert_allclose(nulls.bh_fdr(p), ref)


def test_false_positive_rate_on_autocorrelated_null_targets(word_features):
    """1,000 AR(1) targets (phi 0.5) with no stimulus signal, scored with real MiniLM features:
    the share with p < 0.05 lies in [0.03, 0.07]."""
    X, sos = word_features
    rng = np.random.default_rng(7)
    Y = _ar1(len(X), 1000, 0.5, rng)
    n_trs = np.bincount(sos).tolist()
    folds = leave_stories_out(n_trs)
    res = cross_validated_encoding(X, Y, folds, sos, alphas=np.logspace(0, 6, 7), n_inner=3, inner_gap=2)
    draws = nulls.shift_draws(sos, 99, min_shift=15, seed=11)
    null_r, _ = nulls.null_distribution(X, Y, folds, sos, res.fold_alpha, draws)
    p = nulls.permutation_p(res.r, null_r)
    fpr = float((p < 0.05).mean())
    print(f"FPR at alpha 0.05 on 1,000 AR(1) null targets, K = 99: {fpr:.3f}")
    assert 0.03 <= fpr <= 0.07, fpr


def test_planted_signal_is_found(word_features):
    X, sos = word_features
    rng = np.random.default_rng(8)
    signal = X[:, :384] @ rng.standard_normal((384, 40))
    signal = (signal - signal.mean(0)) / signal.std(0)
    Y = np.c_[signal + 0.5 * _ar1(len(X), 40, 0.5, rng), _ar1(len(X), 160, 0.5, rng)]
    folds = leave_stories_out(np.bincount(sos).tolist())
    res = cross_validated_encoding(X, Y, folds, sos, alphas=np.logspace(0, 6, 7), n_inner=3, inner_gap=2)
    null_r, _ = nulls.null_distribution(X, Y, folds, sos, res.fold_alpha, nulls.shift_draws(sos, 99, 15, 12))
    q = nulls.bh_fdr(nulls.permutation_p(res.r, null_r))
    assert (q[:40] < 0.05).mean() > 0.5 and (q[40:] < 0.05).mean() < 0.05, (res.r[:40].mean(), q[:40])
