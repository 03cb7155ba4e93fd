"""The paired block-swap test of a drop in alignment (core.stats.drop) against scipy on explicitly
swapped arrays, and its calibration under the null."""
import numpy as np
import pytest
from scipy.stats import pearsonr

from brainalign.core.stats.drop import paired_drop_test


def _folds(n, k):
    edges = np.linspace(0, n, k + 1).astype(int)
    idx = np.arange(n)
    return [(np.setdiff1d(idx, idx[a:b]), idx[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def _ar(rng, n, m, phi=0.5):
    e = rng.standard_normal((n, m))
    for t in range(1, n):
        e[t] = phi * e[t - 1] + np.sqrt(1 - phi ** 2) * e[t]
    return e


def test_statistic_and_draws_match_scipy_on_swapped_arrays():
    rng = np.random.default_rng(1)
    n, m = 120, 4
    story = np.repeat(["a", "b"], n // 2)
    folds = _folds(n, 3)
    Y = rng.standard_normal((n, m))
    A = Y + rng.standard_normal((n, m))
    B = 0.3 * Y + rng.standard_normal((n, m))
    res = paired_drop_test(Y, A, B, folds, story, block_len=7, n_perm=5, seed=3, groups=["x", "x", "y", "y"],
                           return_draws=True)
    for j in range(m):
        ra = np.mean([pearsonr(Y[te, j], A[te, j])[0] for _, te in folds])
        rb = np.mean([pearsonr(Y[te, j], B[te, j])[0] for _, te in folds])
        assert res["r_a"][j] == pytest.approx(ra, abs=1e-12)
        assert res["drop"][j] == pytest.approx(ra - rb, abs=1e-12)
    # draw 2, rebuilt by swapping the blocks' rows by hand
    k = 2
    A2, B2 = A.copy(), B.copy()
    for blocks, swaps in zip(res["blocks"], res["swaps"]):
        for b, s in zip(blocks, swaps[k]):
            if s:
                A2[b], B2[b] = B[b], A[b]
    for j in range(m):
        d = np.mean([pearsonr(Y[te, j], A2[te, j])[0] - pearsonr(Y[te, j], B2[te, j])[0] for _, te in folds])
        assert res["null"][k, j] == pytest.approx(d, abs=1e-10)
    assert res["groups"]["x"]["drop"] == pytest.approx(res["drop"][:2].mean())


def test_null_calibrated_and_power():
    """Two equally good (but different) predictors: p roughly uniform; a worse B: small p."""
    rng = np.random.default_rng(0)
    n, m = 300, 400
    story = np.repeat(["a", "b", "c"], n // 3)
    folds = _folds(n, 3)
    S = _ar(rng, n, m, 0.7)
    Y = S + _ar(rng, n, m, 0.5)
    A = S + 1.5 * _ar(rng, n, m, 0.5)
    B = S + 1.5 * _ar(rng, n, m, 0.5)
    res = paired_drop_test(Y, A, B, folds, story, block_len=10, n_perm=200, seed=0)
    share = (res["p"] < 0.05).mean()
    assert 0.02 < share < 0.09, share
    worse = S + 8.0 * _ar(rng, n, m, 0.5)
    res2 = paired_drop_test(Y, A, worse, folds, story, block_len=10, n_perm=200, seed=0)
    assert (res2["p"] < 0.05).mean() > 0.8


def test_errors():
    Y = np.zeros((20, 2))
    with pytest.raises(ValueError, match="fewer than 2 blocks"):
        paired_drop_test(Y, Y, Y, _folds(20, 2), np.zeros(20), block_len=10)
    with pytest.raises(ValueError, match="differ in shape"):
        paired_drop_test(Y, Y, Y[:, :1], _folds(20, 2), np.zeros(20), block_len=2)


def test_combine_subjects_is_the_mean_of_draws():
    from brainalign.core.stats.drop import combine_subjects

    nulls = np.array([[0.1, -0.2, 0.3, 0.0], [0.1, 0.0, -0.1, 0.2]])
    # group draws: 0.1, -0.1, 0.1, 0.1; observed mean 0.1 -> 1 + 3 draws >= 0.1
    assert combine_subjects([0.15, 0.05], nulls) == pytest.approx(4 / 5)
    assert combine_subjects([0.5, 0.5], nulls) == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="2 drops"):
        combine_subjects([0.1, 0.2], nulls[:1])
