"""Property removal as a ``derived`` condition, under the fold rule.

A removal is fitted once per outer fold of the encoding cross-validation on the *words whose TR
is a training sample of that fold* and applied to every word; the removed word features are then
resampled to TRs exactly as the source condition's are (the caller's ``to_trs``), giving one set
of TR features per fold (``"<fold>/<story>"`` keys, read by encoding fold by fold).

The TR of a word is the kept volume whose interval ``[t0 + i tr, t0 + (i + 1) tr)`` holds the
word's time (``align``: midpoint or onset, as the embedding uses); words before the first or
after the last kept volume belong to no sample and never enter a fit. A word of a held-out TR (of
a test story, or of a test block of single-story data) is never seen by the fold's fit; the
cross-validation's gap TRs are not training samples either, so their words are left out too.

Each fold also scores the removal where it matters: a fresh linear probe
(:func:`brainalign.core.removal.probes.probe_pipeline`) trained on the removed features of the
fold's training words and tested on its held-out words, against the majority class of the
training words (``heldout_accuracy``, ``heldout_baseline`` in the summary), beside the same probe
on the original features.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..representations.derived import PerFoldFeatures
from ..timing.stimuli import word_times
from .methods import PropertyError, REMOVERS, encode_property
from .probes import probe_pipeline

log = logging.getLogger(__name__)


def word_samples(words: pd.DataFrame, grids: pd.DataFrame, align: str = "midpoint") -> np.ndarray:
    """The sample (row of the stories' kept TRs concatenated in ``grids`` order) of each word of
    ``words`` (rows in the table's order), -1 where the word falls outside the kept volumes.

    Returns
    -------
    int64 array (n_words,)
    """
    out = np.full(len(words), -1, dtype=np.int64)
    offset = 0
    for row in grids.itertuples():
        rows = np.flatnonzero(words["story"].to_numpy() == row.story)
        t = word_times(words.iloc[rows], align)
        i = np.floor((t - float(row.t0)) / float(row.tr)).astype(np.int64) - int(row.trim_start)
        ok = (i >= 0) & (i < int(row.n_trs))
        out[rows[ok]] = offset + i[ok]
        offset += int(row.n_trs)
    return out


def stacked_word_features(word_features: dict, words: pd.DataFrame, grids: pd.DataFrame,
                          condition: str = "?") -> tuple[pd.DataFrame, np.ndarray]:
    """The words of the stories of ``grids`` in story and ``word_index`` order, and the source's
    word features stacked in that order (float array (n_words, dim)); a story whose feature rows
    and words differ in number is an error naming it."""
    stories = grids["story"].tolist()
    order = {s: k for k, s in enumerate(stories)}
    w = words[words["story"].isin(stories)]
    w = w.assign(_o=w["story"].map(order)).sort_values(["_o", "word_index"], kind="stable")
    w = w.drop(columns="_o").reset_index(drop=True)
    parts = []
    for s in stories:
        X = np.asarray(word_features[s])
        n = int((w["story"] == s).sum())
        if len(X) != n:
            raise ValueError(f"condition {condition!r}, story {s!r}: the source has {len(X)} word feature rows, the "
                             f"words table {n} words")
        parts.append(X)
    return w, np.concatenate(parts)


def fold_word_rows(sample: np.ndarray, folds: pd.DataFrame) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per outer fold: (fold, training words, held-out words), the words (rows of ``sample``, from
    :func:`word_samples`) whose sample is a training or a test sample of the fold; words of no
    sample (-1) are in neither."""
    out = []
    for f, rows in folds.groupby("fold", sort=True):
        train = np.flatnonzero(np.isin(sample, rows.loc[rows["role"] == "train", "sample"].to_numpy(np.int64)))
        test = np.flatnonzero(np.isin(sample, rows.loc[rows["role"] == "test", "sample"].to_numpy(np.int64)))
        out.append((int(f), train, test))
    return out


def probe_per_fold(word_features: dict, words: pd.DataFrame, annotations: pd.DataFrame, prop: str,
                   grids: pd.DataFrame, folds: pd.DataFrame, *, n_bins: int = 5, align: str = "midpoint",
                   condition: str = "?", layer: int = -1) -> pd.DataFrame:
    """A linear probe of ``prop`` from one layer's word features with the encoding's outer folds
    (trained on the words of a fold's training TRs, tested on those of its held-out TRs; words
    without a value left out).

    Returns
    -------
    DataFrame: condition, layer, property, features ("original"), fold, accuracy, baseline
    (majority class of the training words), n_train, n_test, n_classes."""
    from .annotators import ANNOTATORS
    from .probes import probe_accuracy

    w, X = stacked_word_features(word_features, words, grids, condition)
    values = property_values(annotations, w, prop, condition)
    valid = np.flatnonzero(~np.asarray(pd.isna(values), dtype=bool))
    folds_rows = fold_word_rows(word_samples(w, grids, align)[valid], folds)
    res = probe_accuracy(X[valid], values[valid], [(tr, te) for _, tr, te in folds_rows], kind=ANNOTATORS[prop].kind,
                         n_bins=n_bins, name=prop, context=f"{condition} layer {layer}")
    log.info("%s layer %d: probe of %s %.3f (majority %.3f)", condition, layer, prop, res.accuracy, res.baseline)
    return pd.DataFrame([{"condition": condition, "layer": int(layer), "property": prop, "features": "original",
                          "fold": k, "accuracy": float(res.fold_accuracy[k]), "baseline": float(res.fold_baseline[k]),
                          "n_train": len(tr), "n_test": len(te), "n_classes": int(res.n_classes)}
                         for k, (_, tr, te) in enumerate(folds_rows)])


def property_values(annotations: pd.DataFrame, words: pd.DataFrame, prop: str, condition: str = "?") -> np.ndarray:
    """The annotation column ``prop`` aligned to the rows of ``words`` (by story and word_index)."""
    if prop not in annotations.columns:
        raise PropertyError(f"condition {condition!r}: the annotations table has no property {prop!r} (it has "
                            f"{[c for c in annotations.columns if c not in ('story', 'word_index')]}); add it to "
                            f"removal.properties so that data_prep annotates it")
    key = pd.MultiIndex.from_frame(words[["story", "word_index"]])
    ann = annotations.set_index(["story", "word_index"])[prop]
    missing = ~key.isin(ann.index)
    if missing.any():
        first = words.loc[missing, ["story", "word_index"]].iloc[0].tolist()
        raise PropertyError(f"condition {condition!r}: {int(missing.sum())} words have no annotation row (first: "
                            f"story {first[0]}, word {first[1]}); re-run data_prep (annotate_words)")
    return ann.reindex(key).to_numpy()


def remove_property_per_fold(method: str, word_features: dict, words: pd.DataFrame, annotations: pd.DataFrame,
                             prop: str, grids: pd.DataFrame, folds: pd.DataFrame,
                             to_trs: Callable[[dict], dict], *, method_params: dict | None = None,
                             align: str = "midpoint", condition: str = "?", probe: bool = True) -> PerFoldFeatures:
    """Fit ``method`` per outer fold on the training words and return the TR features of every fold.

    Parameters
    ----------
    method : a key of :data:`brainalign.core.removal.methods.REMOVERS`.
    word_features : story -> float array (n_words_story, dim), the source layer's word features
        (rows in ``word_index`` order, as the words table).
    words : the words table; annotations : story, word_index and one column per property.
    prop : the property removed (its kind comes from the annotator registry).
    grids, folds : the TR-grid and folds tables (the encoding's).
    to_trs : story -> word features  =>  story -> float32 (n_trs, n_features), the source's own
        resampling (downsampling, response model, trimming).
    method_params : the remover's parameters, plus ``n_bins`` (numeric properties: quantile
        classes for INLP and the probes).

    Returns
    -------
    :class:`~brainalign.core.representations.derived.PerFoldFeatures` (``"<fold>/<story>"`` ->
    float32 (n_trs, n_features)), fitted eagerly (the per-fold removers and probe scores are in
    its ``summaries`` attribute: fold -> dict), applied lazily one fold at a time.
    """
    from .annotators import ANNOTATORS

    if method not in REMOVERS:
        raise PropertyError(f"condition {condition!r}: unknown removal method {method!r}; registered: "
                            f"{sorted(REMOVERS)}")
    kind = ANNOTATORS[prop].kind
    params = dict(method_params or {})
    n_bins = int(params.pop("n_bins", 5))
    stories = grids["story"].tolist()
    words, X = stacked_word_features(word_features, words, grids, condition)
    X = X.astype(np.float64)
    bounds = np.r_[0, np.cumsum([int((words["story"] == st).sum()) for st in stories])]
    values = property_values(annotations, words, prop, condition)
    missing = np.asarray(pd.isna(values), dtype=bool)
    if missing.all():
        raise PropertyError(f"condition {condition!r}: property {prop!r} has no value for any word")
    if missing.any():
        log.warning("condition %s: %d of %d words have no %s (e.g. a sentence without a finite verb): they are "
                    "left out of every fit and probe, and a residual leaves their features unchanged", condition,
                    int(missing.sum()), len(values), prop)
    sample = word_samples(words, grids, align)
    sample[missing] = -1     # words without a value enter no fit (their features are still transformed)
    story_of_word = words["story"].to_numpy()
    fitted, summaries = {}, {}
    for f, train, test in fold_word_rows(sample, folds):
        where = f"condition {condition}, fold {f}"
        if len(train) == 0:
            raise PropertyError(f"{where}: no word falls in a training TR")
        enc = encode_property(_filled(values, missing, kind, train), kind, train_rows=train, n_bins=n_bins,
                              name=prop, context=where)
        if missing.any() and kind == "numeric":   # no effect is removed from words without a value
            enc.design[missing] = 0.0
        remover = REMOVERS[method](**params)
        groups = story_of_word[train] if len(np.unique(story_of_word[train])) >= 2 else None
        remover.fit(X[train], enc.take(train), groups=groups)
        summary = {"fold": f, "n_train_words": int(len(train)), "n_test_words": int(len(test)),
                   "n_words_without_value": int(missing.sum()),
                   **remover.summary()}
        if probe and len(test):
            Z = remover.transform(X[np.r_[train, test]], enc.take(np.r_[train, test]))
            summary.update(_heldout_probe(X[train], X[test], Z[:len(train)], Z[len(train):], enc.labels[train],
                                          enc.labels[test]))
        fitted[f], summaries[f] = (remover, enc), summary
        log.info("%s: %s removal of %s fitted on %d training words%s", where, method, prop, len(train),
                 "" if "heldout_accuracy" not in summary else
                 f"; held-out probe {summary['heldout_accuracy_before']:.3f} -> {summary['heldout_accuracy']:.3f} "
                 f"(majority {summary['heldout_baseline']:.3f})")

    def compute(f: int) -> dict:
        remover, enc = fitted[f]
        Z = remover.transform(X, enc)
        if not np.isfinite(Z).all():
            raise FloatingPointError(f"condition {condition!r}: removal gave non-finite features in fold {f}")
        return to_trs({s: Z[bounds[k]: bounds[k + 1]] for k, s in enumerate(stories)})

    out = PerFoldFeatures(sorted(fitted), stories, compute)
    out.summaries = summaries
    return out


def _filled(values: np.ndarray, missing: np.ndarray, kind: str, train: np.ndarray) -> np.ndarray:
    """Values with the missing ones filled so that they encode as "no effect": a categorical
    placeholder class that no training word has (unknown: label -1, an all-zero design row), or
    for a numeric property any finite number (its design row is then set to 0)."""
    if not missing.any():
        return values
    out = np.asarray(values, dtype=object).copy()
    if kind == "numeric":
        out[missing] = float(np.mean(np.asarray(values[train], dtype=float)))
        return out.astype(float)
    out[missing] = "\x00no value"
    return out


def _heldout_probe(X_train, X_test, Z_train, Z_test, y_train, y_test) -> dict:
    """A fresh probe on the original and on the removed features, trained on the training words,
    scored on the held-out words whose class the training words know; and the majority baseline."""
    known = y_test >= 0
    if len(np.unique(y_train)) < 2 or not known.any():
        return {}
    majority = np.bincount(y_train).argmax()
    out = {"heldout_baseline": float(np.mean(y_test[known] == majority))}
    for key, (A, B) in {"heldout_accuracy_before": (X_train, X_test), "heldout_accuracy": (Z_train, Z_test)}.items():
        est = probe_pipeline().fit(A, y_train)
        out[key] = float(np.mean(est.predict(B[known]) == y_test[known]))
    return out
