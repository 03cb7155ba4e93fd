"""Probes: how well a linear classifier reads a property from features, against the majority
baseline, cross-validated over folds that keep groups (stories, contiguous blocks) whole.

The probe is ``make_pipeline(StandardScaler(), LogisticRegression(C, max_iter))`` (sklearn; lbfgs,
multinomial), fitted on each fold's training split and scored (accuracy) on its test split. The
majority baseline of a fold is the most frequent class of its training split (the smallest class
code on a tie) scored on its test split. Both are averaged over folds with equal weight (as
``cross_val_score(...).mean()``); the per-fold values are kept.

A numeric property is probed through its quantile bins (:func:`.methods.encode_property`), the
bin edges taken from each fold's training split, so no label statistic has seen the test split.
Run per layer and property, the probe says where in a model a property is linearly readable and
whether a removal method left any of it (:mod:`.methods`).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .methods import PropertyError, encode_property

log = logging.getLogger(__name__)

Fold = tuple[np.ndarray, np.ndarray]


@dataclass
class ProbeResult:
    """Cross-validated probe accuracy (module docstring).

    Attributes
    ----------
    accuracy, baseline : mean over folds of the probe's and the majority baseline's accuracy.
    fold_accuracy, fold_baseline : float64 (n_folds,), per fold.
    n : rows probed; n_classes : classes of the labels (numeric: most bins over folds);
    n_folds : folds.
    """

    accuracy: float
    baseline: float
    fold_accuracy: np.ndarray
    fold_baseline: np.ndarray
    n: int
    n_classes: int
    n_folds: int

    @property
    def above_baseline(self) -> float:
        """``accuracy - baseline``."""
        return self.accuracy - self.baseline

    def to_dict(self) -> dict:
        """JSON-ready dict (per-fold arrays as lists)."""
        out = asdict(self)
        out["fold_accuracy"] = [float(a) for a in self.fold_accuracy]
        out["fold_baseline"] = [float(a) for a in self.fold_baseline]
        out["above_baseline"] = self.above_baseline
        return out


def grouped_folds(groups, n_folds: int | None = None) -> list[Fold]:
    """Folds that hold out whole groups.

    Parameters
    ----------
    groups : array (n,), the group of each row (e.g. its story, or :func:`contiguous_groups`).
    n_folds : number of folds; the groups, in order of first appearance, are dealt round-robin
        into folds. None or a number >= the number of groups: leave one group out.

    Returns
    -------
    list of (train, test) int64 index arrays; every row is tested once and no group of a test
    split has a row in its training split.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) == 0:
        raise PropertyError(f"grouped folds need one group label per row (1-d, non-empty), got shape {groups.shape}")
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # rank of each unique group by first appearance
    g = order[inverse.ravel()]
    n_groups = len(first)
    if n_groups < 2:
        raise PropertyError(f"grouped folds need at least 2 groups, got {n_groups}")
    k = n_groups if n_folds is None else min(int(n_folds), n_groups)
    if k < 2:
        raise PropertyError(f"grouped folds need n_folds >= 2, got {n_folds}")
    fold_of_row = g % k
    rows = np.arange(len(groups))
    return [(rows[fold_of_row != f], rows[fold_of_row == f]) for f in range(k)]


def contiguous_groups(n: int, n_blocks: int) -> np.ndarray:
    """Group label (n,) int64 of ``n_blocks`` contiguous blocks of near-equal size (block of row
    ``i``: ``i * n_blocks // n``), for data without stories."""
    if not 1 <= int(n_blocks) <= int(n):
        raise PropertyError(f"contiguous groups: n_blocks must be in 1..{n}, got {n_blocks}")
    return (np.arange(int(n)) * int(n_blocks)) // int(n)


