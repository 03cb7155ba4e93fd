"""The ``shared`` ridge solver against himalaya called directly (the reference)."""
from __future__ import annotations

import numpy as np
import pytest
from himalaya.backend import set_backend
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.ridge import RidgeCV

from brainalign.core.encoding.folds import _Splits, contiguous_blocks
from brainalign.core.encoding.ridge import alpha_grid, standardize
from brainalign.core.encoding.solvers import SharedRidgeCV


def _data(n, p, t, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    W = rng.standard_normal((p, t)) * (rng.random(t) < 0.7) / np.sqrt(p)
    snr = np.exp(rng.uniform(np.log(0.05), np.log(5), t))
    Y = X @ W * np.sqrt(snr) / np.maximum((X @ W).std(0), 1e-9) + rng.standard_normal((n, t))
    return X, Y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n,p", [(300, 40), (120, 300)])   # primal (p < n) and dual (p > n) forms
def test_matches_himalaya(n, p, dtype):
    X, Y = _data(n, p, 400)
    n_train = int(0.8 * n)
    Xtr, Xte = standardize(X[:n_train].astype(dtype), X[n_train:].astype(dtype))
    Ytr = (Y[:n_train] - Y[:n_train].mean(0)).astype(dtype)
    alphas = alpha_grid(1e-2, 1e6, 17)
    splits = contiguous_blocks(n_train, 5, 3)
    bk = set_backend("numpy", on_error="raise")
    model_cls = RidgeCV if p <= n_train else KernelRidgeCV
    kw = {} if p <= n_train else {"kernel": "linear"}
    ref = model_cls(alphas=alphas, cv=_Splits(splits), **kw).fit(Xtr, Ytr)
    pred_ref, alpha_ref = ref.predict(Xte), np.asarray(ref.best_alphas_)
    pred, best = SharedRidgeCV(bk, Xtr, Xte, alphas, splits, dtype=dtype).fit_predict(Ytr)
    same = np.isclose(best, alpha_ref, rtol=1e-6)
    print(f"n={n} p={p} {dtype}: same alpha {same.mean():.4f}")
    assert same.mean() >= 0.99
    # predictions against himalaya in float64 (the float32 reference carries its own round-off:
    # its kernel is decomposed in float32, this solver's decompositions are float64)
    X64, Xte64 = Xtr.astype("float64"), Xte.astype("float64")
    ref64 = model_cls(alphas=alphas, cv=_Splits(splits), **kw).fit(X64, Ytr.astype("float64"))
    keep = same & np.isclose(np.asarray(ref64.best_alphas_), best, rtol=1e-6)
    pred64 = ref64.predict(Xte64)
    scale = np.abs(pred64).max()
    tol = 1e-8 if dtype == "float64" else 1e-4
    err = np.abs(pred[:, keep] - pred64[:, keep]).max() / scale
    err_ref = np.abs(pred_ref[:, keep] - pred64[:, keep]).max() / scale
    print(f"  max error / max |pred|: shared {err:.2e}, himalaya {err_ref:.2e}")
    assert err <= max(tol, err_ref)


def test_torch_backend_agrees_with_numpy():
    torch = pytest.importorskip("torch")  # noqa: F841
    X, Y = _data(200, 30, 50, seed=1)
    Xtr, Xte = standardize(X[:160], X[160:])
    Ytr = Y[:160] - Y[:160].mean(0)
    splits = contiguous_blocks(160, 5, 3)
    alphas = alpha_grid(1e-2, 1e6, 9)
    p_np, a_np = SharedRidgeCV(set_backend("numpy"), Xtr, Xte, alphas, splits, "float64").fit_predict(Ytr)
    bk = set_backend("torch")
    p_t, a_t = SharedRidgeCV(bk, Xtr, Xte, alphas, splits, "float64").fit_predict(bk.asarray(Ytr))
    set_backend("numpy")
    np.testing.assert_allclose(bk.to_numpy(p_t), p_np, atol=1e-8)
    np.testing.assert_array_equal(a_t, a_np)


def test_cross_validated_encoding_same_scores_with_either_solver():
    """The whole nested CV (3 stories, leave-one-story-out, inner leave-one-story-out or blocks) with
    the shared solver gives himalaya's scores: r within 1e-4, the same alpha on >= 99 % of targets."""
    from brainalign.core.encoding.folds import leave_stories_out
    from brainalign.core.encoding.ridge import cross_validated_encoding

    X, Y = _data(360, 60, 300, seed=2)
    sos = np.repeat([0, 1, 2, 3], 90)
    folds = leave_stories_out([90, 90, 90, 90])
    kw = dict(alphas=alpha_grid(1e-2, 1e6, 13), target_batch=128)
    ref = cross_validated_encoding(X, Y, folds, sos, solver="himalaya", **kw)
    got = cross_validated_encoding(X, Y, folds, sos, solver="shared", **kw)
    same = np.isclose(got.fold_alpha, ref.fold_alpha, rtol=1e-6)
    assert same.mean() >= 0.99, same.mean()
    ok = same.all(0)
    np.testing.assert_allclose(got.r[ok], ref.r[ok], atol=1e-4)
    np.testing.assert_allclose(got.r2[ok], ref.r2[ok], atol=1e-4)
    with pytest.raises(ValueError, match="unknown encoding solver"):
        cross_validated_encoding(X, Y, folds, sos, solver="fast", **kw)


@pytest.mark.parametrize("rows", [True, False])
def test_blockwise_gram_equals_a_float64_product(rows):
    from brainalign.core.encoding.solvers import _gram

    set_backend("numpy")
    import himalaya.backend.numpy as bk
    X = np.random.default_rng(3).standard_normal((70, 600)).astype(np.float32)
    X64 = X.astype(np.float64)
    ref = X64 @ X64.T if rows else X64.T @ X64
    got = _gram(bk, X, rows=rows, block=128)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n, p", [(1200, 1536), (600, 120)])   # the kernel preset; a primal shape
def test_encoding_peak_memory_is_bounded_by_the_data(tmp_path, n, p):
    """Peak traced memory of the whole encoding path (shared solver, responses by memory map)
    at most 1.5x the bytes of X and Y, in the dual and the primal form (issue "Performance and
    scale"; before 2026-12-03 the dual form held two folds' solvers and a float64 copy of X at once:
    1.86x on the first shape)."""
    import tracemalloc

    from brainalign.core.encoding.folds import leave_stories_out
    from brainalign.core.encoding.ridge import cross_validated_encoding

    rng = np.random.default_rng(0)
    t = 5000   # batches of 1,000 targets, a fifth of them, as the bench_encoding presets
    X = rng.standard_normal((n, p)).astype(np.float32)
    Y = np.lib.format.open_memmap(tmp_path / "Y.npy", mode="w+", dtype=np.float32, shape=(n, t))
    Y[:] = rng.standard_normal((n, t)).astype(np.float32)
    Y.flush()
    Y = np.load(tmp_path / "Y.npy", mmap_mode="r")
    lens = [n // 4] * 4
    folds, story = leave_stories_out(lens), np.repeat(np.arange(4), lens)
    cross_validated_encoding(X, Y[:, :8], folds, story, alpha_grid(1e-1, 1e6, 10), solver="shared")
    tracemalloc.start()
    try:
        cross_validated_encoding(X, Y, folds, story, alpha_grid(1e-1, 1e6, 10), target_batch=1000,
                                 solver="shared")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 1.5 * (X.nbytes + Y.nbytes), peak / (X.nbytes + Y.nbytes)
