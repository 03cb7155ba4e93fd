"""Decoding (core.decoding): pairwise accuracy against a direct double loop, the lag bookkeeping
against explicit index arithmetic, the ridge decoder against scikit-learn's Ridge, and the null's
calibration."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from brainalign.core.decoding import (
    cross_validated_decoding,
    decoding_mse,
    decoding_null,
    decoding_p,
    lagged_responses,
    pairwise_accuracy,
    pairwise_accuracy_by_fold,
    stimulus_from_delayed,
)
from brainalign.core.encoding.folds import inner_splits, leave_stories_out
from brainalign.core.encoding.ridge import standardize
from brainalign.core.stats.nulls import draw_index, null_draws


# ----------------------------------------------------------------------------- references
def _loop_accuracy(Zt, Zp):
    """2 vs 2 accuracy by a direct double loop over pairs with np.corrcoef."""
    n = len(Zt)

    def c(a, b):
        return np.corrcoef(a, b)[0, 1]

    score, pairs = 0.0, 0
    for i in range(n):
        for j in range(i + 1, n):
            lhs = c(Zp[i], Zt[i]) + c(Zp[j], Zt[j])
            rhs = c(Zp[i], Zt[j]) + c(Zp[j], Zt[i])
            score += 0.5 if abs(lhs - rhs) <= 1e-10 else float(lhs > rhs)
            pairs += 1
    return score / pairs, pairs


def _ar1(n, m, phi, rng):
    e = rng.standard_normal((n, m))
    y = np.empty_like(e)
    y[0] = e[0]
    for t in range(1, n):
        y[t] = phi * y[t - 1] + np.sqrt(1 - phi ** 2) * e[t]
    return y


def _stories(n_stories, n_per):
    return np.repeat(np.arange(n_stories), n_per)


# ----------------------------------------------------------------------------- metrics
def test_pairwise_accuracy_matches_double_loop_with_ties():
    rng = np.random.default_rng(0)
    Zt = rng.standard_normal((30, 8))
    Zp = 0.6 * Zt + rng.standard_normal((30, 8))
    # a planted tie: items 5 and 6 are the same item (true and decoded)
    Zt[6], Zp[6] = Zt[5], Zp[5]
    ref, ref_pairs = _loop_accuracy(Zt, Zp)
    acc, n_pairs = pairwise_accuracy(Zt, Zp)
    assert n_pairs == ref_pairs == 30 * 29 // 2
    assert acc == pytest.approx(ref, abs=1e-12)
    assert (acc * n_pairs) % 1 == 0.5            # the single tie contributes a half
    # small blocks give the same count
    assert pairwise_accuracy(Zt, Zp, chunk=7)[0] == pytest.approx(ref, abs=1e-12)
    # two identical items are one tie: accuracy exactly 1/2
    assert pairwise_accuracy(Zt[[5, 6]], Zp[[5, 6]]) == (0.5, 1)


def test_pairwise_accuracy_chance_and_perfect():
    rng = np.random.default_rng(1)
    Zt = rng.standard_normal((400, 16))
    acc, n_pairs = pairwise_accuracy(Zt, rng.standard_normal((400, 16)), chunk=128)
    assert n_pairs == 400 * 399 // 2
    assert abs(acc - 0.5) < 0.05
    assert pairwise_accuracy(Zt, 3 * Zt + 1)[0] == 1.0
    assert pairwise_accuracy(Zt, -Zt)[0] == 0.0


def test_pairwise_accuracy_by_fold_uses_only_within_fold_pairs():
    rng = np.random.default_rng(2)
    Zt = rng.standard_normal((40, 6))
    Zp = 0.4 * Zt + rng.standard_normal((40, 6))
    perm = rng.permutation(40)
    folds = [(np.setdiff1d(np.arange(40), t), t) for t in (perm[:12], perm[12:25], perm[25:])]
    acc, n_pairs, fold_acc = pairwise_accuracy_by_fold(Zt, Zp, folds)
    refs = [_loop_accuracy(Zt[t], Zp[t]) for _, t in folds]
    np.testing.assert_allclose(fold_acc, [r[0] for r in refs], atol=1e-12)
    assert n_pairs == sum(r[1] for r in refs) == 66 + 78 + 105
    assert acc == pytest.approx(sum(a * p for a, p in refs) / n_pairs, abs=1e-12)
    assert acc != pytest.approx(pairwise_accuracy(Zt, Zp)[0], abs=1e-9)   # not all pairs


def test_decoding_mse():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 10, 4))
    assert decoding_mse(a, b) == pytest.approx(np.mean((a - b) ** 2))


@pytest.mark.parametrize("Zt, Zp, match", [
    (np.ones((1, 4)), np.ones((1, 4)), "at least 2 items"),
    (np.zeros((5, 4)), np.zeros((5, 3)), r"shape \(5, 4\).*shape \(5, 3\)"),
    (np.r_[np.ones((2, 4)), np.eye(4)], np.eye(6, 4), "2 of 6 rows are constant"),
    (np.eye(4), np.r_[np.eye(3, 4), [[np.nan, 0, 0, 0]]], "NaN"),
])
def test_pairwise_accuracy_bad_input(Zt, Zp, match):
    with pytest.raises(ValueError, match=match):
        pairwise_accuracy(Zt, Zp)


def test_pairwise_accuracy_by_fold_names_small_fold():
    Z = np.random.default_rng(0).standard_normal((10, 3))
    folds = [(np.arange(1, 10), np.arange(1)), (np.arange(5), np.arange(5, 10))]
    with pytest.raises(ValueError, match="fold 0 has 1 test items"):
        pairwise_accuracy_by_fold(Z, Z, folds)


# ----------------------------------------------------------------------------- lags
def test_lagged_responses_and_stimulus_from_delayed_index_arithmetic():
    rng = np.random.default_rng(4)
    lengths, d, delays = [13, 9], 3, (1, 2, 4)
    # per story: stimulus x, FIR-delayed features with explicit zero padding, responses planted
    # as y[t] = x[t - 2] (zero before the story's third TR) plus a per-story offset marker
    xs, Xs, Ys = [], [], []
    for s, n in enumerate(lengths):
        x = rng.standard_normal((n, d))
        X = np.zeros((n, d * len(delays)))
        for t in range(n):
            for k, dl in enumerate(delays):
                if t - dl >= 0:
                    X[t, k * d:(k + 1) * d] = x[t - dl]
        y = np.zeros((n, d))
        y[2:] = x[:-2]
        xs.append(x), Xs.append(X), Ys.append(y + 100 * s)
    X, Y = np.concatenate(Xs), np.concatenate(Ys)
    sos = np.repeat([0, 1], lengths)
    Z, lags = stimulus_from_delayed(X, delays)
    assert lags == [0, 1, 3]
    L = lagged_responses(Y, sos, lags)
    assert L.shape == (sum(lengths), d * len(lags))
    start = np.r_[0, np.cumsum(lengths)]
    for s, n in enumerate(lengths):
        for t in range(n):
            row = start[s] + t
            # Z row t is the stimulus of TR t - delays[0] (zero before the story starts)
            np.testing.assert_array_equal(Z[row], xs[s][t - 1] if t >= 1 else 0)
            for k, lag in enumerate(lags):
                expect = Ys[s][t + lag] if t + lag < n else np.zeros(d)
                np.testing.assert_array_equal(L[row, k * d:(k + 1) * d], expect)
            # the planted relation: the response 2 TRs after the stimulus of row t is block k
            # with lag = 2 - delays[0] = 1 (that of delay 2), wherever it stays in the story
            if 1 <= t and t + 1 < n:
                np.testing.assert_allclose(L[row, d:2 * d] - 100 * s, Z[row])


def test_lag_errors():
    Y, sos = np.zeros((6, 2)), np.zeros(6)
    with pytest.raises(ValueError, match="lags must be >= 0"):
        lagged_responses(Y, sos, [0, -1])
    with pytest.raises(ValueError, match="story_of_sample has shape"):
        lagged_responses(Y, sos[:4], [0])
    with pytest.raises(ValueError, match="not divisible by the 3 delays"):
        stimulus_from_delayed(np.zeros((6, 8)), (1, 2, 3))
    with pytest.raises(ValueError, match="first delay must be the smallest"):
        stimulus_from_delayed(np.zeros((6, 6)), (2, 1, 3))


# ----------------------------------------------------------------------------- ridge decoder
def _sk_inner_alpha(Btr, Ztr, splits, alphas):
    """Inner-CV alpha chosen with sklearn Ridge: the smallest pooled held-out MSE."""
    sse = np.zeros(len(alphas))
    count = 0
    for itr, ite in splits:
        for a, alpha in enumerate(alphas):
            pred = Ridge(alpha=alpha, fit_intercept=True, solver="svd").fit(Btr[itr], Ztr[itr]).predict(Btr[ite])
            sse[a] += np.sum((pred - Ztr[ite]) ** 2)
        count += Ztr[ite].size
    mse = sse / count
    return alphas[np.flatnonzero(mse <= mse.min()).max()], mse


def test_cross_validated_decoding_matches_sklearn_ridge():
    rng = np.random.default_rng(5)
    sos = _stories(4, 50)
    n, p, d = len(sos), 15, 6
    B = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + rng.uniform(-2, 2, p)
    Z = B @ rng.standard_normal((p, d)) * 0.3 + 2.0 * rng.standard_normal((n, d)) + 5.0
    folds = leave_stories_out([50] * 4)
    alphas = np.logspace(-2, 5, 15)
    res = cross_validated_decoding(B, Z, folds, sos, alphas=alphas, return_predictions=True)
    assert res.n_zero_rows == 0 and res.n_items == n
    for f, (train, test) in enumerate(folds):
        Btr, Bte = standardize(B[train], B[test])
        Ztr, Zte = standardize(Z[train], Z[test])
        alpha, mse = _sk_inner_alpha(Btr, Ztr, inner_splits(train, sos), alphas)
        assert res.fold_alpha[f] == alpha
        assert 0 < np.argmin(mse) < len(alphas) - 1            # an interior choice, so the test bites
        ref = Ridge(alpha=alpha, fit_intercept=True).fit(Btr, Ztr).predict(Bte)
        mean, sd = Z[train].mean(0), Z[train].std(0)
        np.testing.assert_allclose(res.predictions[test], ref * sd + mean, atol=1e-6, rtol=0)
        # the fold's scores are those of the sklearn predictions in standardised units
        assert res.fold_mse[f] == pytest.approx(np.mean((ref - Zte) ** 2), abs=1e-9)
        assert res.fold_accuracy[f] == pytest.approx(_loop_accuracy(Zte, ref)[0], abs=1e-12)
    assert res.n_pairs == 4 * 50 * 49 // 2


def test_inner_cv_alpha_large_on_noise_small_on_clean():
    rng = np.random.default_rng(6)
    sos = _stories(4, 60)
    n, p, d = len(sos), 10, 5
    folds = leave_stories_out([60] * 4)
    B = rng.standard_normal((n, p))
    noise = cross_validated_decoding(B, rng.standard_normal((n, d)), folds, sos)
    clean = cross_validated_decoding(B, B @ rng.standard_normal((p, d)) + 0.01 * rng.standard_normal((n, d)),
                                     folds, sos)
    assert np.all(noise.fold_alpha >= 1e3)
    assert np.all(clean.fold_alpha <= 1.0)
    assert clean.alpha_at_edge == 1.0                          # the grid's smallest alpha
    assert abs(noise.pairwise_accuracy - 0.5) < 0.1


def test_noiseless_linear_mapping_decodes_near_perfectly():
    rng = np.random.default_rng(7)
    n, p, d = 300, 20, 10
    B = rng.standard_normal((n, p))
    Z = B @ rng.standard_normal((p, d))
    folds = [(np.setdiff1d(np.arange(n), t), t) for t in np.array_split(np.arange(n), 5)]
    res = cross_validated_decoding(B, Z, folds, inner_gap=2)
    assert res.pairwise_accuracy >= 0.99
    assert res.mse < 1e-3
    assert res.n_pairs == 5 * 60 * 59 // 2


def test_zero_rows_are_neither_fitted_nor_scored():
    rng = np.random.default_rng(8)
    sos = _stories(4, 40)
    n, p, d = len(sos), 8, 4
    B = rng.standard_normal((n, p))
    Z = B @ rng.standard_normal((p, d)) + rng.standard_normal((n, d))
    zero = np.zeros(n, bool)
    zero[[0, 40, 41, 80, 120, 150]] = True                     # story starts and a silent TR
    Z[zero] = 0
    folds = leave_stories_out([40] * 4)
    res = cross_validated_decoding(B, Z, folds, sos, return_predictions=True)
    assert res.n_zero_rows == 6 and res.n_items == n - 6
    assert np.isnan(res.predictions[zero]).all() and np.isfinite(res.predictions[~zero]).all()
    # the same as decoding the kept rows only, with the folds re-indexed
    keep = np.flatnonzero(~zero)
    new = np.full(n, -1)
    new[keep] = np.arange(len(keep))
    sub_folds = [(new[tr[~zero[tr]]], new[te[~zero[te]]]) for tr, te in folds]
    sub = cross_validated_decoding(B[keep], Z[keep], sub_folds, sos[keep], return_predictions=True)
    assert sub.pairwise_accuracy == res.pairwise_accuracy
    np.testing.assert_allclose(sub.predictions, res.predictions[keep], atol=1e-10)
    # without dropping, the zero rows are scored
    assert cross_validated_decoding(B, Z, folds, sos, drop_zero_rows=False).n_items == n


def test_cross_validated_decoding_bad_input():
    rng = np.random.default_rng(9)
    B, Z = rng.standard_normal((20, 3)), rng.standard_normal((20, 4))
    folds = [(np.arange(10, 20), np.arange(10)), (np.arange(10), np.arange(10, 20))]
    with pytest.raises(ValueError, match="B has 20 rows .* Z has 19"):
        cross_validated_decoding(B, Z[:19], folds)
    with pytest.raises(ValueError, match="needs at least 2"):
        cross_validated_decoding(B, Z[:, :1], folds)
    Zz = Z.copy()
    Zz[11:] = 0
    with pytest.raises(ValueError, match="fold 0 has 1 training items"):
        cross_validated_decoding(B, Zz, folds)
    with pytest.raises(ValueError, match="fold 0 has 1 scorable test items"):
        cross_validated_decoding(B, Zz, folds[1:])
    with pytest.raises(ValueError, match="alphas must be finite and > 0"):
        cross_validated_decoding(B, Z, folds, alphas=[0.0, 1.0])
    Bn = B.copy()
    Bn[3, 1] = np.nan
    with pytest.raises(ValueError, match="B has NaN"):
        cross_validated_decoding(Bn, Z, folds)


# ----------------------------------------------------------------------------- null
def test_null_fast_path_matches_refit():
    rng = np.random.default_rng(10)
    sos = _stories(4, 40)
    n, p, d = len(sos), 12, 5
    B = _ar1(n, p, 0.5, rng)
    Z = 0.5 * B[:, :d] + _ar1(n, d, 0.5, rng)
    folds = leave_stories_out([40] * 4)
    res = cross_validated_decoding(B, Z, folds, sos)
    draws = null_draws("shift", sos, 4, min_shift=5, seed=1) + null_draws("block_permutation", sos, 2, block_len=5)
    fast = decoding_null(B, Z, folds, sos, res.fold_alpha, draws)
    slow = decoding_null(B, Z, folds, sos, res.fold_alpha, draws, reuse_svd=False)
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    # the identity draw is the real model; any draw equals a real fit on B[idx] at the same alpha
    ident = decoding_null(B, Z, folds, sos, res.fold_alpha, [np.arange(n)])
    assert ident[0] == pytest.approx(res.pairwise_accuracy, abs=1e-12)
    alpha = np.full(len(folds), 10.0)
    idx = draw_index(draws[0], sos)
    one = cross_validated_decoding(B[idx], Z, folds, sos, alphas=[10.0])
    assert decoding_null(B, Z, folds, sos, alpha, [draws[0]])[0] == pytest.approx(one.pairwise_accuracy, abs=1e-12)
    # with dropped zero rows a shift moves padded rows into training: the exact refit is used
    Z[[0, 40, 80, 120]] = 0
    res = cross_validated_decoding(B, Z, folds, sos)
    fast = decoding_null(B, Z, folds, sos, res.fold_alpha, draws)
    slow = decoding_null(B, Z, folds, sos, res.fold_alpha, draws, reuse_svd=False)
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_null_calibration_and_power():
    K = 39
    sos = _stories(4, 50)
    n, p, d = len(sos), 12, 6
    folds = leave_stories_out([50] * 4)
    small = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        B, Z = _ar1(n, p, 0.5, rng), _ar1(n, d, 0.5, rng)          # no relation
        res = cross_validated_decoding(B, Z, folds, sos)
        null = decoding_null(B, Z, folds, sos, res.fold_alpha, null_draws("shift", sos, K, min_shift=10, seed=seed))
        small += decoding_p(res.pairwise_accuracy, null) < 0.05
    assert small / 20 <= 0.2
    rng = np.random.default_rng(99)
    B = _ar1(n, p, 0.5, rng)
    Z = B @ rng.standard_normal((p, d)) + 0.5 * _ar1(n, d, 0.5, rng)
    res = cross_validated_decoding(B, Z, folds, sos)
    null = decoding_null(B, Z, folds, sos, res.fold_alpha, null_draws("shift", sos, K, min_shift=10, seed=0))
    assert decoding_p(res.pairwise_accuracy, null) == 1 / (K + 1)
    assert null.mean() < 0.6


def test_decoding_p_and_null_errors():
    assert decoding_p(0.7, [0.5, 0.7, 0.8, 0.6]) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="no null"):
        decoding_p(0.7, [])
    B, Z = np.random.default_rng(0).standard_normal((2, 20, 3))
    folds = [(np.arange(10, 20), np.arange(10)), (np.arange(10), np.arange(10, 20))]
    with pytest.raises(ValueError, match="fold_alpha has 3 values for 2 folds"):
        decoding_null(B, Z, folds, np.zeros(20), [1.0, 1.0, 1.0], [np.arange(20)])
    with pytest.raises(ValueError, match="needs story_of_sample"):
        decoding_null(B, Z, folds, None, [1.0, 1.0], [np.arange(20)])
