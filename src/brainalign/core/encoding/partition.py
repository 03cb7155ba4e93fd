"""Variance partitioning of cross-validated encoding models between 2 or 3 feature bands.

For feature bands A, B (and C), an encoding model is fitted on every non-empty subset of the
bands and scored by held-out R²; set theory then splits the R² of the joint model into the
variance each band explains uniquely and the variance shared by two or three bands
(Lescroart et al. 2015, Front. Comput. Neurosci.; de Heer et al. 2017, J. Neurosci.).

Solver
------
Subsets of two or more bands are fitted with himalaya's ``BandedRidgeCV`` (an alias of
``GroupRidgeCV``, ``solver="random_search"``): one ridge penalty per band, searched by random
draws of the band weights ``gamma`` on the simplex (Dirichlet, the first draw is uniform) times a
log grid of ``alphas``, each candidate scored by inner cross-validation (negative mean squared
error per target). Band ``b`` of a target ends with the penalty ``alpha_b = alpha / gamma_b =
exp(-delta_b)``, with ``delta`` himalaya's ``deltas_``. ``BandedRidgeCV`` is chosen over
``MultipleKernelRidgeCV`` with linear kernels because it is the same model and the same random
search, solved in feature space with one code path for any number of features; it returns primal
weights, and the single-band subsets (himalaya ``RidgeCV`` on the same grid and splits, the
model of :mod:`~brainalign.core.encoding.ridge`) are the one-band case of the same problem. When
the bands together hold more features than training rows (a model layer with FIR delays on a
short study), the same random search runs in its dual form instead, himalaya's
``MultipleKernelRidgeCV`` on the linear kernels ``X_b X_b^T`` of the bands (kernel weights
``exp(delta_b)``: the same model, the same draws, about 4x faster at 260 rows x 1,576 features);
tests/core/test_partition.py checks that both forms give the same predictions.

The fold rule
-------------
Per outer fold, every band is z-scored with the *training* rows' mean and SD only
(:func:`~brainalign.core.encoding.ridge.standardize`), responses are centred with the training
mean (no intercept is fitted), and the penalties and band weights are chosen by inner splits of
the training rows (:func:`~brainalign.core.encoding.folds.inner_splits`: leave one story out with
>= 3 training stories, contiguous blocks with a gap otherwise). The test rows are only predicted
and scored.

Partition
---------
With ``R(S)`` the held-out R² of the model on the bands in ``S`` (``R(∅) = 0``) and ``g(U) =
R(all) - R(all minus U)`` the R² lost by dropping the bands in ``U``, the region explained by
exactly the bands in ``T`` (and by no other band) is the Möbius inversion
``region(T) = sum over U ⊆ T of (-1)^{|T|-|U|} g(U)``. For two bands::

    unique[A]   = R(A+B) - R(B)
    unique[B]   = R(A+B) - R(A)
    shared[A+B] = R(A) + R(B) - R(A+B)

and for three bands (``shared[A+B]`` is shared by A and B but not C)::

    unique[A]     = R(A+B+C) - R(B+C)
    shared[A+B]   = R(A+C) + R(B+C) - R(C) - R(A+B+C)
    shared[A+B+C] = R(A) + R(B) + R(C) - R(A+B) - R(A+C) - R(B+C) + R(A+B+C)

The regions sum to ``R(all)``. They are computed from the fold-averaged R² (the same as
averaging per-fold partitions, the map being linear) and are not clipped: a negative region is
estimation noise (or a sign that a band hurts prediction) and is reported as it is.
"""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .folds import Fold, _Splits, inner_splits
from .metrics import _mean, pearson_r, r2_score
from .ridge import alpha_grid, check_finite_responses, himalaya_backend, standardize

_FORBIDDEN = "+[]"


def subset_label(subset: Sequence[str]) -> str:
    """Name of a subset of bands: the band names joined by ``+`` (e.g. ``"A+B"``)."""
    return "+".join(subset)


