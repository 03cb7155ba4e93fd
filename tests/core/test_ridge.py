"""Nested cross-validated ridge encoding (core/ridge.py) against an independent scikit-learn
re-implementation of the same procedure.

The reference follows the conventions documented in ``core/ridge.py`` and himalaya 0.4:

* per outer fold, X is z-scored (population SD, ddof=0; zero-SD columns only centred) and Y
  centred with the outer-training statistics; no intercept is fitted anywhere (also not inside
  the inner splits: himalaya's ``fit_intercept`` defaults to False);
* inner splits are positions within the outer training set: leave one story out (stories in
  order of first appearance) when the training set holds >= 3 stories, else contiguous blocks
  with ``gap`` positions dropped on each side of the validation block;
* himalaya's default CV score is ``l2_neg_loss`` = -mean squared error per target on each inner
  validation split; the chosen alpha maximises the mean of that score over splits, per target
  (``local_alpha=True``);
* the model is refitted on the whole outer training set with each target's alpha;
* ``r``/``r2`` are the per-fold scores averaged over folds, ``r_concat`` is r over all
  held-out predictions (original units) concatenated, ``alpha`` the median over folds.

All reference numbers come from sklearn.linear_model.Ridge, scipy.stats.pearsonr and
sklearn.metrics.r2_score; nothing is compared to the code's own earlier output.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score as sk_r2
from sklearn.preprocessing import StandardScaler

from brainalign.core.encoding.ridge import (EncodingResult, alpha_grid, cross_validated_encoding,
                                   himalaya_backend, standardize)


# --------------------------------------------------------------------------- reference
def _ref_inner_splits(train, story, n_inner, gap):
    st = np.asarray(story)[train]
    order = []
    for s in st.tolist():
        if s not in order:
            order.append(s)
    n = len(train)
    if len(order) >= 3:
        return [(np.flatnonzero(st != s), np.flatnonzero(st == s)) for s in order]
    out = []
    for k in range(n_inner):
        lo, hi = n * k // n_inner, n * (k + 1) // n_inner
        val = np.arange(lo, hi)
        tr = np.array([i for i in range(n) if i < lo - gap or i >= hi + gap])
        out.append((tr, val))
    return out


def _ridge_predict(Xtr, ytr, Xte, alpha):
    m = Ridge(alpha=float(alpha), fit_intercept=False, solver="svd")
    m.fit(Xtr, ytr)
    return m.predict(Xte)


def reference_encoding(X, Y, folds, story, alphas, n_inner=5, gap=5):
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    n, t = Y.shape
    alphas = np.asarray(alphas, np.float64)
    fold_r = np.zeros((len(folds), t))
    fold_r2 = np.zeros((len(folds), t))
    fold_alpha = np.zeros((len(folds), t))
    preds = np.full((n, t), np.nan)
    for f, (train, test) in enumerate(folds):
        scaler = StandardScaler().fit(X[train])  # ddof=0; zero-variance columns get scale 1
        Xtr, Xte = scaler.transform(X[train]), scaler.transform(X[test])
        ymu = Y[train].mean(0)
        Ytr = Y[train] - ymu
        splits = _ref_inner_splits(train, story, n_inner, gap)
        cv = np.zeros((len(splits), len(alphas), t))
        for s, (itr, iva) in enumerate(splits):
            for a, alpha in enumerate(alphas):
                p = _ridge_predict(Xtr[itr], Ytr[itr], Xtr[iva], alpha)
                cv[s, a] = -((Ytr[iva] - p) ** 2).mean(0)
        best = alphas[np.argmax(cv.mean(0), axis=0)]
        pred = np.column_stack([_ridge_predict(Xtr, Ytr[:, j], Xte, best[j]) for j in range(t)])
        raw_pred = pred + ymu
        preds[test] = raw_pred
        fold_alpha[f] = best
        fold_r[f] = [stats.pearsonr(Y[test, j], raw_pred[:, j])[0] for j in range(t)]
        fold_r2[f] = sk_r2(Y[test], raw_pred, multioutput="raw_values")
    tested = np.concatenate([te for _, te in folds])
    r_concat = np.array([stats.pearsonr(Y[tested, j], preds[tested, j])[0] for j in range(t)])
    edge = (fold_alpha == alphas.min()) | (fold_alpha == alphas.max())
    return dict(r=fold_r.mean(0), r2=fold_r2.mean(0), r_concat=r_concat,
                alpha=np.median(fold_alpha, 0), alpha_at_edge=edge.mean(0),
                fold_r=fold_r, fold_r2=fold_r2, fold_alpha=fold_alpha, predictions=preds)


def _planted(n, p, t, seed, scales=None, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 3.0, p) + rng.normal(0, 2, p)
    W = rng.standard_normal((p, t)) / np.sqrt(p)
    if scales is None:
        scales = np.geomspace(3.0, 0.03, t)
        scales[-1] = 0.0  # a pure-noise target
    Y = X @ (W * scales) + noise * rng.standard_normal((n, t)) + rng.normal(0, 5, t)
    return X, Y


def _story_folds(n_trs):
    """Leave-one-story-out outer folds, built by hand."""
    off = np.r_[0, np.cumsum(n_trs)]
    story = np.repeat(np.arange(len(n_trs)), n_trs)
    folds = [(np.flatnonzero(story != s), np.arange(off[s], off[s + 1])) for s in range(len(n_trs))]
    return folds, story


def _block_folds(n, k, gap):
    folds = []
    for f in range(k):
        lo, hi = n * f // k, n * (f + 1) // k
        idx = np.arange(n)
        folds.append((idx[(idx < lo - gap) | (idx >= hi + gap)], np.arange(lo, hi)))
    return folds


def _assert_matches(res: EncodingResult, ref: dict, tol: float, alpha_rtol: float = 1e-6):
    np.testing.assert_allclose(res.fold_alpha, ref["fold_alpha"], rtol=alpha_rtol)
    np.testing.assert_allclose(res.alpha, ref["alpha"], rtol=alpha_rtol)
    np.testing.assert_allclose(res.alpha_at_edge, ref["alpha_at_edge"], atol=0)
    for key in ("fold_r", "fold_r2", "r", "r2", "r_concat"):
        np.testing.assert_allclose(getattr(res, key), ref[key], atol=tol, rtol=0, err_msg=key)


ALPHAS = np.logspace(-2, 5, 15)


# --------------------------------------------------------------------------- helpers
def test_alpha_grid_is_log_spaced():
    np.testing.assert_allclose(alpha_grid(), np.geomspace(1e-2, 1e8, 21), rtol=1e-12)
    np.testing.assert_allclose(alpha_grid(0.1, 1000, 5), [0.1, 1, 10, 100, 1000], rtol=1e-12)


def test_standardize_matches_standard_scaler():
    rng = np.random.default_rng(1)
    tr = rng.normal(3, 2, (40, 4))
    tr[:, 2] = 7.0  # zero training variance: only centred
    te = rng.normal(3, 2, (10, 4))
    a, b = standardize(tr, te)
    sc = StandardScaler().fit(tr)
    np.testing.assert_allclose(a, sc.transform(tr), atol=1e-12)
    np.testing.assert_allclose(b, sc.transform(te), atol=1e-12)
    np.testing.assert_allclose(b[:, 2], te[:, 2] - 7.0, atol=1e-12)
    a, b = standardize(tr, te, scale=False)
    np.testing.assert_allclose(a, tr - tr.mean(0), atol=1e-12)
    np.testing.assert_allclose(b, te - tr.mean(0), atol=1e-12)


# --------------------------------------------------------------------------- vs sklearn
def test_ridgecv_matches_sklearn_leave_story_out():
    """4 stories -> outer leave-one-story-out, inner leave-one-story-out over 3 stories."""
    X, Y = _planted(120, 10, 7, seed=0)
    folds, story = _story_folds([30, 30, 30, 30])
    res = cross_validated_encoding(X, Y, folds, story, alphas=ALPHAS, dtype="float64",
                                   return_predictions=True)
    ref = reference_encoding(X, Y, folds, story, ALPHAS)
    _assert_matches(res, ref, 1e-5)
    np.testing.assert_allclose(res.predictions, ref["predictions"], rtol=1e-5, atol=1e-5)
    # the planted signal is recovered and the alphas are not all the same (a real test of the
    # per-target choice)
    assert res.r[0] > 0.8
    assert len(np.unique(res.fold_alpha)) > 2


def test_ridgecv_matches_sklearn_contiguous_inner_blocks():
    """One story (story_of_sample=None) -> inner contiguous blocks with a gap."""
    X, Y = _planted(120, 10, 7, seed=1)
    folds = _block_folds(120, 4, gap=3)
    res = cross_validated_encoding(X, Y, folds, None, alphas=ALPHAS, n_inner=4, inner_gap=2,
                                   dtype="float64")
    ref = reference_encoding(X, Y, folds, np.zeros(120, int), ALPHAS, n_inner=4, gap=2)
    _assert_matches(res, ref, 1e-5)
    assert len(np.unique(res.fold_alpha)) > 2


def test_ridgecv_two_stories_falls_back_to_blocks():
    """3 stories -> outer training sets hold 2 stories -> inner contiguous blocks."""
    X, Y = _planted(120, 10, 5, seed=2)
    folds, story = _story_folds([40, 50, 30])
    res = cross_validated_encoding(X, Y, folds, story, alphas=ALPHAS, n_inner=3, inner_gap=4,
                                   dtype="float64")
    ref = reference_encoding(X, Y, folds, story, ALPHAS, n_inner=3, gap=4)
    _assert_matches(res, ref, 1e-5)


def test_single_fixed_alpha_matches_sklearn():
    X, Y = _planted(120, 10, 7, seed=3)
    folds, story = _story_folds([30, 30, 30, 30])
    res = cross_validated_encoding(X, Y, folds, story, alphas=[10.0], dtype="float64",
                                   return_predictions=True)
    ref = reference_encoding(X, Y, folds, story, [10.0])
    _assert_matches(res, ref, 1e-6)
    np.testing.assert_allclose(res.predictions, ref["predictions"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(res.alpha, 10.0, rtol=1e-9)
    # a one-value grid: its value is both the smallest and the largest
    np.testing.assert_array_equal(res.alpha_at_edge, 1.0)


def test_float32_default_dtype_close_to_sklearn():
    X, Y = _planted(120, 10, 7, seed=0)
    folds, story = _story_folds([30, 30, 30, 30])
    res = cross_validated_encoding(X, Y, folds, story, alphas=ALPHAS)
    ref = reference_encoding(X, Y, folds, story, ALPHAS)
    _assert_matches(res, ref, 1e-4, alpha_rtol=1e-5)


def test_kernel_ridge_path_matches_sklearn():
    """Features outnumber training samples -> KernelRidgeCV with a linear kernel."""
    X, Y = _planted(80, 300, 6, seed=4, noise=0.5)
    folds, story = _story_folds([20, 20, 20, 20])
    alphas = np.logspace(0, 6, 13)
    res = cross_validated_encoding(X, Y, folds, story, alphas=alphas, dtype="float64",
                                   return_predictions=True)
    ref = reference_encoding(X, Y, folds, story, alphas)
    _assert_matches(res, ref, 1e-5)
    np.testing.assert_allclose(res.predictions, ref["predictions"], rtol=1e-5, atol=1e-5)


def test_kernel_ridge_path_is_used(monkeypatch):
    """p > n_train must go through KernelRidgeCV (and p < n_train through RidgeCV)."""
    import himalaya.kernel_ridge as hk
    import himalaya.ridge as hr

    used = []

    class SpyK(hk.KernelRidgeCV):
        def fit(self, X, y=None, **kw):
            used.append("kernel")
            return super().fit(X, y, **kw)

    class SpyR(hr.RidgeCV):
        def fit(self, X, y=None, **kw):
            used.append("primal")
            return super().fit(X, y, **kw)

    monkeypatch.setattr(hk, "KernelRidgeCV", SpyK)
    monkeypatch.setattr(hr, "RidgeCV", SpyR)
    folds, story = _story_folds([20, 20, 20])
    X, Y = _planted(60, 100, 2, seed=5)
    cross_validated_encoding(X, Y, folds, story, alphas=[1.0, 10.0], dtype="float64")
    assert used == ["kernel"] * 3
    used.clear()
    X, Y = _planted(60, 5, 2, seed=5)
    cross_validated_encoding(X, Y, folds, story, alphas=[1.0, 10.0], dtype="float64")
    assert used == ["primal"] * 3


# --------------------------------------------------------------------------- batching / backends
def _fields(res):
    return {k: getattr(res, k) for k in ("r", "r2", "r_concat", "alpha", "alpha_at_edge",
                                          "fold_r", "fold_r2", "fold_alpha", "predictions")}


def test_target_batching_matches_no_batching():
    X, Y = _planted(120, 10, 7, seed=6)
    folds, story = _story_folds([30, 30, 30, 30])
    kw = dict(alphas=ALPHAS, dtype="float64", return_predictions=True)
    whole = cross_validated_encoding(X, Y, folds, story, target_batch=None, **kw)
    batched = cross_validated_encoding(X, Y, folds, story, target_batch=3, **kw)
    for key, val in _fields(whole).items():
        np.testing.assert_allclose(getattr(batched, key), val, rtol=1e-9, atol=1e-9, err_msg=key)
    # and both are right
    _assert_matches(batched, reference_encoding(X, Y, folds, story, ALPHAS), 1e-5)


def test_memmap_responses(tmp_path):
    X, Y = _planted(120, 10, 5, seed=7)
    folds, story = _story_folds([30, 30, 30, 30])
    mm = np.memmap(tmp_path / "y.dat", dtype=np.float32, mode="w+", shape=Y.shape)
    mm[:] = Y
    mm.flush()
    mm = np.memmap(tmp_path / "y.dat", dtype=np.float32, mode="r", shape=Y.shape)
    res = cross_validated_encoding(X, mm, folds, story, alphas=ALPHAS, dtype="float64",
                                   target_batch=2)
    ref = reference_encoding(X, Y.astype(np.float32), folds, story, ALPHAS)
    _assert_matches(res, ref, 1e-5)


def test_torch_backend_matches_numpy():
    pytest.importorskip("torch")
    X, Y = _planted(120, 10, 7, seed=8)
    folds, story = _story_folds([30, 30, 30, 30])
    kw = dict(alphas=ALPHAS, return_predictions=True)
    a = cross_validated_encoding(X, Y, folds, story, backend="numpy", **kw)
    b = cross_validated_encoding(X, Y, folds, story, backend="torch", **kw)
    for key, val in _fields(a).items():
        np.testing.assert_allclose(getattr(b, key), val, rtol=1e-4, atol=1e-4, err_msg=key)


def test_torch_cuda_falls_back_to_cpu(caplog):
    torch = pytest.importorskip("torch")
    X, Y = _planted(90, 8, 3, seed=9)
    folds, story = _story_folds([30, 30, 30])
    with caplog.at_level(logging.WARNING, logger="brainalign.core.encoding.ridge"):
        res = cross_validated_encoding(X, Y, folds, story, alphas=ALPHAS, dtype="float64",
                                       backend="torch_cuda")
    ref = reference_encoding(X, Y, folds, story, ALPHAS)
    _assert_matches(res, ref, 1e-4)
    if not torch.cuda.is_available():
        assert any("CUDA is not available" in r.getMessage() for r in caplog.records)


def test_backend_context_restores_previous_and_rejects_unknown():
    from himalaya.backend import get_backend

    before = get_backend().name
    with himalaya_backend("numpy") as bk:
        assert bk.name == "numpy"
    assert get_backend().name == before
    with pytest.raises(ValueError, match="unknown backend"):
        with himalaya_backend("cupy_magic"):
            pass
    with pytest.raises(ValueError, match="unknown backend"):
        cross_validated_encoding(np.zeros((30, 2)), np.zeros((30, 1)),
                                 [(np.arange(15), np.arange(15, 30))], backend="jax")


# --------------------------------------------------------------------------- bad input
def test_sample_count_mismatch_raises():
    with pytest.raises(ValueError, match="samples"):
        cross_validated_encoding(np.zeros((30, 2)), np.zeros((31, 1)),
                                 [(np.arange(15), np.arange(15, 30))])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("where", ["X", "Y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises(where, bad):
    """The source does no NaN check of its own; a non-finite value in X or Y (in a training
    sample) is rejected by himalaya/scikit-learn input validation with a ValueError mentioning
    NaN/infinity (it does not name the input or the target). Never a silently-NaN result."""
    X, Y = _planted(90, 6, 3, seed=10)
    folds, story = _story_folds([30, 30, 30])
    if where == "X":
        X[40, 2] = bad
    else:
        Y[40, 1] = bad
    with pytest.raises(ValueError, match="(?i)nan|infinity"):
        cross_validated_encoding(X, Y, folds, story, alphas=[1.0, 10.0], dtype="float64")


# --------------------------------------------------------------------------- responses with a large mean
def test_r_concat_large_offset_float64():
    """Raw (not mean-removed) responses: in float64 r_concat still matches scipy."""
    X, Y = _planted(120, 10, 7, seed=0)
    Y = Y + 1000.0
    folds, story = _story_folds([30, 30, 30, 30])
    res = cross_validated_encoding(X, Y, folds, story, alphas=ALPHAS, dtype="float64")
    ref = reference_encoding(X, Y, folds, story, ALPHAS)
    _assert_matches(res, ref, 1e-6)


def test_r_concat_large_offset_default_float32():
    X, Y = _planted(120, 10, 7, seed=0)
    Y = Y + 1000.0
    folds, story = _story_folds([30, 30, 30, 30])
    res = cross_validated_encoding(X, Y, folds, story, alphas=ALPHAS)
    ref = reference_encoding(X, Y, folds, story, ALPHAS)
    np.testing.assert_allclose(res.r, ref["r"], atol=1e-4)  # fine
    np.testing.assert_allclose(res.r_concat, ref["r_concat"], atol=1e-3)  # fails


# --- circular-shift null model -------------------------------------------------------------------

def test_null_shifts_range_and_short_story_error():
    from brainalign.core.encoding.ridge import null_shifts

    story = np.repeat([0, 1], [120, 200])
    for seed in range(20):
        sh = null_shifts(story, min_shift=50, seed=seed)
        assert set(sh) == {0, 1}
        assert 50 <= sh[0] <= 70 and 50 <= sh[1] <= 150
    with pytest.raises(ValueError, match="too short"):
        null_shifts(np.repeat([0, 1], [120, 60]), min_shift=50)


def test_null_model_equals_a_fit_on_rolled_responses():
    """The shifted fit equals an ordinary fit on responses rolled by hand with np.roll."""
    from brainalign.core.encoding.folds import leave_stories_out
    from brainalign.core.encoding.ridge import cross_validated_encoding, null_shifts

    rng = np.random.default_rng(3)
    lens = [90, 110, 100]
    story = np.repeat(np.arange(3), lens)
    X = rng.standard_normal((sum(lens), 6))
    Y = X @ rng.standard_normal((6, 5)) + rng.standard_normal((sum(lens), 5))
    folds = leave_stories_out(lens)
    shifts = null_shifts(story, min_shift=20, seed=1)
    rolled = Y.copy()
    start = 0
    for s, n in enumerate(lens):
        rolled[start:start + n] = np.roll(Y[start:start + n], shifts[s], axis=0)
        start += n
    alphas = np.logspace(-1, 4, 6)
    a = cross_validated_encoding(X, Y, folds, story, alphas=alphas, shifts=shifts, dtype="float64")
    b = cross_validated_encoding(X, rolled, folds, story, alphas=alphas, dtype="float64")
    np.testing.assert_allclose(a.r, b.r, atol=1e-10)
    real = cross_validated_encoding(X, Y, folds, story, alphas=alphas, dtype="float64")
    # the planted signal is strong; the null breaks its alignment with the features
    assert real.r.mean() > 0.5 and abs(a.r.mean()) < 0.2


def test_stacked_rows_is_the_lazy_concatenation_and_encoding_reads_target_batches(tmp_path):
    from brainalign.core.encoding.folds import leave_stories_out
    from brainalign.core.encoding.ridge import StackedRows

    rng = np.random.default_rng(11)
    parts = []
    for i, n in enumerate((40, 35, 45)):
        np.save(tmp_path / f"s{i}.npy", rng.standard_normal((n, 30)).astype(np.float32))
        parts.append(np.load(tmp_path / f"s{i}.npy", mmap_mode="r"))
    full = np.concatenate([np.asarray(p) for p in parts])
    stack = StackedRows(parts, ["s0", "s1", "s2"])
    assert stack.shape == full.shape
    np.testing.assert_array_equal(stack[:, 3:9], full[:, 3:9])
    np.testing.assert_array_equal(stack[10:50, 4], full[10:50, 4])
    np.testing.assert_array_equal(np.asarray(stack), full)
    sub = StackedRows(parts, columns=[5, 2, 29])
    np.testing.assert_array_equal(sub[:, 1:], full[:, [2, 29]])
    with pytest.raises(ValueError, match="differ in their targets"):
        StackedRows([parts[0], parts[1][:, :10]], ["s0", "s1"])
    with pytest.raises(IndexError, match="out of range"):
        StackedRows(parts, columns=[30])

    widths = []

    class Spy(StackedRows):
        def __getitem__(self, key):
            widths.append(len(np.arange(self.shape[1])[key[1]]))
            return super().__getitem__(key)

    X = rng.standard_normal((120, 10)).astype(np.float32)
    folds = leave_stories_out([40, 35, 45])
    story = np.repeat([0, 1, 2], [40, 35, 45])
    lazy = cross_validated_encoding(X, Spy(parts), folds, story, target_batch=7)
    eager = cross_validated_encoding(X, full, folds, story, target_batch=7)
    assert max(widths) <= 7
    np.testing.assert_array_equal(lazy.r, eager.r)
    np.testing.assert_array_equal(lazy.alpha, eager.alpha)


def test_torch_scoring_on_the_backend_handles_constant_and_offset_targets():
    """The torch path scores on the backend's device: a constant target gets r = R² = 0 (as the
    numpy path), a target constant within one test fold gets 0 in that fold, and targets far
    from zero keep r and r_concat to 1e-4 of the numpy path."""
    pytest.importorskip("torch")
    X, Y = _planted(160, 12, 6, seed=21)
    Y = Y + 1000.0  # far from zero: the float64 sums must not cancel
    Y[:, 1] = 3.0
    Y[:40, 2] = 1.0
    folds, story = _story_folds([40, 40, 40, 40])
    kw = dict(alphas=ALPHAS, target_batch=4, return_predictions=True)
    a = cross_validated_encoding(X, Y, folds, story, backend="numpy", **kw)
    b = cross_validated_encoding(X, Y, folds, story, backend="torch", **kw)
    assert b.r[1] == 0 and b.r2[1] == 0 and b.fold_r[0, 2] == 0 and b.fold_r2[0, 2] == 0
    for key in ("r", "r_concat", "fold_r"):
        np.testing.assert_allclose(getattr(b, key), getattr(a, key), atol=1e-4, err_msg=key)
    np.testing.assert_allclose(b.predictions, a.predictions, rtol=1e-5)
    assert np.isfinite(b.r).all() and np.isfinite(b.r2).all() and np.isfinite(b.r_concat).all()


def test_numpy_backend_decomposes_with_numpys_lapack_inside_the_block_only():
    """Inside ``himalaya_backend('numpy')`` himalaya's numpy backend uses NumPy's eigh / svd (one
    OpenBLAS thread pool with the products); outside, SciPy's again, also after nesting."""
    import scipy.linalg
    import himalaya.backend.numpy as hb
    from brainalign.core.encoding.ridge import himalaya_backend

    before = (hb.eigh, hb.linalg)
    M = np.random.default_rng(0).standard_normal((30, 20))
    G = M @ M.T
    with himalaya_backend("numpy") as bk:
        assert bk.eigh is np.linalg.eigh and bk.linalg is np.linalg
        with himalaya_backend("numpy"):
            pass
        assert bk.eigh is np.linalg.eigh          # the inner block did not restore early
        lam, V = bk.eigh(G)
        U, s, Vt = bk.svd(M, full_matrices=False)
    assert (hb.eigh, hb.linalg) == before and hb.linalg is scipy.linalg
    np.testing.assert_allclose(lam, scipy.linalg.eigvalsh(G), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(V @ np.diag(lam) @ V.T, G, atol=1e-9)
    np.testing.assert_allclose(s, scipy.linalg.svdvals(M), rtol=1e-10)
