"""Removal methods: take a linguistic property out of a model's features, under the fold rule.

A property is one value per row of the features (per word): ``numeric`` (a float, e.g. word
frequency or position in the sentence) or ``categorical`` (a class name, e.g. the part of speech).
:func:`encode_property` turns the values into the two forms the methods need, with every
statistic taken from the *training rows* of one outer fold only (docs/architecture.md, the fold
rule):

``design``  float64 (n, k), the regression design of :class:`Residual`: numeric -> the value
            z-scored by the training mean and sd (k = 1; linear removal only, no square or
            spline terms); categorical -> one-hot of the classes seen in the training rows (k =
            their number; a class unseen in the training rows is an all-zero row and counts as
            unknown, below).
``labels``  int64 (n,), the class codes for :class:`INLP` and the probes: categorical -> the
            index of the value in ``classes`` (sorted names of the classes seen in the training
            rows; -1 for a class not seen there); numeric -> the quantile bin: with ``v`` the
            sorted training values (m of them), edge ``i`` (i = 1 .. n_bins - 1) is
            ``v[floor(i * m / n_bins)]``, equal edges and edges at the training minimum are
            dropped, and bin ``b`` is ``edges[b - 1] <= value < edges[b]`` (the first bin is
            open below, the last open above). Every bin holds training rows; tied values share a
            bin, so fewer than ``n_bins`` bins can result.

Missing values (None or NaN in any row, training or not) are an error naming the property and
how many rows: the caller drops the rows without a value (e.g. punctuation with no part of
speech) before encoding, so a removed feature matrix never mixes treated and untreated rows.

A remover (:data:`REMOVERS`, name -> class) has one interface::

    remover = REMOVERS[name](**params).fit(X_train, prop_train, groups=None)
    Z = remover.transform(X, prop)          # float32 (n, d), every row
    remover.summary()                       # JSON-ready dict

``fit`` sees only the training rows (``prop.take(train_rows)``; :func:`remove_property` does
this), ``transform`` is applied to all rows. Built in:

``residual``  :class:`Residual`: the (ridge) regression of the features on the property design,
              with an intercept, fitted on the training rows; its prediction minus the training
              mean of the features is subtracted from every row, so the features keep their
              training mean and, on the training rows (alpha -> 0), are exactly uncorrelated with
              every design column.
``inlp``      :class:`INLP` (Ravfogel et al. 2020, iterative null-space projection): linear
              classifiers of the class labels are trained in turn on the projected training
              features and their weight directions removed, as many times as inner
              cross-validation over the training rows says it takes for a classifier's held-out
              accuracy to sit within ``tol`` of the majority baseline. The result is
              one orthogonal projection ``P`` (d, d); ``Z = (X - mu) P + mu`` with ``mu`` the
              training mean.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

KINDS = ("numeric", "categorical")


class PropertyError(ValueError):
    """A property cannot be encoded, removed or probed as asked; the message names the property
    (and the fold or layer when the caller passes them as ``context``)."""


def _where(context: str) -> str:
    return f" ({context})" if context else ""


@dataclass
class EncodedProperty:
    """A property encoded with statistics from training rows (module docstring).

    Attributes
    ----------
    name : the property's name (for messages and summaries).
    kind : ``"numeric"`` or ``"categorical"``.
    design : float64 (n, k), the regression design (numeric: z-scored value, k = 1; categorical:
        one-hot of ``classes``).
    labels : int64 (n,), class codes into ``classes``; -1 for a categorical value whose class is
        not among the training rows' classes.
    classes : str array (n_classes,), class names (numeric: the bins, as ``"[lo, hi)"``).
    known : bool (n,), False where the class was unseen in the training rows (never False for a
        numeric property).
    mean, sd : numeric only, the training statistics of the z-score (else None).
    edges : numeric only, float64 (n_classes - 1,), the inner bin edges (else None).
    """

    name: str
    kind: str
    design: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    known: np.ndarray
    mean: float | None = None
    sd: float | None = None
    edges: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def take(self, rows) -> "EncodedProperty":
        """The same encoding restricted to ``rows`` (int indices or a boolean mask); the training
        statistics are unchanged."""
        rows = np.asarray(rows)
        return EncodedProperty(self.name, self.kind, self.design[rows], self.labels[rows], self.classes,
                               self.known[rows], self.mean, self.sd, self.edges)


def _missing_mask(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "numeric":
        return ~np.isfinite(values)
    return np.asarray(pd.isna(values), dtype=bool)


def _train_rows(train_rows, n: int, name: str) -> np.ndarray:
    if train_rows is None:
        return np.arange(n)
    rows = np.asarray(train_rows)
    if rows.dtype == bool:
        if len(rows) != n:
            raise PropertyError(f"property {name!r}: the training mask has {len(rows)} entries for {n} rows")
        rows = np.flatnonzero(rows)
    rows = rows.astype(np.int64, copy=False)
    if len(rows) == 0:
        raise PropertyError(f"property {name!r}: no training rows")
    if rows.min() < 0 or rows.max() >= n:
        raise PropertyError(f"property {name!r}: training rows outside 0..{n - 1}")
    return rows


def quantile_edges(train_values: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner bin edges of a numeric property from its training values (module docstring):
    ``v[floor(i * m / n_bins)]`` for i = 1 .. n_bins - 1 of the sorted values ``v``, equal edges
    and edges at the minimum dropped. Shape (n_classes - 1,); bin of a value:
    ``np.searchsorted(edges, value, side="right")``."""
    v = np.sort(np.asarray(train_values, np.float64))
    m = len(v)
    idx = np.minimum((np.arange(1, n_bins) * m) // n_bins, m - 1)
    edges = np.unique(v[idx])
    return edges[edges > v[0]]


def encode_property(values, kind: str, *, train_rows=None, n_bins: int = 5, name: str = "property",
                    context: str = "") -> EncodedProperty:
    """Encode a property for removal and probing, with statistics from the training rows.

    Parameters
    ----------
    values : array-like (n,), one value per row of the features: floats (``numeric``) or class
        names (``categorical``; compared as strings).
    kind : ``"numeric"`` or ``"categorical"``.
    train_rows : int indices or boolean mask (n,) of the training rows of the fold whose
        statistics (mean, sd, bin edges, classes) are used; None: all rows.
    n_bins : numeric only, the number of quantile bins of the class labels (>= 2; module
        docstring).
    name, context : named in error messages (e.g. ``context="fold 3, layer 6"``).

    Returns
    -------
    :class:`EncodedProperty` over all n rows.

    Raises
    ------
    PropertyError : unknown kind; missing values (None, NaN); one class only (or a constant
        numeric value) in the training rows.
    """
    where = _where(context)
    if kind not in KINDS:
        raise PropertyError(f"property {name!r}: unknown kind {kind!r}; expected one of {list(KINDS)}")
    try:
        values = np.asarray(values, dtype=np.float64 if kind == "numeric" else object)
    except (TypeError, ValueError) as err:
        raise PropertyError(f"property {name!r}: numeric values expected{where} ({err})") from None
    if values.ndim != 1:
        raise PropertyError(f"property {name!r}: expected one value per row (1-d), got shape {values.shape}")
    n = len(values)
    missing = _missing_mask(values, kind)
    if missing.any():
        first = np.flatnonzero(missing)[:5].tolist()
        raise PropertyError(f"property {name!r} has {int(missing.sum())} missing values (None/NaN) among its "
                            f"{n} rows{where}, e.g. rows {first}; drop those rows before encoding")
    train = _train_rows(train_rows, n, name)

    if kind == "numeric":
        if int(n_bins) < 2:
            raise PropertyError(f"property {name!r}: n_bins must be >= 2, got {n_bins}")
        vt = values[train]
        mean, sd = float(vt.mean()), float(vt.std())
        if not sd > 0:
            raise PropertyError(f"property {name!r} has one class only in the {len(train)} training rows{where}: "
                                f"its value is constant ({vt[0]:g})")
        edges = quantile_edges(vt, int(n_bins))
        if len(edges) == 0:  # pragma: no cover - sd > 0 implies two distinct values, so one edge
            raise PropertyError(f"property {name!r} has one class only in the training rows{where}")
        labels = np.searchsorted(edges, values, side="right").astype(np.int64)
        bounds = np.r_[-np.inf, edges, np.inf]
        classes = np.array([f"[{bounds[b]:g}, {bounds[b + 1]:g})" for b in range(len(edges) + 1)])
        design = ((values - mean) / sd)[:, None]
        return EncodedProperty(name, kind, design, labels, classes, np.ones(n, bool), mean, sd, edges)

    names = np.array([str(v) for v in values], dtype=object)
    classes = np.array(sorted(set(names[train].tolist())))
    if len(classes) < 2:
        raise PropertyError(f"property {name!r} has one class only ({str(classes[0])!r}) in the {len(train)} "
                            f"training rows{where}")
    pos = np.searchsorted(classes, names.astype(str))
    pos_c = np.minimum(pos, len(classes) - 1)
    known = classes[pos_c] == names.astype(str)
    labels = np.where(known, pos_c, -1).astype(np.int64)
    design = np.zeros((n, len(classes)))
    design[np.flatnonzero(known), labels[known]] = 1.0
    if not known.all():
        log.info("property %s: %d rows have a class unseen in the training rows%s (all-zero design, label -1)",
                 name, int((~known).sum()), where)
    return EncodedProperty(name, kind, design, labels, classes.astype(str), known)


def _check_fit_inputs(X, prop: EncodedProperty, who: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise PropertyError(f"{who}: features must be 2-d (n_rows, dim), got shape {X.shape}")
    if len(X) != len(prop):
        raise PropertyError(f"{who}: {len(X)} feature rows but property {prop.name!r} has {len(prop)} values")
    if not np.isfinite(X).all():
        raise PropertyError(f"{who}: features contain non-finite values")
    return X


class Residual:
    """The property regressed out of the features (module docstring).

    Parameters
    ----------
    alpha : ridge penalty relative to the number of training rows: the coefficients ``B`` (k, d)
        minimise ``||Xc - Dc B||^2 + alpha * n_train * ||B||^2`` with ``Xc``, ``Dc`` the training
        features and design centred by their training means (the intercept, unpenalised).
        ``0`` is ordinary least squares (the minimum-norm solution where the design is
        collinear). The default ``1e-6`` is least squares up to numerical precision: a z-scored
        numeric design has unit variance per row, so removal shrinks by ``alpha / (1 + alpha)``.

    Attributes (after fit)
    ----------------------
    coef_ : float64 (k, d); x_mean_ : (d,); d_mean_ : (k,), training means.
    """

    def __init__(self, alpha: float = 1e-6):
        if not alpha >= 0:
            raise PropertyError(f"residual: alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)

    def fit(self, X: np.ndarray, prop: EncodedProperty, *, groups=None) -> "Residual":
        """Fit on the training rows: ``X`` float (n_train, d), ``prop`` the same rows
        (``prop.take(train_rows)``); ``groups`` is ignored."""
        X = _check_fit_inputs(X, prop, "residual")
        if not prop.known.all():
            raise PropertyError(f"residual: property {prop.name!r} has rows whose class is not among the "
                                f"training classes; fit on the training rows only (prop.take(train_rows))")
        D = np.asarray(prop.design, np.float64)
        self.x_mean_, self.d_mean_ = X.mean(0), D.mean(0)
        Xc, Dc = X - self.x_mean_, D - self.d_mean_
        U, s, Vt = np.linalg.svd(Dc, full_matrices=False)
        keep = s > (s.max() if len(s) else 0.0) * max(Dc.shape) * np.finfo(float).eps
        lam = self.alpha * len(X)
        shrink = np.where(keep, s / np.where(keep, s * s + lam, 1.0), 0.0)
        self.coef_ = (Vt.T * shrink) @ (U.T @ Xc)
        resid = Xc - Dc @ self.coef_
        ss_tot, ss_res = float((Xc ** 2).sum()), float((resid ** 2).sum())
        col_tot = (Xc ** 2).sum(0)
        col_r2 = np.where(col_tot > 0, 1 - (resid ** 2).sum(0) / np.where(col_tot > 0, col_tot, 1), 0.0)
        self._summary = {"method": "residual", "property": prop.name, "kind": prop.kind, "alpha": self.alpha,
                         "n_train": int(len(X)), "n_design_columns": int(D.shape[1]),
                         "design_rank": int(keep.sum()),
                         "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 0.0, "r2_max_feature": float(col_r2.max())}
        return self

    def transform(self, X: np.ndarray, prop: EncodedProperty) -> np.ndarray:
        """``X - (D - d_mean) @ coef`` on every row (float32 (n, d)); rows of a class unseen in
        the training rows (``prop.known`` False) are returned unchanged (no class effect is
        known for them)."""
        if not hasattr(self, "coef_"):
            raise PropertyError("residual: transform before fit")
        if prop is None:
            raise PropertyError("residual: transform needs the property of every row")
        X = _check_fit_inputs(X, prop, "residual")
        if prop.design.shape[1] != self.coef_.shape[0]:
            raise PropertyError(f"residual: property {prop.name!r} has {prop.design.shape[1]} design columns, "
                                f"the fit had {self.coef_.shape[0]}; encode all rows with the same training rows")
        effect = (np.asarray(prop.design, np.float64) - self.d_mean_) @ self.coef_
        effect[~prop.known] = 0.0
        return (X - effect).astype(np.float32)

    def summary(self) -> dict:
        """alpha, n_train, design columns and rank, ``r2`` (fraction of the training features'
        total variance the property explains) and the largest per-feature R^2."""
        return dict(self._summary)


class RidgeClassifierFast:
    """sklearn's ``RidgeClassifier`` (targets +1/-1 per class, one column for two classes, an
    unpenalised intercept, prediction by the largest score) solved in closed form with one
    Cholesky solve: the same coefficients (tests/core/test_removal_methods.py checks them against
    sklearn), without sklearn's per-call checks, which dominated INLP's time on ~1,000 x 384
    word features."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = float(alpha)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "RidgeClassifierFast":
        from scipy.linalg import solve

        X = np.asarray(X, np.float64)
        self.classes_ = np.unique(y)
        Y = np.where(np.asarray(y)[:, None] == self.classes_[None, :], 1.0, -1.0)
        if len(self.classes_) == 2:
            Y = Y[:, 1:]
        xm, ym = X.mean(0), Y.mean(0)
        Xc = X - xm
        A = Xc.T @ Xc
        A[np.diag_indices_from(A)] += self.alpha
        W = solve(A, Xc.T @ (Y - ym), assume_a="pos")
        self.coef_ = W.T
        self.intercept_ = ym - xm @ W
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = np.asarray(X, np.float64) @ self.coef_.T + self.intercept_
        if scores.shape[1] == 1:
            return self.classes_[(scores[:, 0] > 0).astype(int)]
        return self.classes_[scores.argmax(1)]


class INLP:
    """Iterative null-space projection (Ravfogel et al. 2020), fitted on the training rows.

    One iteration trains a linear classifier of the class labels on the projected, centred
    features ``(X - mu) P_t`` of the training rows; its weight rows (mapped to raw feature space
    and projected by ``P_t``) join the removed directions and ``P_{t+1} = I - Q Q^T``, ``Q`` an
    orthonormal basis (SVD) of all removed directions so far: the projection onto the
    intersection of the classifiers' null spaces.

    How many iterations is chosen by inner cross-validation, so that the check never sees rows
    its removal was fitted on: the training rows are split into ``n_checks`` folds; on each
    fold's training part INLP runs and, after 0, 1, 2, ... removals, a classifier refitted there
    is scored on the fold's held-out part. The number of iterations is the first ``t`` at which
    the mean held-out accuracy is at most the majority baseline (each inner training part's most
    frequent class, scored on its held-out part, averaged) plus ``tol`` for ``patience``
    consecutive steps; the final projection is ``t`` iterations on all training rows. No such
    ``t`` up to ``max_iter`` (or nothing left to remove): ``max_iter`` iterations, a warning and
    ``converged`` False in the summary.

    Why not the simpler loop (check on a development split, remove with a classifier of the
    other rows, stop at chance): measured on the simulated study's MiniLM layer 4 (position in
    the sentence, 5 bins, 384 dimensions, ~1,470 training words of two stories), that loop
    stopped after 56-80 directions while a fresh probe trained on all training words still
    scored 0.35-0.37 on the held-out story (majority 0.24-0.28); and removing with a classifier
    of all rows while checking on some of them is biased below chance (the check's rows shaped
    the removal) and stopped after 20 directions with the fresh probe at 0.39. Chosen by inner
    cross-validation: 140 directions, fresh probe 0.232 (majority 0.236).

    Parameters
    ----------
    tol : accuracy above the majority baseline that counts as "at baseline" (default 0.01).
    max_iter : the most classifiers whose directions are removed (default 100).
    patience : consecutive checks at the baseline that stop the loop (default 2; the development
        accuracy is noisy, and one chance dip below the baseline would stop it early).
    classifier : ``"ridge"`` (default; RidgeClassifier, closed form, one weight row per class, one
        for two classes) or ``"logistic"`` (sklearn LogisticRegression, lbfgs, multinomial; about
        2-5x slower). Features are standardised per column inside the classifier and the
        weights mapped back (``w / sd``), so the removed directions are in raw feature space.
    C : inverse L2 penalty of the logistic classifier; ``ridge`` uses ``alpha = 1 / C``.
    n_checks : folds of the check (cross-validated over the training rows: whole groups when
        ``fit`` gets ``groups`` with at least that many, else stratified; default 3).
    seed : seed of the inner split (and the classifier's random_state); deterministic.
    classifier_max_iter : lbfgs iterations of the logistic classifier.

    Attributes (after fit)
    ----------------------
    projection_ : float64 (d, d), ``P`` (symmetric, idempotent); mean_ : (d,), training mean;
    directions_ : float64 (rank, d), orthonormal basis of the removed subspace.
    """

    def __init__(self, tol: float = 0.01, max_iter: int = 100, classifier: str = "ridge", C: float = 1.0,
                 n_checks: int = 3, seed: int = 0, classifier_max_iter: int = 1000, patience: int = 2):
        if int(n_checks) < 2:
            raise PropertyError(f"inlp: n_checks must be >= 2, got {n_checks}")
        self.n_checks = int(n_checks)
        if int(patience) < 1:
            raise PropertyError(f"inlp: patience must be >= 1, got {patience}")
        self.patience = int(patience)
        if classifier not in ("logistic", "ridge"):
            raise PropertyError(f"inlp: unknown classifier {classifier!r}; expected 'logistic' or 'ridge'")
        if int(max_iter) < 1:
            raise PropertyError(f"inlp: max_iter must be >= 1, got {max_iter}")
        if not tol >= 0:
            raise PropertyError(f"inlp: tol must be >= 0, got {tol}")
        self.tol, self.max_iter, self.classifier = float(tol), int(max_iter), classifier
        self.C, self.seed = float(C), int(seed)
        self.classifier_max_iter = int(classifier_max_iter)

    def _classifier(self):
        if self.classifier == "ridge":
            return RidgeClassifierFast(alpha=1.0 / self.C)
        from sklearn.linear_model import LogisticRegression
        return LogisticRegression(C=self.C, max_iter=self.classifier_max_iter, random_state=self.seed)

    def _fit_classifier(self, Xp: np.ndarray, y: np.ndarray, rows: np.ndarray):
        from sklearn.exceptions import ConvergenceWarning
        sd = Xp[rows].std(0)
        sd = np.where(sd > 1e-12 * max(float(sd.max()), 1e-300), sd, 1.0)
        clf = self._classifier()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(Xp[rows] / sd, y[rows])
        return clf, sd

    def _project(self, Xc: np.ndarray, y: np.ndarray, rows: np.ndarray, n_iter: int,
                 dev: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[float]]:
        """Up to ``n_iter`` removals of the directions of classifiers fitted on ``rows``; with
        ``dev``, the accuracy on ``dev`` of a classifier fitted on ``rows`` after 0, 1, ...
        removals (stopping early once it stays at chance for ``patience`` + 1 steps).

        Returns (P (d, d), Q (rank, d), accuracies)."""
        d = Xc.shape[1]
        P, Q = np.eye(d), np.zeros((0, d))
        removed, accs = [], []
        majority = np.bincount(y[rows]).argmax()
        chance = None if dev is None else float(np.mean(y[dev] == majority)) + self.tol
        for t in range(n_iter + 1):
            Xp = Xc @ P
            clf, sd = self._fit_classifier(Xp, y, rows)
            if dev is not None:
                accs.append(float(np.mean(clf.predict(Xp[dev] / sd) == y[dev])))
                if len(accs) > self.patience and all(a <= chance for a in accs[-(self.patience + 1):]):
                    break
            if t == n_iter or Q.shape[0] >= d:
                break
            W0 = (np.atleast_2d(clf.coef_) / sd) @ P     # raw-space directions, in the kept space
            W = W0 - (W0 @ Q.T) @ Q                       # (exactly orthogonal to Q up to rounding)
            _, sv, Vt = np.linalg.svd(W, full_matrices=False)   # orthonormal basis of the new rows only
            new = Vt[sv > 1e-8 * max(float(np.linalg.norm(W0)), 1e-300)]
            if len(new) == 0:  # the classifier added nothing new
                break
            removed.append(W)
            Q = np.concatenate([Q, new])
            P = np.eye(d) - Q.T @ Q
            P = (P + P.T) / 2
        if len(Q):   # one orthonormalisation of the whole basis (rounding accumulates over iterations)
            Q = np.linalg.qr(Q.T)[0].T
            P = np.eye(d) - Q.T @ Q
            P = (P + P.T) / 2
        return P, Q, accs

    def _inner_folds(self, y: np.ndarray, groups, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """The check's folds over the training rows: ``n_checks`` folds of whole groups when
        ``groups`` has at least ``n_checks`` of them, else stratified shuffled folds (seeded).
        Rows of one story in both halves of a fold share context, so the check, if anything,
        overstates what is decodable: INLP then removes more, never less."""
        n = len(y)
        k = self.n_checks
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != n:
                raise PropertyError(f"inlp: {len(groups)} groups for {n} training rows")
            if len(np.unique(groups)) >= k:
                from sklearn.model_selection import GroupKFold
                folds = list(GroupKFold(n_splits=k).split(np.zeros(n), y, groups))
                if all(len(np.unique(y[tr])) >= 2 for tr, _ in folds):
                    return folds
        from sklearn.model_selection import StratifiedKFold
        counts = np.bincount(y)
        if counts[counts > 0].min() < k:
            rare = int(np.flatnonzero(counts == counts[counts > 0].min())[0])
            raise PropertyError(f"inlp: class {rare} of property {name!r} has {counts[rare]} training rows; the "
                                f"check's {k} inner folds need at least {k} per class")
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=self.seed).split(np.zeros(n), y))

    def fit(self, X: np.ndarray, prop: EncodedProperty, *, groups=None) -> "INLP":
        """Fit on the training rows: ``X`` float (n_train, d), ``prop`` the same rows
        (``prop.take(train_rows)``); ``groups`` (n_train,), optional, e.g. the story of each row:
        the inner folds then hold whole groups (when there are at least ``n_checks``)."""
        X = _check_fit_inputs(X, prop, "inlp")
        y = np.asarray(prop.labels, np.int64)
        if (y < 0).any():
            raise PropertyError(f"inlp: property {prop.name!r} has rows whose class is not among the training "
                                f"classes; fit on the training rows only (prop.take(train_rows))")
        present = np.unique(y)
        if len(present) < 2:
            raise PropertyError(f"inlp: property {prop.name!r} has one class only in the training rows")
        d = X.shape[1]
        self.mean_ = X.mean(0)
        Xc = X - self.mean_
        checks = self._inner_folds(y, groups, prop.name)
        baseline = float(np.mean([np.mean(y[dev] == np.bincount(y[tr]).argmax()) for tr, dev in checks]))
        # how many removals: INLP run on each inner training fold, its check scored on the inner
        # fold it never saw (removal and check on the same rows would be biased below chance)
        curves = [self._project(Xc, y, tr, self.max_iter, dev=dev)[2] for tr, dev in checks]
        length = max(len(c) for c in curves)
        curves = np.array([c + [c[-1]] * (length - len(c)) for c in curves])
        accuracies = curves.mean(0).tolist()      # mean check accuracy after t = 0, 1, ... removals
        at = np.asarray(accuracies) <= baseline + self.tol
        n_iter, converged = len(accuracies) - 1, False
        for t in range(len(at)):
            window = at[t:t + self.patience]
            if len(window) == self.patience and window.all() or (t == len(at) - 1 and at[t]):
                n_iter, converged = t, True
                break
        P, Q, _ = self._project(Xc, y, np.arange(len(y)), n_iter)
        removed = list(range(n_iter))
        self.projection_, self.directions_ = P, Q
        self._summary = {"method": "inlp", "property": prop.name, "kind": prop.kind, "classifier": self.classifier,
                         "tol": self.tol, "max_iter": self.max_iter, "patience": self.patience, "n_iterations": len(removed),
                         "rank_removed": int(Q.shape[0]), "dim": int(d), "dev_accuracy": accuracies,
                         "majority_baseline": baseline, "converged": converged, "n_classes": int(len(present)),
                         "n_train": int(len(y)), "n_checks": len(checks)}
        if not converged:
            log.warning("inlp: property %s not at baseline after %d iterations (dev accuracy %.3f, baseline %.3f, "
                        "tol %.3f)", prop.name, len(removed), accuracies[-1], baseline, self.tol)
        return self

    def transform(self, X: np.ndarray, prop: EncodedProperty | None = None) -> np.ndarray:
        """``(X - mu) P + mu`` on every row, float32 (n, d); ``prop`` is not needed."""
        if not hasattr(self, "projection_"):
            raise PropertyError("inlp: transform before fit")
        X = np.asarray(X, np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.mean_):
            raise PropertyError(f"inlp: features of shape {X.shape}; the fit had dim {len(self.mean_)}")
        return ((X - self.mean_) @ self.projection_ + self.mean_).astype(np.float32)

    def summary(self) -> dict:
        """n_iterations (directions added), rank_removed, dev_accuracy per iteration (the last is
        the one that stopped the loop), majority_baseline, converged, and the settings."""
        return dict(self._summary)


#: name -> remover class (module docstring)
REMOVERS: dict[str, type] = {"residual": Residual, "inlp": INLP}


def remove_property(method: str, X: np.ndarray, prop: EncodedProperty, train_rows, *, groups=None,
                    **params) -> tuple[np.ndarray, dict]:
    """Fit a remover on the training rows and apply it to all rows.

    Parameters
    ----------
    method : a key of :data:`REMOVERS`.
    X : float (n, d), the features of every row (e.g. one layer's word features).
    prop : :class:`EncodedProperty` of the same n rows, encoded with the same ``train_rows``.
    train_rows : int indices or boolean mask (n,) of the training rows of the fold.
    groups : optional (n,), e.g. the story of each row (INLP's inner split keeps groups whole).
    params : the remover's parameters.

    Returns
    -------
    (Z float32 (n, d), summary dict)
    """
    if method not in REMOVERS:
        raise PropertyError(f"unknown removal method {method!r}; registered: {sorted(REMOVERS)}")
    X = np.asarray(X)
    train = _train_rows(train_rows, len(X), prop.name)
    remover = REMOVERS[method](**params)
    remover.fit(X[train], prop.take(train), groups=None if groups is None else np.asarray(groups)[train])
    return remover.transform(X, prop), remover.summary()
