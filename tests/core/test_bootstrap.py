"""Block bootstrap of the fold-mean r: against a direct loop (scipy) and coverage on AR(1) data."""
import numpy as np
import pytest
from scipy import signal, stats

from brainalign.core.stats.bootstrap import block_bootstrap_r, fold_blocks


def _ar1(rng, n, k, phi):
    u = rng.standard_normal((n, k))
    return signal.lfilter([np.sqrt(1 - phi ** 2)], [1, -phi], u, axis=0)


def _two_story_folds(n):
    sos = np.repeat([0, 1], n)
    idx = np.arange(2 * n)
    return sos, [(idx[sos == 1], idx[sos == 0]), (idx[sos == 0], idx[sos == 1])]


def test_matches_direct_loop_over_resampled_blocks():
    rng = np.random.default_rng(1)
    n, k, block_len, n_boot = 47, 6, 5, 30
    sos, folds = _two_story_folds(n)
    s = rng.standard_normal((2 * n, k))
    Y = s + rng.standard_normal((2 * n, k)) + 3.0
    P = 0.5 * s + 0.3 * rng.standard_normal((2 * n, k)) - 1.0
    groups = np.array(["a", "a", "b", "b", "b", "c"])
    out = block_bootstrap_r(Y, P, folds, sos, block_len=block_len, n_boot=n_boot, seed=7, groups=groups,
                            target_batch=4)
    # direct loop: the same generator, the same order of draws; index arrays and scipy pearsonr
    ref_rng = np.random.default_rng(7)
    boot = np.zeros((n_boot, k))
    for _, test in folds:
        blocks = fold_blocks(test, sos, block_len)
        assert sum(len(b) for b in blocks) == len(test) and max(len(b) for b in blocks) == block_len
        picks = ref_rng.integers(0, len(blocks), size=(n_boot, len(blocks)))
        for b in range(n_boot):
            rows = np.concatenate([blocks[j] for j in picks[b]])
            boot[b] += [stats.pearsonr(Y[rows, t], P[rows, t])[0] for t in range(k)]
    boot /= len(folds)
    np.testing.assert_allclose(out["low"], np.quantile(boot, 0.025, axis=0), atol=1e-10)
    np.testing.assert_allclose(out["high"], np.quantile(boot, 0.975, axis=0), atol=1e-10)
    m = boot[:, groups == "b"].mean(1)
    lo, hi, nb = out["groups"]["b"]
    assert nb == 3 and lo == pytest.approx(np.quantile(m, 0.025)) and hi == pytest.approx(np.quantile(m, 0.975))
    assert out["n_blocks"] == [10, 10]


def test_blocks_stay_within_stories():
    sos = np.repeat(["x", "y", "z"], [7, 4, 9])
    test = np.arange(20)
    blocks = fold_blocks(test, sos, 3)
    for b in blocks:
        assert len(set(sos[b])) == 1 and np.all(np.diff(b) == 1)
    assert [len(b) for b in blocks] == [3, 3, 1, 3, 1, 3, 3, 3]


def test_coverage_on_autocorrelated_data():
    """Known correlation rho between prediction and response, both AR(1) with phi 0.8: the
    block interval covers rho at about its nominal rate, the TR-by-TR (block_len 1) one does not."""
    rng = np.random.default_rng(0)
    n, k, phi, c = 150, 400, 0.8, 1.0
    rho = 1 / np.sqrt(1 + c ** 2)
    sos, folds = _two_story_folds(n)
    s = _ar1(rng, 2 * n, k, phi)
    Y = s + c * _ar1(rng, 2 * n, k, phi)
    cover = {}
    for bl in (1, 10):
        out = block_bootstrap_r(Y, s, folds, sos, block_len=bl, n_boot=400, seed=3)
        cover[bl] = float(np.mean((out["low"] <= rho) & (rho <= out["high"])))
    assert 0.85 <= cover[10] <= 0.99, cover  # measured 0.91
    assert cover[1] < cover[10] - 0.1, cover  # measured 0.665


def test_bad_input():
    sos, folds = _two_story_folds(10)
    Y = np.zeros((20, 2))
    with pytest.raises(ValueError, match="block_len"):
        block_bootstrap_r(Y, Y, folds, sos, block_len=0)
    with pytest.raises(ValueError, match=">= 2"):
        block_bootstrap_r(Y, Y, folds, sos, block_len=10)
    with pytest.raises(ValueError, match="shape"):
        block_bootstrap_r(Y, Y[:, :1], folds, sos, block_len=2)