def band_subsets(bands: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``bands``, by size and then in band order:
    ``[(A,), (B,), (A, B)]`` for two bands, 7 subsets for three."""
    bands = list(bands)
    return [c for k in range(1, len(bands) + 1) for c in itertools.combinations(bands, k)]


@dataclass
class PartitionResult:
    """Held-out scores of the encoding models on every subset of 2 or 3 feature bands.

    Dictionaries are keyed by subset label (:func:`subset_label`, e.g. ``"A"``, ``"A+B"``), in
    the order of :func:`band_subsets`.

    Attributes
    ----------
    bands : tuple of the band names, in the order given.
    fold_r2, fold_r : dict label -> array of shape (n_folds, n_targets): R² and Pearson r on
        each outer fold's test rows (responses centred with the training mean).
    fold_log10_alpha : dict label -> array of shape (n_folds, n_bands_in_subset, n_targets):
        log10 of each band's penalty, ``alpha_b = exp(-deltas_[b])`` for banded models, the
        chosen ``alpha`` for single-band models.
    fold_alpha : dict label -> array of shape (n_folds, n_targets): the grid alpha chosen
        (himalaya's ``best_alphas_``; for banded models the penalty before the band weights,
        which sum to 1).
    alphas : array of shape (n_alphas,), the grid searched.
    predictions : dict label -> array of shape (n_samples, n_targets) of held-out predictions
        in the units of ``Y`` (NaN where a sample was never tested), only when asked for.
    """

    bands: tuple
    fold_r2: dict
    fold_r: dict
    fold_log10_alpha: dict
    fold_alpha: dict
    alphas: np.ndarray
    predictions: dict | None = field(default=None, repr=False)

    @property
    def r2(self) -> dict:
        """dict label -> array of shape (n_targets,): R² per fold averaged over folds."""
        return {k: v.mean(0) for k, v in self.fold_r2.items()}

    @property
    def r(self) -> dict:
        """dict label -> array of shape (n_targets,): r per fold averaged over folds."""
        return {k: v.mean(0) for k, v in self.fold_r.items()}


# ------------------------------------------------------------------------------ checks
def _check_bands(bands, n_samples: int, n_folds: int) -> dict:
    """Validated bands: dict name -> list of n_folds arrays (n_samples, n_features_b); a band
    given as one array is the same array for every fold."""
    if not isinstance(bands, Mapping):
        raise TypeError(f"bands must be a dict name -> features, not {type(bands).__name__}")
    if not 2 <= len(bands) <= 3:
        raise ValueError(f"variance partitioning needs 2 or 3 bands, got {len(bands)}: {list(bands)}")
    out = {}
    for name, value in bands.items():
        if not isinstance(name, str) or not name or any(c in name for c in _FORBIDDEN):
            raise ValueError(f"band name {name!r} must be a non-empty string without any of {_FORBIDDEN!r}")
        per_fold = isinstance(value, (list, tuple))
        arrays = [np.asarray(a) for a in value] if per_fold else [np.asarray(value)]
        if per_fold and len(arrays) != n_folds:
            raise ValueError(f"band {name!r} has features for {len(arrays)} folds, "
                             f"but there are {n_folds} folds")
        shape0 = None
        for f, a in enumerate(arrays):
            where = f"band {name!r}" + (f" (fold {f})" if per_fold else "")
            if a.ndim != 2:
                raise ValueError(f"{where} must be 2-D (n_samples, n_features), got shape {a.shape}")
            if a.shape[1] == 0 or a.shape[0] == 0:
                raise ValueError(f"{where} is empty: shape {a.shape}")
            if a.shape[0] != n_samples:
                raise ValueError(f"{where} has {a.shape[0]} samples but the responses have {n_samples}")
            if shape0 is not None and a.shape != shape0:
                raise ValueError(f"{where} has shape {a.shape}, fold 0 has {shape0}")
            shape0 = a.shape
            if not np.issubdtype(a.dtype, np.number):
                raise ValueError(f"{where} is not numeric (dtype {a.dtype})")
            bad = ~np.isfinite(a).all(0)
            if bad.any():
                raise ValueError(f"{where} holds NaN or inf in {int(bad.sum())} columns (first: "
                                 f"{np.flatnonzero(bad)[:5].tolist()}); check the feature extraction")
        out[name] = arrays if per_fold else arrays * n_folds
    return out


def _check_sizes(bands, n_y: int):
    """Different sample counts between bands, named, before the comparison with ``Y``."""
    sizes = {}
    for name, value in bands.items():
        a = value[0] if isinstance(value, (list, tuple)) and len(value) else value
        shape = np.shape(a)
        if len(shape) >= 1:
            sizes[name] = shape[0]
    names = list(sizes)
    for other in names[1:]:
        if sizes[other] != sizes[names[0]]:
            raise ValueError(f"band {other!r} has {sizes[other]} samples but band {names[0]!r} has "
                             f"{sizes[names[0]]}; all bands must share the samples of the responses ({n_y})")


# ------------------------------------------------------------------------------ fits
def _fit_subset(Xtr: list, Xte: list, Ytr, alphas, splits, n_iter, concentration, seed, n_batch,
                dual: bool | None = None):
    """Fit one subset of bands on the training rows and predict the test rows. ``dual``: solve
    the multi-band random search with linear kernels (None: when the bands hold more features
    than training rows).

    Returns
    -------
    pred : (n_test, n_targets) array (backend or numpy); log10_alpha : numpy (n_bands, n_targets);
    alpha : numpy (n_targets,).
    """
    from himalaya.backend import get_backend
    from himalaya.ridge import BandedRidgeCV, RidgeCV

    bk = get_backend()
    params = {"n_targets_batch": n_batch, "n_targets_batch_refit": n_batch, "warn": False}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]olving.*")
        if len(Xtr) == 1:
            model = RidgeCV(alphas=alphas, cv=_Splits(splits), solver_params=params)
            model.fit(Xtr[0], Ytr)
            pred = model.predict(Xte[0])
            alpha = bk.to_numpy(model.best_alphas_).astype(np.float64)
            return pred, np.log10(alpha)[None, :], alpha
        params.update(n_iter=int(n_iter), alphas=alphas, concentration=list(concentration),
                      progress_bar=False)
        if dual is None:
            dual = sum(x.shape[1] for x in Xtr) > Xtr[0].shape[0]
        if dual:
            from himalaya.kernel_ridge import MultipleKernelRidgeCV

            params.pop("warn")
            Ktr = bk.stack([bk.matmul(x, bk.transpose(x)) for x in map(bk.asarray, Xtr)])
            Kte = bk.stack([bk.matmul(bk.asarray(xe), bk.transpose(bk.asarray(x))) for xe, x in zip(Xte, Xtr)])
            model = MultipleKernelRidgeCV(kernels="precomputed", solver="random_search", solver_params=params,
                                          cv=_Splits(splits), random_state=seed)
            model.fit(Ktr, Ytr)
            pred = model.predict(Kte)
        else:
            model = BandedRidgeCV(groups="input", solver="random_search", solver_params=params,
                                  cv=_Splits(splits), random_state=seed)
            model.fit(list(Xtr), Ytr)
            pred = model.predict(list(Xte))
    deltas = bk.to_numpy(model.deltas_).astype(np.float64)
    return pred, -deltas / np.log(10.0), bk.to_numpy(model.best_alphas_).astype(np.float64)


def banded_cv_encoding(bands: Mapping, Y: np.ndarray, folds: list[Fold],
                       story_of_sample: np.ndarray | None = None, *,
                       alphas: np.ndarray | None = None, n_iter: int = 100,
                       concentration: Sequence[float] = (0.1, 1.0), n_inner: int = 5,
                       inner_gap: int = 5, backend: str = "numpy", seed: int = 0,
                       target_batch: int | None = 20000, dtype: str = "float32",
                       return_predictions: bool = False, progress: bool = False) -> PartitionResult:
    """Fit and score encoding models on every subset of 2 or 3 feature bands with nested
    cross-validation (banded ridge for multi-band subsets, ridge for single bands).

    Parameters
    ----------
    bands : dict band name -> features of shape (n_samples, n_features_b) (already delayed), all
        stories; or band name -> list of n_folds such arrays, fold ``f`` fitted and scored on
        entry ``f`` (features fitted per fold, the fold rule). 2 or 3 bands; the dict order is
        the band order of the outputs. Names must not contain ``+``, ``[`` or ``]``.
    Y : array of shape (n_samples, n_targets), responses (may be a memory map: read in batches
        of ``target_batch`` columns).
    folds : outer (train, test) index pairs (:mod:`~brainalign.core.encoding.folds`).
    story_of_sample : array of shape (n_samples,), story label of each sample, for the inner
        leave-one-story-out splits; ``None`` treats the data as one story.
    alphas : grid of ridge penalties (default :func:`~brainalign.core.encoding.ridge.alpha_grid`).
    n_iter : band-weight draws of the random search (himalaya ``solver_params['n_iter']``).
    concentration : Dirichlet concentration(s) of the draws, cycled (himalaya's default).
    n_inner, inner_gap : inner contiguous-block splits when the training set has < 3 stories.
    backend : himalaya backend, ``numpy``, ``torch`` or ``torch_cuda``.
    seed : ``random_state`` of the random search (the same draws in every fold).
    target_batch : targets per batch (bounds memory); results do not depend on it.
    dtype : computation dtype (``float32`` or ``float64``).
    return_predictions : keep the held-out predictions of every subset model.
    progress : show a progress bar over folds.

    Returns
    -------
    PartitionResult; :func:`partition_table` turns it into one row per target.

    Raises
    ------
    ValueError
        Fewer than 2 or more than 3 bands; a band that is empty, not 2-D, holds NaN/inf, or
        whose number of samples differs from another band's or from ``Y``'s (the band and both
        sizes are named); responses with NaN/inf.
    """
    n_samples, n_targets = np.shape(Y)
    if isinstance(bands, Mapping):
        if not 2 <= len(bands) <= 3:
            raise ValueError(f"variance partitioning needs 2 or 3 bands, got {len(bands)}: {list(bands)}")
        _check_sizes(bands, n_samples)
    n_folds = len(folds)
    bands = _check_bands(bands, n_samples, n_folds)
    names = tuple(bands)
    subsets = band_subsets(names)
    labels = [subset_label(s) for s in subsets]
    alphas = alpha_grid() if alphas is None else np.asarray(alphas, dtype=np.float64)
    alphas_c = alphas.astype(dtype)
    story_of_sample = (np.zeros(n_samples, dtype=np.int64) if story_of_sample is None
                       else np.asarray(story_of_sample))
    if len(story_of_sample) != n_samples:
        raise ValueError(f"story_of_sample has {len(story_of_sample)} entries for {n_samples} samples")

    fold_r2 = {k: np.zeros((n_folds, n_targets)) for k in labels}
    fold_r = {k: np.zeros((n_folds, n_targets)) for k in labels}
    fold_la = {k: np.zeros((n_folds, len(s), n_targets)) for k, s in zip(labels, subsets)}
    fold_alpha = {k: np.zeros((n_folds, n_targets)) for k in labels}
    preds = ({k: np.full((n_samples, n_targets), np.nan, dtype=dtype) for k in labels}
             if return_predictions else None)
    batch = n_targets if not target_batch else int(target_batch)
    with himalaya_backend(backend) as bk:
        for f, (train, test) in enumerate(tqdm(folds, desc="folds", disable=not progress)):
            train, test = np.asarray(train), np.asarray(test)
            Xtr, Xte = {}, {}
            for b in names:
                Xb = bands[b][f]
                Xtr[b], Xte[b] = standardize(Xb[train].astype(dtype), Xb[test].astype(dtype))
            splits = inner_splits(train, story_of_sample, n_inner, inner_gap)
            tr, te = bk.asarray(train), bk.asarray(test)
            for s in range(0, n_targets, batch):
                sl = slice(s, min(s + batch, n_targets))
                Yb = np.asarray(Y[:, sl], dtype=dtype)
                if f == 0:
                    check_finite_responses(Yb, s)
                Yd = bk.asarray(Yb)
                mu = _mean(bk, Yd[tr])
                Ytr, Yte = Yd[tr] - mu, Yd[te] - mu
                for label, subset in zip(labels, subsets):
                    pred, la, alpha = _fit_subset([Xtr[b] for b in subset], [Xte[b] for b in subset],
                                                  Ytr, alphas_c, splits, n_iter, concentration, seed,
                                                  sl.stop - sl.start)
                    pred = bk.asarray(pred)
                    fold_r2[label][f, sl] = bk.to_numpy(r2_score(Yte, pred, backend=bk))
                    fold_r[label][f, sl] = bk.to_numpy(pearson_r(Yte, pred, backend=bk))
                    fold_la[label][f, :, sl] = la
                    fold_alpha[label][f, sl] = alpha
                    if preds is not None:
                        preds[label][test, sl] = bk.to_numpy(pred + mu)
    return PartitionResult(bands=names, fold_r2=fold_r2, fold_r=fold_r, fold_log10_alpha=fold_la,
                           fold_alpha=fold_alpha, alphas=alphas, predictions=preds)


# ------------------------------------------------------------------------------ partition
def partition_variance(r2: Mapping[str, np.ndarray], bands: Sequence[str]) -> dict:
    """Unique and shared explained variance from the R² of every subset model.

    Parameters
    ----------
    r2 : dict subset label (:func:`subset_label`) -> array of shape (n_targets,) (or scalars),
        one entry for every non-empty subset of ``bands``.
    bands : the 2 or 3 band names.

    Returns
    -------
    dict region -> array of shape (n_targets,), in the order of :func:`band_subsets`:
    ``"unique[A]"`` for each band, ``"shared[A+B]"`` for the variance explained by exactly
    those bands and no other (for 3 bands: ``shared[A+B]``, ``shared[A+C]``, ``shared[B+C]``,
    ``shared[A+B+C]``). The regions sum to the R² of the joint model (see the module notes for
    the formulas).
    """
    bands = tuple(bands)
    if not 2 <= len(bands) <= 3:
        raise ValueError(f"variance partitioning needs 2 or 3 bands, got {len(bands)}: {list(bands)}")
    subsets = band_subsets(bands)
    missing = [subset_label(s) for s in subsets if subset_label(s) not in r2]
    if missing:
        raise ValueError(f"R² missing for the band subsets {missing}")
    R = {frozenset(s): np.asarray(r2[subset_label(s)], dtype=np.float64) for s in subsets}
    full = frozenset(bands)
    R[frozenset()] = np.zeros_like(R[full])

    def lost(u: frozenset):  # R² lost by dropping the bands in u from the joint model
        return R[full] - R[full - u]

    out = {}
    for T in subsets:
        region = sum((-1) ** (len(T) - k) * lost(frozenset(U))
                     for k in range(1, len(T) + 1) for U in itertools.combinations(T, k))
        out[("unique" if len(T) == 1 else "shared") + f"[{subset_label(T)}]"] = region
    return out


def partition_table(result: PartitionResult) -> pd.DataFrame:
    """One row per target: the subset scores, the variance partition and the joint model's
    per-band penalties.

    Parameters
    ----------
    result : the output of :func:`banded_cv_encoding` with bands ``A, B[, C]``.

    Returns
    -------
    DataFrame with n_targets rows and the columns

    * ``target`` : column index of the target in ``Y``;
    * ``r2[S]`` for every subset ``S`` (``r2[A]``, ``r2[B]``, ``r2[A+B]``, ...): held-out R² of
      the model on the bands in ``S``, per fold and averaged over folds;
    * ``r[S]`` : Pearson r likewise;
    * ``unique[A]`` for every band, ``shared[A+B]`` (, ``shared[A+C]``, ``shared[B+C]``,
      ``shared[A+B+C]``): the partition of :func:`partition_variance` of the ``r2[S]`` columns;
      they sum to ``r2[<all bands>]``;
    * ``log10_alpha[A]`` for every band: mean over folds of log10 of the band's penalty in the
      joint (all-band) model, ``alpha_b = exp(-delta_b)``;
    * ``alpha_at_edge`` : share of folds where the joint model's grid alpha
      (``best_alphas_``) is the grid's smallest or largest value.

    Per-fold values of every subset model stay in ``result``.
    """
    bands = result.bands
    labels = [subset_label(s) for s in band_subsets(bands)]
    r2, r = result.r2, result.r
    n_targets = len(r2[labels[-1]])
    cols = {"target": np.arange(n_targets)}
    cols.update({f"r2[{k}]": r2[k] for k in labels})
    cols.update({f"r[{k}]": r[k] for k in labels})
    cols.update(partition_variance(r2, bands))
    joint = labels[-1]
    la = result.fold_log10_alpha[joint].mean(0)
    cols.update({f"log10_alpha[{b}]": la[i] for i, b in enumerate(bands)})
    a = result.fold_alpha[joint]
    grid = np.asarray(result.alphas)
    edge = np.isclose(a, grid.min(), rtol=1e-5) | np.isclose(a, grid.max(), rtol=1e-5)
    cols["alpha_at_edge"] = edge.mean(0)
    table = pd.DataFrame(cols)
    if not np.isfinite(table.drop(columns="target").to_numpy()).all():  # pragma: no cover
        raise ValueError("the partition table holds NaN or inf")
    return table
