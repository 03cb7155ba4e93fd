"""Ridge solvers for one outer fold: the registry behind ``encoding.solver``.

Both solve the same problem as himalaya's ``RidgeCV`` / ``KernelRidgeCV`` with ``fit_intercept``
off (the caller z-scores X and centres Y with training statistics): for every target, the alpha
of the grid with the best mean inner-CV score (negative squared error per validation sample,
averaged over the inner splits, ties to the larger alpha), then a refit on the whole training set
and a prediction of the held-out rows.

``himalaya``
    himalaya's ``RidgeCV`` (``KernelRidgeCV`` with a linear kernel when features outnumber
    training samples), called per target batch; the reference.
``shared``
    :class:`SharedRidgeCV`: the decompositions are made once per fold and shared by every target
    batch and every alpha. For training rows ``X`` (n x p) and rows to predict ``Xo``:

    - primal (p <= n): ``X^T X = V diag(lam) V^T`` (eigendecomposition of a p x p float64 Gram
      matrix), ``A = Xo V``, ``B = V^T X^T Y``;
    - dual (p > n): ``X X^T = U diag(lam) U^T``, ``A = Xo X^T U``, ``B = U^T Y``.

    Then ``pred(alpha) = A diag(1 / (lam + alpha)) B``. ``B`` (k x targets) is computed once per
    split and batch; each alpha costs one product ``A (B / (lam + alpha))``, n_val x k x targets,
    where himalaya forms ``Xo V diag(s / (s^2 + alpha)) U^T`` and multiplies it by ``Y`` for every
    alpha (n_val x n x targets). The refit needs no grouping by alpha: each target's column of
    ``B`` is divided by ``lam + alpha_target`` and one product ``A C`` predicts every target.

Shapes: ``Xtr`` (n_train, p), ``Xte`` (n_test, p), ``Ytr`` (n_train, n_targets), ``splits`` a
list of (train, validation) positions within the training rows. Everything runs on a himalaya
backend (numpy, torch, torch_cuda); the decompositions are float64, the products in the
computation dtype. tests/core/test_solvers.py checks the scores and alphas against himalaya.
"""
from __future__ import annotations

import numpy as np

#: the solvers ``encoding.solver`` may name
SOLVERS = ("himalaya", "shared")


def _eigh(bk, M, dtype):
    """Eigenvalues clipped at 0 (round-off on a positive semi-definite matrix) and eigenvectors
    of a symmetric float64 matrix, both in ``dtype``."""
    lam, V = bk.eigh(M)
    return bk.asarray(bk.clip(lam, 0, None), dtype=dtype), bk.asarray(V, dtype=dtype)


def _gram(bk, X, rows: bool, block: int = 256):
    """float64 ``X X^T`` (``rows``) or ``X^T X`` of a float32 ``X``, built from float64 copies of
    ``block`` columns (rows) at a time, so no float64 copy of the whole ``X`` is held."""
    n, p = X.shape
    k = n if rows else p
    out = bk.zeros((k, k), dtype=bk.float64)
    for s in range(0, p if rows else n, block):
        if rows:
            B = bk.asarray(X[:, s:s + block], dtype=bk.float64)
            out += B @ B.T
        else:
            B = bk.asarray(X[s:s + block], dtype=bk.float64)
            out += B.T @ B
    return out


def _block(bk, K, rows, cols):
    """``K[rows][:, cols]`` with one copy on numpy (``np.ix_``)."""
    if isinstance(K, np.ndarray):
        return K[np.ix_(np.asarray(rows), np.asarray(cols))]
    return K[bk.asarray(np.asarray(rows))][:, bk.asarray(np.asarray(cols))]