def _as_folds(folds, n: int) -> list[Fold]:
    if isinstance(folds, np.ndarray) and folds.ndim == 1 and np.issubdtype(folds.dtype, np.integer):
        if len(folds) != n:
            raise PropertyError(f"probe: {len(folds)} fold ids for {n} rows")
        if folds.min() < 0:
            raise PropertyError("probe: fold ids must be >= 0")
        ids = np.unique(folds)
        if len(ids) < 2:
            raise PropertyError(f"probe: need at least 2 folds, got {len(ids)}")
        rows = np.arange(n)
        return [(rows[folds != f], rows[folds == f]) for f in ids]
    out = []
    for k, pair in enumerate(folds):
        train, test = (np.asarray(a, np.int64) for a in pair)
        if len(train) == 0 or len(test) == 0:
            raise PropertyError(f"probe: fold {k} has an empty training or test split")
        if train.min() < 0 or test.min() < 0 or max(train.max(), test.max()) >= n:
            raise PropertyError(f"probe: fold {k} indexes rows outside 0..{n - 1}")
        if np.intersect1d(train, test).size:
            raise PropertyError(f"probe: fold {k} has rows in both its training and its test split")
        out.append((train, test))
    if len(out) < 1:
        raise PropertyError("probe: no folds")
    return out


def probe_pipeline(C: float = 1.0, max_iter: int = 1000, seed: int = 0):
    """The probe estimator: standardise, then L2 logistic regression (lbfgs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))


def probe_accuracy(X, labels, folds, *, kind: str = "categorical", n_bins: int = 5, C: float = 1.0,
                   max_iter: int = 1000, seed: int = 0, name: str = "property", context: str = "") -> ProbeResult:
    """Cross-validated accuracy of a linear probe of a property, and the majority baseline.

    Parameters
    ----------
    X : float (n, d), features (e.g. one layer's word features, before or after removal).
    labels : array (n,), the property of each row: class names (``categorical``) or floats
        (``numeric``: binned per fold by the training split's quantiles, ``n_bins``).
    folds : int array (n,) giving each row's fold (fold f tests the rows with id f and trains on
        the rest), or a list of (train_idx, test_idx) (e.g. :func:`grouped_folds`).
    C, max_iter, seed : the logistic regression's inverse penalty, lbfgs iterations, random_state.
    name, context : named in error messages.

    Returns
    -------
    :class:`ProbeResult`.

    Raises
    ------
    PropertyError : missing values; one class only; a class with fewer rows than folds; a
        training split with one class only; non-finite features.
    """
    from sklearn.exceptions import ConvergenceWarning

    where = f" ({context})" if context else ""
    X = np.asarray(X, np.float64)
    if X.ndim != 2:
        raise PropertyError(f"probe of {name!r}: features must be 2-d (n_rows, dim), got shape {X.shape}")
    n = len(X)
    if len(labels) != n:
        raise PropertyError(f"probe of {name!r}: {len(labels)} labels for {n} feature rows{where}")
    if not np.isfinite(X).all():
        raise PropertyError(f"probe of {name!r}: features contain non-finite values{where}")
    fold_list = _as_folds(folds, n)
    k = len(fold_list)
    # encodes all rows (checks missing values and one class only) with all rows as "training" rows
    enc_all = encode_property(labels, kind, n_bins=n_bins, name=name, context=context)
    if kind == "categorical":
        counts = np.bincount(enc_all.labels, minlength=enc_all.n_classes)
        rare = np.flatnonzero(counts < k)
        if rare.size:
            c = int(rare[np.argmin(counts[rare])])
            raise PropertyError(f"class {str(enc_all.classes[c])!r} of property {name!r} has {counts[c]} items; {k} folds "
                                f"need at least {k}{where} (drop or merge rare classes)")
    accs, bases, n_classes = [], [], enc_all.n_classes
    for f, (train, test) in enumerate(fold_list):
        if kind == "numeric":
            ctx = f"fold {f}" + (f", {context}" if context else "")
            y = encode_property(labels, kind, train_rows=train, n_bins=n_bins, name=name, context=ctx).labels
            n_classes = max(n_classes if f else 0, int(y[train].max()) + 1)
        else:
            y = enc_all.labels
        present = np.unique(y[train])
        if len(present) < 2:
            raise PropertyError(f"property {name!r} has one class only ({str(enc_all.classes[present[0]])!r}) in the "
                                f"training split of fold {f}{where}")
        model = probe_pipeline(C, max_iter, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[train], y[train])
        accs.append(float(np.mean(model.predict(X[test]) == y[test])))
        majority = np.bincount(y[train]).argmax()
        bases.append(float(np.mean(y[test] == majority)))
    accs, bases = np.asarray(accs), np.asarray(bases)
    return ProbeResult(float(accs.mean()), float(bases.mean()), accs, bases, n, int(n_classes), k)
