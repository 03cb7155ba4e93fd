"""Thin adapters from catalog entries to brainalign.core (embedding)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ...core.representations.text import FeatureCache, extract_word_features, feature_key, load_model
from ...core.timing.resample import word_features_to_trs

log = logging.getLogger(__name__)


CONTEXT_SCOPES = ("story", "sentence")


def extract_features(words: pd.DataFrame, condition: dict, params: dict, *, layers: list[int]) -> dict:
    """Word features of every story at each layer, from one forward pass per window.

    ``params``: ``context_scope`` (``story``: windows of ``context_words`` preceding words within
    the story; ``sentence``: also within the word's ``sentence_id``), ``word_separator`` (None:
    words given to the tokenizer as a list; ``""``: joined without spaces, for Chinese), plus
    device, batch size and cache folder.

    Returns
    -------
    dict ``layer_<k>`` -> (story -> float32 array (n_words, hidden_size)); cached on disk
    per model, context, scope, separator and story under ``params['cache_dir']``.
    """
    model_name = condition["model"]
    ctx = int(condition.get("context_words", params.get("context_words", 20)))
    scope = params.get("context_scope", "story")
    if scope not in CONTEXT_SCOPES:
        raise ValueError(f"embedding.context_scope must be one of {CONTEXT_SCOPES}, got {scope!r}")
    separator = params.get("word_separator")
    cache = FeatureCache(params.get("cache_dir"))
    out = {layer: {} for layer in layers}
    tok = model = None
    for story, w in words.groupby("story", sort=False):
        w = w.sort_values("word_index")
        wl = w["word"].tolist()
        groups = w["sentence_id"].to_numpy() if scope == "sentence" else None
        key = feature_key(model_name, ctx, str(story), wl, groups=groups, separator=separator)
        feats = cache.get(key, layers)
        if feats is None:
            if model is None:
                tok, model = load_model(model_name, params.get("device", "auto"))
            feats = extract_word_features(wl, tok, model, layers, context_words=ctx,
                                          batch_size=int(params.get("batch_size", 64)),
                                          progress=True, desc=f"{model_name} {story}",
                                          groups=groups, separator=separator)
            cache.put(key, feats)
        else:
            log.info("word features of story %s from the cache (%s)", story, key)
        for layer in layers:
            out[layer][story] = np.asarray(feats[layer], dtype=np.float32)
    return {f"layer_{layer}": out[layer] for layer in layers}


def to_tr_grid(word_features: dict, words: pd.DataFrame, grids: pd.DataFrame, params: dict) -> dict:
    """Words or sentences (``unit``) to TRs (``downsample``: Lanczos or box), then FIR delays,
    HRF or nothing (``response_model``), trimmed: story -> float32 (n_trs, n_features)."""
    return word_features_to_trs(word_features, words, grids, align=params.get("word_align", "midpoint"),
                                window=int(params.get("lanczos_window", 3)),
                                response_model=params.get("response_model", "fir"),
                                delays=tuple(params.get("delays", (1, 2, 3, 4))),
                                unit=params.get("unit", "word"),
                                sentence_time=params.get("sentence_time", "offset"),
                                downsample=params.get("downsample", "lanczos"))