class SharedRidgeCV:
    """One outer fold's ridge with per-target alphas, decompositions shared across target batches.

    Primal form (features <= training rows): the Gram matrix ``G = X^T X`` of the fold's training
    rows is formed once in float64; an inner split's Gram is ``G`` minus the Gram of the rows it
    leaves out (its validation rows and any gap), so every inner split costs one small product and
    one p x p eigendecomposition. Per target batch, ``X^T Y`` is formed once and each split's
    ``X_i^T Y_i`` is it minus the left-out rows' part. Stored per split: ``V`` (p x p) and
    ``A = X_val V`` (n_val x p). Dual form (features > rows): ``K = X X^T`` once, each split's
    kernel a sub-block of it; stored ``U`` (n_i x n_i) and ``A = X_val X_i^T U``.

    Parameters
    ----------
    bk : a himalaya backend module.
    Xtr : array of shape (n_train, n_features), standardised training features.
    Xte : array of shape (n_test, n_features), held-out features (same scaling).
    alphas : array of shape (n_alphas,), the grid.
    splits : inner (train, validation) positions within the training rows.
    dtype : computation dtype of the products (``"float32"`` or ``"float64"``).
    """

    def __init__(self, bk, Xtr, Xte, alphas, splits, dtype: str = "float32"):
        self.bk = bk
        self.dtype = getattr(bk, dtype) if isinstance(dtype, str) else dtype
        X = bk.asarray(Xtr, dtype=self.dtype)
        Xte = bk.asarray(Xte, dtype=self.dtype)
        n, p = X.shape
        self.X = X
        self.primal = p <= n
        self.alphas = bk.asarray(np.asarray(alphas, dtype=np.float64), dtype=self.dtype)
        self._tiebreak = bk.asarray(np.log(np.asarray(alphas, dtype=np.float64)) * 1e-10, dtype=bk.float64)
        self.splits = []
        if self.primal:
            G = _gram(bk, X, rows=False)
            for tr, va in splits:
                out = np.setdiff1d(np.arange(n), np.asarray(tr))   # validation rows and gaps
                out_b, va_b = bk.asarray(out), bk.asarray(np.asarray(va))
                Xo = bk.asarray(X[out_b], dtype=bk.float64)
                lam, V = _eigh(bk, G - Xo.T @ Xo, self.dtype)
                del Xo
                self.splits.append((out_b, va_b, X[va_b] @ V, V, lam))
            lam, V = _eigh(bk, G, self.dtype)
            del G
            self.full = (Xte @ V, V, lam)
        else:
            K = _gram(bk, X, rows=True)
            for tr, va in splits:
                tr_b, va_b = bk.asarray(np.asarray(tr)), bk.asarray(np.asarray(va))
                lam, U = _eigh(bk, _block(bk, K, tr, tr), self.dtype)
                A = bk.asarray(_block(bk, K, va, tr), dtype=self.dtype) @ U
                self.splits.append((tr_b, va_b, A, U, lam))
            lam, U = _eigh(bk, K, self.dtype)
            del K
            self.full = ((Xte @ X.T) @ U, U, lam)

    def _projections(self, Ytr):
        """(validation responses, B = P Y of the split) for each inner split, then B of the full fit."""
        X = self.X
        if self.primal:
            C = X.T @ Ytr                                      # p x t, once per batch
            for out, va, A, V, lam in self.splits:
                yield Ytr[va], A, V.T @ (C - X[out].T @ Ytr[out]), lam
            A, V, lam = self.full
            yield None, A, V.T @ C, lam
        else:
            for tr, va, A, U, lam in self.splits:
                yield Ytr[va], A, U.T @ Ytr[tr], lam
            A, U, lam = self.full
            yield None, A, U.T @ Ytr, lam

    def fit_predict(self, Ytr):
        """Choose each target's alpha and predict the held-out rows.

        Parameters
        ----------
        Ytr : array of shape (n_train, n_targets) on the backend, centred with the training mean.

        Returns
        -------
        pred : array (n_test, n_targets) on the backend; best_alphas : numpy array (n_targets,).
        """
        bk = self.bk
        Ytr = bk.asarray(Ytr, dtype=self.dtype)
        n_alphas, n_targets = len(self.alphas), Ytr.shape[1]
        scores = bk.zeros((n_alphas, n_targets), dtype=bk.float64)
        for Yv, A, B, lam in self._projections(Ytr):
            if Yv is None:       # the full fit comes last: refit with each target's alpha
                scores = scores / len(self.splits) + self._tiebreak[:, None]
                best_alphas = self.alphas[bk.argmax(scores, 0)]
                pred = A @ (B / (lam[:, None] + best_alphas[None, :]))
                return pred, bk.to_numpy(bk.asarray(best_alphas, dtype=bk.float64))
            for i in range(n_alphas):
                err = bk.sum((Yv - A @ (B / (lam + self.alphas[i])[:, None])) ** 2, 0)
                scores[i] -= bk.asarray(err, dtype=bk.float64) / Yv.shape[0]
        raise AssertionError("unreachable")
