"""Cross-validated ridge decoding: from brain responses to stimulus embeddings.

Decoding inverts the encoding direction. The encoding features are FIR-delayed stimulus
embeddings (row t holds the stimulus at TRs ``t - delay``); for decoding, the stimulus of one TR
is predicted from the responses at the TRs where it is expected to show (``t + lag``):
:func:`stimulus_from_delayed` reads the undelayed stimulus ``Z`` and the lags out of the delayed
features, and :func:`lagged_responses` stacks the lagged responses ``B`` (per ROI or network:
pass that ROI's columns of the responses).

:func:`cross_validated_decoding`, per outer fold:

1. rows whose stimulus ``Z`` is all zero (the zero padding at story starts, silent TRs) are
   neither fitted nor scored (``drop_zero_rows``; their number is ``DecodingResult.n_zero_rows``);
2. ``B`` (predictors) and ``Z`` (outputs) are z-scored with training statistics
   (:func:`~brainalign.core.encoding.ridge.standardize`);
3. one alpha per fold, shared by all output dimensions, is chosen by inner cross-validation on
   the training set (:func:`~brainalign.core.encoding.folds.inner_splits`) as the alpha with the
   **smallest held-out mean squared error** pooled over the inner splits, items and output
   dimensions (ties go to the larger alpha). MSE rather than correlation: with no signal the
   held-out r is noise at every alpha, while the MSE is smallest for strong shrinkage, so noise
   picks a large alpha. Within an inner split ``B`` and ``Z`` are centred with the inner training
   means (the intercept), as scikit-learn's ``Ridge(fit_intercept=True)`` does;
4. ridge is fitted on the whole training set and predicts the test items. Ridge is solved with
   one SVD of the standardised training predictors ``B_tr = U S V^T`` per (inner) training set,
   reused across alphas: ``pred = B_te V diag(s / (s^2 + alpha)) U^T Z_tr``, in float64;
5. the test items are scored in the standardised units of Z (training statistics): pairwise
   matching accuracy over pairs within the fold's test set, and MSE.

:func:`decoding_null` scores the same model on null brain responses (rows of ``B`` permuted within
stories by a shift or block-permutation draw, :mod:`brainalign.core.stats.nulls`), refitting
every fold with the alpha that the real model chose; :func:`decoding_p` is the one-sided p-value.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..encoding.folds import Fold, inner_splits
from ..encoding.ridge import alpha_grid, standardize
from ..stats.nulls import _story_rows, draw_index
from .metrics import _pairwise_counts


# ----------------------------------------------------------------------------- lags
def _int_lags(values, name: str) -> list[int]:
    out = []
    for v in np.atleast_1d(np.asarray(values)).tolist():
        if int(v) != v:
            raise ValueError(f"{name} must be integers (TRs), got {v!r}")
        out.append(int(v))
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def lagged_responses(Y, story_of_sample, lags) -> np.ndarray:
    """Responses stacked at non-negative lags, within each story.

    Parameters
    ----------
    Y : array (n_samples, n_targets), the responses of all stories concatenated.
    story_of_sample : array (n_samples,), the story label of each row (a story's rows are taken in
        their order; they need not be contiguous).
    lags : sequence of integers >= 0 (TRs).

    Returns
    -------
    array (n_samples, n_targets * len(lags)) of Y's dtype: block k (columns
    ``k * n_targets:(k + 1) * n_targets``) at row t holds the responses of the row ``lags[k]``
    rows after t in the same story, and zeros where that runs past the story's end.

    Raises
    ------
    ValueError : a negative lag, or ``story_of_sample`` of the wrong length.
    """
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"Y must be 2-D (n_samples, n_targets), got shape {Y.shape}")
    sos = np.asarray(story_of_sample)
    if sos.shape != (Y.shape[0],):
        raise ValueError(f"story_of_sample has shape {sos.shape} for Y with {Y.shape[0]} rows")
    lags = _int_lags(lags, "lags")
    neg = [v for v in lags if v < 0]
    if neg:
        raise ValueError(f"lags must be >= 0 (responses follow the stimulus), got {neg}")
    m = Y.shape[1]
    out = np.zeros((Y.shape[0], m * len(lags)), dtype=Y.dtype)
    for _, rows in _story_rows(sos):
        n = len(rows)
        for k, lag in enumerate(lags):
            if lag < n:
                out[rows[: n - lag], k * m:(k + 1) * m] = Y[rows[lag:]]
    return out


def stimulus_from_delayed(X, delays) -> tuple[np.ndarray, list[int]]:
    """The stimulus and the response lags behind FIR-delayed encoding features.

    Parameters
    ----------
    X : array (n_samples, d * len(delays)), FIR-delayed features
        (:func:`~brainalign.core.timing.resample.fir_delays`): block k at row t is the stimulus
        ``x[t - delays[k]]``, zero-padded at story starts.
    delays : the FIR delays (TRs) in the order of X's blocks; the first must be the smallest.

    Returns
    -------
    Z : array (n_samples, d), block 0 of X: row t is the stimulus of TR ``t - delays[0]``
        (all zero on the padded rows at story starts).
    lags : list of ``delay - delays[0]``, so that ``lagged_responses(Y, sos, lags)`` at row t
        holds the responses at TRs ``(t - delays[0]) + delay``: exactly the responses that the
        encoding model relates to the stimulus of row t.

    Raises
    ------
    ValueError : X's width not divisible by ``len(delays)``, or a delay smaller than the first.
    """
    X = np.asarray(X)
    delays = _int_lags(delays, "delays")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, d * n_delays), got shape {X.shape}")
    if X.shape[1] % len(delays):
        raise ValueError(f"X has {X.shape[1]} columns, not divisible by the {len(delays)} delays {delays}")
    lags = [v - delays[0] for v in delays]
    if min(lags) < 0:
        raise ValueError(f"delays {delays}: the first delay must be the smallest (Z is read from block 0)")
    d = X.shape[1] // len(delays)
    return X[:, :d], lags


# ----------------------------------------------------------------------------- ridge
@dataclass
class DecodingResult:
    """Scores of a cross-validated decoding model.

    Attributes
    ----------
    pairwise_accuracy : float, pairwise matching accuracy pooled over the within-fold pairs of
        scored test items.
    fold_accuracy : array (n_folds,), pairwise accuracy of each fold.
    mse : float, mean squared error over scored test items and output dimensions, in the
        standardised units of Z (each fold's test items standardised with its training statistics).
    fold_mse : array (n_folds,).
    n_items : int, scored test items (summed over folds).
    n_pairs : int, within-fold pairs (summed over folds).
    fold_alpha : array (n_folds,), the alpha chosen in each fold.
    alpha_at_edge : float, share of folds whose alpha is the grid's smallest or largest value.
    n_zero_rows : int, rows of Z that are all zero (neither fitted nor scored when
        ``drop_zero_rows``; 0 otherwise).
    predictions : array (n_samples, d) or None: held-out predictions in the units of Z (each
        fold's standardisation undone), NaN on rows never scored; only when asked for.
    """

    pairwise_accuracy: float
    fold_accuracy: np.ndarray
    mse: float
    fold_mse: np.ndarray
    n_items: int
    n_pairs: int
    fold_alpha: np.ndarray
    alpha_at_edge: float
    n_zero_rows: int
    predictions: np.ndarray | None = field(default=None, repr=False)


def _check_inputs(B, Z, folds, story_of_sample):
    B = np.asarray(B)
    Z = np.asarray(Z)
    if B.ndim != 2 or Z.ndim != 2:
        raise ValueError(f"B (n_samples, n_predictors) and Z (n_samples, n_dims) must be 2-D; got shapes "
                         f"{B.shape} and {Z.shape}")
    n = B.shape[0]
    if Z.shape[0] != n:
        raise ValueError(f"B has {n} rows (samples) but Z has {Z.shape[0]}")
    if Z.shape[1] < 2:
        raise ValueError(f"Z has {Z.shape[1]} dimension(s); pairwise accuracy correlates across dimensions "
                         "and needs at least 2")
    for name, x in (("B", B), ("Z", Z)):
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(f"{name} has NaN or inf values in {int(bad.any(1).sum())} rows "
                             f"(first: {np.flatnonzero(bad.any(1))[:5].tolist()})")
    sos = np.zeros(n, dtype=np.int64) if story_of_sample is None else np.asarray(story_of_sample)
    if sos.shape != (n,):
        raise ValueError(f"story_of_sample has shape {sos.shape} for {n} samples")
    if not len(folds):
        raise ValueError("no folds given")
    for f, (train, test) in enumerate(folds):
        for role, idx in (("train", train), ("test", test)):
            idx = np.asarray(idx)
            if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"fold {f}: {role} indices must be integers in [0, {n}) for {n} samples")
    return B, Z, sos


def _kept_folds(Z, folds, drop_zero_rows: bool) -> tuple[list[Fold], int]:
    """Each fold's train and test rows without the all-zero stimulus rows; errors name the fold."""
    zero = ~np.any(Z != 0, axis=1)
    n_zero = int(zero.sum()) if drop_zero_rows else 0
    out = []
    for f, (train, test) in enumerate(folds):
        train, test = np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)
        if drop_zero_rows:
            train, test = train[~zero[train]], test[~zero[test]]
        if len(test) < 2:
            raise ValueError(f"fold {f} has {len(test)} scorable test items (rows of Z not all zero); "
                             "pairwise accuracy needs at least 2")
        if len(train) < 2:
            raise ValueError(f"fold {f} has {len(train)} training items (rows of Z not all zero); too few to fit")
        out.append((train, test))
    return out, n_zero


def _fold_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training mean and standard deviation (zero replaced by 1), as used by ``standardize``."""
    sd = x.std(0)
    sd[sd == 0] = 1.0
    return x.mean(0), sd


def _thin_svd(B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``B = U diag(s) V^T`` without the directions of (numerically) zero singular
    values. With more columns than rows (an ROI's voxels x delays against a fold's TRs) it comes
    from the eigendecomposition of the n x n Gram matrix ``B B^T`` (one product and an ``eigh``,
    several times faster than a full SVD of the wide matrix), with ``V^T = diag(1/s) U^T B``;
    otherwise from ``numpy.linalg.svd``. Dropping a zero singular value changes no ridge
    prediction (its weight ``s / (s^2 + alpha)`` is 0)."""
    n, p = B.shape
    if p <= n:
        U, s, Vt = np.linalg.svd(B, full_matrices=False)
    else:
        w, U = np.linalg.eigh(B @ B.T)
        w, U = w[::-1], U[:, ::-1]
        s = np.sqrt(np.clip(w, 0, None))
        Vt = (U.T @ B) / np.where(s > 0, s, 1.0)[:, None]
    keep = s > s[0] * 1e-7 if len(s) and s[0] > 0 else np.zeros(len(s), bool)
    return U[:, keep], s[keep], Vt[keep]


def _ridge_factors(Btr: np.ndarray, Ztr: np.ndarray, Bte: np.ndarray):
    """(B_te V, s, U^T Z_tr) of the thin SVD of ``Btr`` (:func:`_thin_svd`): the predictions at
    alpha are ``(BteV * (s / (s^2 + alpha))) @ UtZ``."""
    U, s, Vt = _thin_svd(Btr)
    return Bte @ Vt.T, s, U.T @ Ztr


def _ridge_predict(BteV, s, UtZ, alpha: float) -> np.ndarray:
    return (BteV * (s / (s * s + alpha))) @ UtZ


def _choose_alpha(Btr: np.ndarray, Ztr: np.ndarray, splits: list[Fold], alphas: np.ndarray
                  ) -> tuple[float, np.ndarray]:
    """The alpha with the smallest held-out MSE pooled over inner splits (ties: the larger alpha),
    and the MSE per alpha (n_alphas,)."""
    sse = np.zeros(len(alphas))
    count = 0
    for itr, ite in splits:
        if len(itr) < 2 or len(ite) < 1:
            continue
        bm, zm = Btr[itr].mean(0), Ztr[itr].mean(0)
        BteV, s, UtZ = _ridge_factors(Btr[itr] - bm, Ztr[itr] - zm, Btr[ite] - bm)
        target = Ztr[ite] - zm
        for a, alpha in enumerate(alphas):
            sse[a] += np.sum((_ridge_predict(BteV, s, UtZ, alpha) - target) ** 2)
        count += target.size
    if count == 0:
        raise ValueError("inner cross-validation has no usable split (too few training items)")
    mse = sse / count
    best = np.flatnonzero(mse <= mse.min())
    return float(alphas[best[np.argmax(alphas[best])]]), mse


def _check_alphas(alphas) -> np.ndarray:
    alphas = alpha_grid() if alphas is None else np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise ValueError(f"alphas must be finite and > 0, got {alphas}")
    return alphas


def cross_validated_decoding(B, Z, folds: list[Fold], story_of_sample=None, alphas=None, n_inner: int = 5,
                             inner_gap: int = 5, drop_zero_rows: bool = True,
                             return_predictions: bool = False) -> DecodingResult:
    """Cross-validated ridge decoding of stimulus embeddings from brain responses.

    Parameters
    ----------
    B : array (n_samples, n_predictors), the (lagged) responses of one ROI or network
        (:func:`lagged_responses`).
    Z : array (n_samples, d), the stimulus embeddings to decode, d >= 2.
    folds : list of (train, test) index arrays into the samples.
    story_of_sample : array (n_samples,) of story labels for the inner splits (leave one story out
        when a training set holds >= 3 stories, contiguous blocks with ``inner_gap`` otherwise);
        None: one story.
    alphas : ridge penalties (> 0); default :func:`~brainalign.core.encoding.ridge.alpha_grid`
        (1e-2 to 1e8).
    n_inner, inner_gap : inner contiguous blocks and their gap (when < 3 training stories).
    drop_zero_rows : leave out rows whose Z is all zero from fitting and scoring.
    return_predictions : also return the held-out predictions.

    Returns
    -------
    DecodingResult

    Raises
    ------
    ValueError : shapes that do not match, NaN or inf, d < 2, bad fold indices, a fold with fewer
        than 2 scorable test items (named), or a constant predicted/true row in a fold.

    Notes
    -----
    The alpha criterion (inner held-out MSE) and the scoring units are described in the module
    docstring.
    """
    B, Z, sos = _check_inputs(B, Z, folds, story_of_sample)
    alphas = _check_alphas(alphas)
    kept, n_zero = _kept_folds(Z, folds, drop_zero_rows)
    n_folds = len(kept)
    fold_acc, fold_mse, fold_alpha = np.empty(n_folds), np.empty(n_folds), np.empty(n_folds)
    score_total, pairs_total, sse_total, n_items = 0.0, 0, 0.0, 0
    preds = np.full(Z.shape, np.nan) if return_predictions else None
    for f, (train, test) in enumerate(kept):
        Btr, Bte = standardize(B[train].astype(np.float64), B[test].astype(np.float64))
        Zraw = Z[train].astype(np.float64)
        Ztr, Zte = standardize(Zraw, Z[test].astype(np.float64))
        splits = inner_splits(train, sos, n_inner, inner_gap)
        alpha, _ = _choose_alpha(Btr, Ztr, splits, alphas)
        BteV, s, UtZ = _ridge_factors(Btr, Ztr, Bte)
        pred = _ridge_predict(BteV, s, UtZ, alpha)
        score, n_pairs = _pairwise_counts(Zte, pred, what=f"fold {f}")
        sse = float(np.sum((pred - Zte) ** 2))
        fold_acc[f], fold_mse[f], fold_alpha[f] = score / n_pairs, sse / Zte.size, alpha
        score_total += score
        pairs_total += n_pairs
        sse_total += sse
        n_items += len(test)
        if preds is not None:
            mean, sd = _fold_stats(Zraw)
            preds[test] = pred * sd + mean
    edge = np.isclose(fold_alpha, alphas.min()) | np.isclose(fold_alpha, alphas.max())
    return DecodingResult(
        pairwise_accuracy=score_total / pairs_total, fold_accuracy=fold_acc,
        mse=sse_total / (n_items * Z.shape[1]), fold_mse=fold_mse, n_items=n_items, n_pairs=pairs_total,
        fold_alpha=fold_alpha, alpha_at_edge=float(edge.mean()), n_zero_rows=n_zero, predictions=preds)


# ----------------------------------------------------------------------------- null
def decoding_null(B, Z, folds: list[Fold], story_of_sample, fold_alpha, draws: list,
                  drop_zero_rows: bool = True, reuse_svd: bool = True) -> np.ndarray:
    """Pooled pairwise accuracy of the decoding model on null brain responses, one per draw.

    Each draw is an index array ``idx`` over all samples (:func:`~brainalign.core.stats.nulls.draw_index`
    of a shift dict or a block permutation, :func:`~brainalign.core.stats.nulls.null_draws`) that
    permutes rows within stories: the null predictors are ``B[idx]`` (the rows of the *lagged*
    responses are moved; for a shift this equals shifting the responses before lagging except at
    the story's wrap-around seam), while Z, the folds and the dropped zero rows stay those of the
    real model. Every fold is refitted with the alpha the real model chose there
    (``DecodingResult.fold_alpha``; the usual shortcut, not re-choosing alpha per draw, as
    :func:`~brainalign.core.stats.nulls.null_distribution`) and scored like the real model.

    Speed: when a draw permutes a fold's training rows among themselves (``idx[train]`` is a
    permutation of ``train``, e.g. leave-stories-out folds without dropped rows), the null design is
    a row permutation ``P B_tr`` of the real one, with the same standardisation and SVD
    ``(P U) S V^T``, so the fold's decomposition is reused. Otherwise (e.g. a shift moves a padded
    row at a story start into the training set) the fold is standardised and decomposed anew.
    ``reuse_svd=False`` always refits (a check of the shortcut).

    Parameters
    ----------
    B, Z, folds, story_of_sample, drop_zero_rows : as for :func:`cross_validated_decoding`
        (``story_of_sample`` is required: draws are per story).
    fold_alpha : array (n_folds,), the alpha of each fold of the real model.
    draws : list of K draws (shift dicts or index arrays of shape (n_samples,)).

    Returns
    -------
    array (K,), the pooled within-fold pairwise accuracy of each draw.
    """
    if story_of_sample is None:
        raise ValueError("decoding_null needs story_of_sample: null draws permute rows within stories")
    B, Z, sos = _check_inputs(B, Z, folds, story_of_sample)
    fold_alpha = np.asarray(fold_alpha, dtype=np.float64).ravel()
    if fold_alpha.shape != (len(folds),):
        raise ValueError(f"fold_alpha has {fold_alpha.size} values for {len(folds)} folds")
    if not len(draws):
        raise ValueError("no null draws given")
    kept, _ = _kept_folds(Z, folds, drop_zero_rows)
    index = [draw_index(d, sos) for d in draws]
    n = B.shape[0]
    score = np.zeros(len(index))
    n_pairs_total = 0
    for f, (train, test) in enumerate(kept):
        alpha = fold_alpha[f]
        Ztr, Zte = standardize(Z[train].astype(np.float64), Z[test].astype(np.float64))
        train_sorted = np.sort(train)
        factors = None
        for k, idx in enumerate(index):
            rows_tr, rows_te = idx[train], idx[test]
            if reuse_svd and np.array_equal(np.sort(rows_tr), train_sorted):
                if factors is None:
                    mean, sd = _fold_stats(B[train].astype(np.float64))
                    U, s, Vt = _thin_svd((B[train] - mean) / sd)
                    BV = ((B - mean) / sd) @ Vt.T            # every row, standardised with train stats
                    where = np.full(n, -1, dtype=np.int64)
                    where[train] = np.arange(len(train))
                    factors = (U, s, BV, where)
                U, s, BV, where = factors
                UtZ = U[where[rows_tr]].T @ Ztr               # (P U)^T Z_tr
                pred = _ridge_predict(BV[rows_te], s, UtZ, alpha)
            else:
                Btr, Bte = standardize(B[rows_tr].astype(np.float64), B[rows_te].astype(np.float64))
                pred = _ridge_predict(*_ridge_factors(Btr, Ztr, Bte), alpha)
            score[k] += _pairwise_counts(Zte, pred, what=f"fold {f}, null draw {k}")[0]
        n_pairs_total += len(test) * (len(test) - 1) // 2
    return score / n_pairs_total


def decoding_p(acc: float, null_acc) -> float:
    """One-sided p of a decoding accuracy: ``(1 + #{null >= acc}) / (K + 1)``.

    Parameters
    ----------
    acc : the real pooled pairwise accuracy; null_acc : array (K,) from :func:`decoding_null`.
    """
    null_acc = np.asarray(null_acc, dtype=np.float64).ravel()
    if null_acc.size == 0:
        raise ValueError("no null accuracies given")
    if not np.isfinite(acc) or not np.all(np.isfinite(null_acc)):
        raise ValueError("decoding_p: the accuracy and the null accuracies must be finite")
    return float((1.0 + np.sum(null_acc >= acc)) / (null_acc.size + 1.0))
