"""``derived``: features computed from another condition's features by a registered transform,
fitted under the fold rule.

The fold rule (docs/architecture.md): nothing fitted on responses or on stimulus labels may have
seen the stories (or, for single-story data, the TRs) of the encoding test fold it is scored on.
A derived condition is therefore fitted once per outer fold of the encoding cross-validation, on
that fold's *training* samples only, and applied to every sample; its TR features are stored per
fold (``"<fold>/<story>"`` keys, level ``fold``) and encoding fits and scores fold ``f`` on the
features of fold ``f``. Folds are the project's one ``folds`` dataset, so a derived condition is
scored on exactly the held-out samples its source is, and the two can be compared pairwise.

A transform (:data:`TRANSFORMS`, name -> class) has ``fit(X, context)`` and ``transform(X, context)``:

``X``        float array (n_samples, n_features): the source's TR features (delayed, trimmed), the
             stories concatenated in the order of the TR-grid table. ``fit`` sees only the
             training rows of one fold.
``context``  dict: ``rows`` (int array, the sample index of each row of X), ``stories`` (the story
             of each row), ``against`` (the ``against`` condition's features on the same rows, or
             None), ``params`` (the condition's ``transform_params``).

Built in: ``residual`` - the least-squares projection of X onto the ``against`` features (with
an intercept), fitted on the training rows, is subtracted from every row: what the source
represents beyond, e.g., the low-level features.

Property removal (``property: <name>``): the transform is a removal method of
:data:`brainalign.core.removal.methods.REMOVERS` (``residual``, ``inlp``) and works on the
source's *word* features with the word's annotation (the ``annotations`` dataset): fitted per
outer fold on the words whose TR is a training sample of that fold, applied to every word, then
resampled to TRs as the source is (:func:`brainalign.core.removal.apply.remove_property_per_fold`).
The source must be a word-level condition (text, control, tuned).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .base import ConditionError, RepresentationKind

log = logging.getLogger(__name__)


class Residual:
    """X minus its least-squares prediction from ``context['against']`` (intercept included),
    the regression fitted on the training rows."""

    needs_against = True

    def fit(self, X: np.ndarray, context: dict) -> "Residual":
        A = _design(context["against"])
        self.coef_, *_ = np.linalg.lstsq(A, np.asarray(X, np.float64), rcond=None)
        return self

    def transform(self, X: np.ndarray, context: dict) -> np.ndarray:
        return (np.asarray(X, np.float64) - _design(context["against"]) @ self.coef_).astype(np.float32)


def _design(A) -> np.ndarray:
    if A is None:
        raise ConditionError("the residual transform needs 'against' features")
    A = np.asarray(A, np.float64)
    return np.c_[np.ones(len(A)), A]


#: name -> transform class (module docstring)
TRANSFORMS: dict[str, type] = {"residual": Residual}


def is_per_fold(features: dict) -> bool:
    """True when a features mapping holds ``"<fold>/<story>"`` keys (fitted per fold)."""
    return any("/" in str(k) for k in features)


def fold_features(features: dict, fold: int, stories: list[str]) -> list[np.ndarray]:
    """The arrays of ``stories`` for outer fold ``fold``, from a per-fold or a fold-independent
    features mapping."""
    if is_per_fold(features):
        missing = [s for s in stories if f"{fold}/{s}" not in features]
        if missing:
            raise KeyError(f"features fitted per fold have no fold {fold} for stories {missing}; were they "
                           f"fitted on another folds table? Re-run the derived condition")
        return [np.asarray(features[f"{fold}/{s}"]) for s in stories]
    return [np.asarray(features[s]) for s in stories]


class PerFoldFeatures(Mapping):
    """``"<fold>/<story>"`` -> float32 array, computed one fold at a time: reading the keys in
    order (as the NPY dataset's save does) fits each fold once and keeps only that fold's arrays
    in memory."""

    def __init__(self, folds: list[int], stories: list[str], compute_fold):
        self._keys = [f"{f}/{s}" for f in folds for s in stories]
        self._compute = compute_fold
        self._fold, self._arrays = None, {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._keys:
            raise KeyError(key)
        fold, story = key.split("/", 1)
        if self._fold != int(fold):
            self._fold, self._arrays = int(fold), self._compute(int(fold))
        return self._arrays[story]

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def fit_per_fold(transform_name: str, source: dict, grids: pd.DataFrame, folds: pd.DataFrame,
                 against: dict | None = None, transform_params: dict | None = None,
                 condition: str = "?") -> PerFoldFeatures:
    """Fit a transform on each outer fold's training samples and apply it to all samples.

    Parameters
    ----------
    transform_name : a key of :data:`TRANSFORMS`.
    source : story (or ``"<fold>/<story>"``) -> float array (n_trs, n_features), the source's TR
        features; a per-fold source is read fold by fold.
    grids : the TR-grid table (story order, ``n_trs``).
    folds : the folds table (fold, sample, role); samples index the stories concatenated in the
        order of ``grids``.
    against : like ``source``, the features a transform may regress on (or None).

    Returns
    -------
    mapping ``"<fold>/<story>"`` -> float32 array (n_trs, n_features_out), one entry per fold and
    story, computed fold by fold on access (:class:`PerFoldFeatures`).
    """
    if transform_name not in TRANSFORMS:
        raise ConditionError(f"condition {condition!r}: unknown transform {transform_name!r}; registered: "
                             f"{sorted(TRANSFORMS)}")
    stories = grids["story"].tolist()
    n_trs = grids["n_trs"].to_numpy()
    bounds = np.r_[0, np.cumsum(n_trs)]
    story_of_sample = np.repeat(np.asarray(stories, dtype=object), n_trs)
    train_of = {int(f): np.sort(rows.loc[rows["role"] == "train", "sample"].to_numpy(np.int64))
                for f, rows in folds.groupby("fold", sort=True)}

    def compute(fold: int) -> dict[str, np.ndarray]:
        train = train_of[fold]
        X = np.concatenate(fold_features(source, fold, stories))
        if len(X) != bounds[-1]:
            raise ValueError(f"condition {condition!r}: source features have {len(X)} rows, the TR grid {bounds[-1]}")
        A = np.concatenate(fold_features(against, fold, stories)) if against is not None else None
        params = dict(transform_params or {})
        tf = TRANSFORMS[transform_name]()
        tf.fit(X[train], {"rows": train, "stories": story_of_sample[train],
                          "against": None if A is None else A[train], "params": params})
        Z = np.asarray(tf.transform(X, {"rows": np.arange(len(X)), "stories": story_of_sample,
                                        "against": A, "params": params}), dtype=np.float32)
        if not np.isfinite(Z).all():
            raise FloatingPointError(f"condition {condition!r}: transform {transform_name} gave non-finite "
                                     f"features in fold {fold}")
        log.info("condition %s: %s fitted on the %d training samples of fold %d", condition, transform_name,
                 len(train), fold)
        return {s: Z[bounds[k]: bounds[k + 1]] for k, s in enumerate(stories)}

    return PerFoldFeatures(sorted(train_of), stories, compute)


class DerivedKind(RepresentationKind):
    """``derived``: ``{kind: derived, source: <condition>, transform: <name>, against: <condition>,
    against_layer: <int>, transform_params: {...}, layers: [...]}`` (module docstring). Its layers
    default to the source's; ``against`` features are taken at ``against_layer`` (default: the
    against condition's first layer)."""

    name = "derived"
    level = "fold"
    keys = ("source", "transform", "against", "against_layer", "transform_params", "property")
    overrides = ()   # its features are the source's TR features, already delayed
    required = ("source", "transform")

    def check(self, name: str, params: dict) -> dict:
        params = super().check(name, params)
        if params.get("property"):
            from ..removal.annotators import ANNOTATORS
            from ..removal.methods import REMOVERS

            if params["transform"] not in REMOVERS:
                raise ConditionError(f"condition {name!r}: removing property {params['property']!r} needs a removal "
                                     f"method as transform; registered: {sorted(REMOVERS)}")
            if params["property"] not in ANNOTATORS:
                raise ConditionError(f"condition {name!r}: unknown property {params['property']!r}; registered: "
                                     f"{sorted(ANNOTATORS)}")
            if params.get("against"):
                raise ConditionError(f"condition {name!r}: a property removal takes no 'against' condition")
            if params["source"] == name:
                raise ConditionError(f"condition {name!r} cannot be derived from itself")
            return params
        if params["transform"] not in TRANSFORMS:
            raise ConditionError(f"condition {name!r}: unknown transform {params['transform']!r}; registered: "
                                 f"{sorted(TRANSFORMS)}")
        if getattr(TRANSFORMS[params["transform"]], "needs_against", False) and not params.get("against"):
            raise ConditionError(f"condition {name!r}: transform {params['transform']} needs 'against' "
                                 f"(the condition whose features are regressed out)")
        if params["source"] == name or params.get("against") == name:
            raise ConditionError(f"condition {name!r} cannot be derived from itself")
        return params

    def inputs(self, name: str, params: dict) -> list[str]:
        # per layer the embedding pipeline adds the source's (and against's) TR features, or for a
        # property removal the source's word features
        if params.get("property"):
            return ["folds", "tr_grids", "words", "annotations"]
        return ["folds", "tr_grids"]

    def describe(self, name: str, params: dict) -> dict:
        if params.get("property"):
            return {"condition": name, "kind": self.name, "source": params["source"], "transform": params["transform"],
                    "method": f"removed-{params['transform']}", "task": params["property"],
                    "details": f"removed-{params['property']}"}
        details = f"against {params['against']}" if params.get("against") else ""
        return {"condition": name, "kind": self.name, "source": params["source"],
                "transform": params["transform"], "method": f"derived-{params['transform']}", "details": details}
