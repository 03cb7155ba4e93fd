"""Thin adapters from catalog entries to brainalign.core (embedding)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ...core.representations import EMBEDDING_OVERRIDES, get_kind, input_argument
from ...core.representations.derived import fit_per_fold, is_per_fold
from ...core.timing.resample import story_features_to_trs, word_features_to_trs

log = logging.getLogger(__name__)


def _effective(embedding: dict, condition: dict) -> dict:
    """Embedding parameters with the condition's own overrides (response_model, delays, ...)."""
    return {**embedding, **{k: condition[k] for k in EMBEDDING_OVERRIDES if k in (condition or {})}}


def extract_features(*data, name: str, layers: list[int], inputs: list[str],
                     condition_params: dict | None = None) -> dict:
    """Features of every story at each layer, by the condition's kind.

    ``data`` are the datasets named by ``inputs`` (the kind's :meth:`inputs`), then the condition's
    parameters and the embedding parameters.

    Returns
    -------
    dict ``layer_<k>`` -> (story -> float32 array): (n_words, dim) for kinds at level ``word``,
    (n_trs_total, dim) for kinds at level ``tr``.
    """
    *datasets, condition, embedding = data
    # a condition made by another pipeline (task_tuning) has no entry under `conditions`: its
    # parameters are bound when the pipeline is built
    condition = dict(condition_params if condition_params is not None else (condition or {}))
    kind = get_kind(condition.setdefault("kind", "text"))
    params = kind.check(name, condition)
    feats = kind.extract(name, params, _effective(embedding, params), list(layers),
                         **{input_argument(n): d for n, d in zip(inputs, datasets)})
    return {f"layer_{layer}": {s: np.asarray(a, dtype=np.float32) for s, a in feats[layer].items()}
            for layer in layers}


def to_tr_grid(stimulus_features: dict, words: pd.DataFrame, grids: pd.DataFrame, params: dict,
               condition: dict | None = None, *, level: str = "word", condition_params: dict | None = None) -> dict:
    """Level ``word``: words or sentences (``unit``) to TRs (``downsample``: Lanczos or box); level
    ``tr``: features already on the full TR grid. Then FIR delays, HRF or nothing
    (``response_model``), trimmed: story -> float32 (n_trs, n_features). The condition's own
    ``response_model``, ``delays``, ... override the embedding parameters."""
    params = _effective(params, condition_params if condition_params is not None else (condition or {}))
    if is_per_fold(stimulus_features):   # one model per fold (brain_tuning): each fold's features resampled alike
        by_fold: dict[str, dict] = {}
        for key in stimulus_features:
            fold, story = str(key).split("/", 1)
            by_fold.setdefault(fold, {})[story] = stimulus_features[key]
        return {f"{fold}/{story}": arr for fold, feats in by_fold.items()
                for story, arr in to_tr_grid(feats, words, grids, params, None, level=level,
                                             condition_params={}).items()}
    if level == "tr":
        return story_features_to_trs(stimulus_features, grids, response_model=params.get("response_model", "fir"),
                                     delays=tuple(params.get("delays", (1, 2, 3, 4))))
    return word_features_to_trs(stimulus_features, words, grids, align=params.get("word_align", "midpoint"),
                                window=int(params.get("lanczos_window", 3)),
                                response_model=params.get("response_model", "fir"),
                                delays=tuple(params.get("delays", (1, 2, 3, 4))),
                                unit=params.get("unit", "word"),
                                sentence_time=params.get("sentence_time", "offset"),
                                downsample=params.get("downsample", "lanczos"))


def remove_property(word_features: dict, words: pd.DataFrame, annotations: pd.DataFrame, folds: pd.DataFrame,
                    grids: pd.DataFrame, embedding: dict, *, name: str, params: dict,
                    source_params: dict, layer: int = -1) -> tuple[dict, dict]:
    """A property removed from the source's word features, fitted per outer fold on the training
    words only (the fold rule), then resampled to TRs as the source is.

    Returns
    -------
    (``"<fold>/<story>"`` -> float32 (n_trs, n_features), summary: {"folds": [per-fold fit and
    held-out probe, ...]})"""
    from ...core.removal.apply import remove_property_per_fold

    eff = _effective(embedding, source_params)

    def to_trs(feats: dict) -> dict:
        return to_tr_grid(feats, words, grids, eff)

    feats = remove_property_per_fold(params["transform"], word_features, words, annotations, params["property"],
                                     grids, folds, to_trs, method_params=params.get("transform_params"),
                                     align=eff.get("word_align", "midpoint"), condition=name)
    summary = {"condition": name, "source": params["source"], "property": params["property"], "layer": int(layer),
               "method": params["transform"], "folds": [_jsonable(feats.summaries[f]) for f in sorted(feats.summaries)]}
    return feats, summary


def probe_properties(word_features: dict, words: pd.DataFrame, annotations: pd.DataFrame, folds: pd.DataFrame,
                     grids: pd.DataFrame, embedding: dict, removal: dict, *, condition: str, layer: int,
                     properties: list[str]) -> pd.DataFrame:
    """Linear probes of each property from one layer's word features, cross-validated with the
    encoding's outer folds (a fold's probe is trained on the words of its training TRs and
    tested on the words of its held-out TRs).

    Returns
    -------
    DataFrame: condition, layer, property, features ("original"), fold, accuracy, baseline
    (majority class of the training words), n_train, n_test, n_classes."""
    from ...core.removal.apply import probe_per_fold

    return pd.concat([probe_per_fold(word_features, words, annotations, prop, grids, folds,
                                     n_bins=int(removal.get("n_bins", 5)), align=embedding.get("word_align", "midpoint"),
                                     condition=condition, layer=layer) for prop in properties], ignore_index=True)


def _jsonable(d: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if isinstance(v, np.generic) else v)
            for k, v in d.items()}


def derive_features(source: dict, folds: pd.DataFrame, grids: pd.DataFrame, against: dict | None = None, *,
                    name: str, params: dict) -> dict:
    """A derived condition's TR features, fitted on each outer fold's training samples only (the
    fold rule): ``"<fold>/<story>"`` -> float32 (n_trs, n_features)."""
    return fit_per_fold(params["transform"], source, grids, folds, against=against,
                        transform_params=params.get("transform_params"), condition=name)
