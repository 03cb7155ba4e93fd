"""Condition kinds (core.representations): parsing, layers, descriptions, controls, tuned model
directories, fingerprints, low-level counts and the fold rule of derived conditions.

References: direct counts, numpy/sklearn on the same arrays, transformers models called directly,
planted properties (a model without positions cannot see word order)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.core.representations import (KINDS, ConditionError, condition_layers, describe_conditions,
                                             parse_conditions)
from brainalign.core.representations import control as C
from brainalign.core.representations import derived as D
from brainalign.core.representations import text as T
from brainalign.core.representations import tuned as TU
from brainalign.core.representations.lowlevel import event_rate, lowlevel_story


# ----------------------------------------------------------------------------- parsing
def test_kind_defaults_to_text_and_every_kind_is_registered():
    parsed = parse_conditions({"a": {"model": "all-MiniLM-L6-v2"}})
    assert parsed["a"][0].name == "text" and parsed["a"][1]["kind"] == "text"
    assert {"text", "speech", "lowlevel", "control", "tuned", "derived"} <= set(KINDS)


@pytest.mark.parametrize("conditions, message", [
    ({"a": {"kind": "nope", "model": "m"}}, "unknown condition kind 'nope'"),
    ({"a": {"model": "m", "modle": "x"}}, "condition 'a' (kind text): unknown parameters ['modle']"),
    ({"a": {"kind": "text"}}, "condition 'a' (kind text): missing ['model']"),
    ({"a": {"kind": "control", "model": "m", "control": "shuffled"}}, "control must be one of"),
    ({"a": {"kind": "derived", "source": "b", "transform": "residual", "against": "c"}}, "source 'b' is not a condition"),
    ({"a": {"kind": "derived", "source": "a", "transform": "residual", "against": "a"}}, "derived from itself"),
    ({"a": {"kind": "derived", "source": "b", "transform": "nope"}, "b": {"model": "m"}}, "unknown transform"),
    ({"a": {"kind": "derived", "source": "b", "transform": "residual"}, "b": {"model": "m"}}, "needs 'against'"),
    ({"a": {"kind": "lowlevel", "features": ["loudness"]}}, "unknown low-level features"),
    ({"a": {"kind": "speech", "model": "m", "family": "wavlm"}}, "speech family must be one of"),
    ({"a": "bert"}, "expected a mapping"),
    ({"a": {"kind": "tuned", "modality": "speech", "unit": "sentence"}}, "apply to text models"),
    ({"a": {"kind": "tuned", "window_s": 4}}, "apply to modality: speech"),
    ({"a": {"kind": "lowlevel", "unit": "sentence"}}, "unknown parameters"),
])
def test_bad_conditions_are_named(conditions, message):
    with pytest.raises(ConditionError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        parse_conditions(conditions)


def test_derived_cycle_is_an_error():
    conds = {"a": {"kind": "derived", "source": "b", "transform": "residual", "against": "c"},
             "b": {"kind": "derived", "source": "a", "transform": "residual", "against": "c"},
             "c": {"kind": "lowlevel"}}
    with pytest.raises(ConditionError, match="cycle"):
        parse_conditions(conds)


def test_null_condition_is_dropped_and_layers_per_kind():
    conds = {"p": {"model": "m"}, "gone": None, "low": {"kind": "lowlevel"},
             "d": {"kind": "derived", "source": "p", "transform": "residual", "against": "low"},
             "p2": {"model": "m", "layers": [1]}}
    parsed = parse_conditions(conds)
    assert list(parsed) == ["p", "low", "d", "p2"]
    layers = condition_layers(parsed, [0, 2, 4])
    assert layers == {"p": (0, 2, 4), "low": (0,), "d": (0, 2, 4), "p2": (1,)}
    assert parsed["d"][1]["against_layer"] == 0
    bad = dict(conds, d={"kind": "derived", "source": "p2", "transform": "residual", "against": "low", "layers": [2]})
    with pytest.raises(ConditionError, match=r"layers \[2\] are not layers of its source 'p2'"):
        condition_layers(parse_conditions(bad), [0, 2, 4])


def test_conditions_table_columns_and_rows():
    table = describe_conditions({
        "pretrained": {"model": "all-MiniLM-L6-v2"},
        "rnd": {"kind": "control", "control": "random_init", "model": "all-MiniLM-L6-v2", "seed": 3},
        "sst2": {"kind": "tuned", "base_model": "bert", "method": "lora", "task": "sst2", "trainable_fraction": 0.01},
        "low": {"kind": "lowlevel", "features": ["word_rate", "predictors"], "predictors": ["rate"]},
        "res": {"kind": "derived", "source": "pretrained", "transform": "residual", "against": "low"}})
    assert list(table.columns) == ["condition", "kind", "base_model", "method", "task", "trainable_fraction",
                                   "source", "transform", "details"]
    t = table.set_index("condition")
    assert t.loc["rnd", "method"] == "random_init" and t.loc["rnd", "base_model"] == "all-MiniLM-L6-v2"
    assert t.loc["sst2", "kind"] == "tuned" and float(t.loc["sst2", "trainable_fraction"]) == 0.01
    assert t.loc["res", "source"] == "pretrained" and t.loc["res", "transform"] == "residual"
    assert t.loc["pretrained", "task"] == "" and not table.isna().any().any()


# ----------------------------------------------------------------------------- low-level
def test_word_rate_is_a_direct_count_per_volume():
    rng = np.random.default_rng(0)
    grid = {"story": "s", "t0": 3.0, "tr": 2.0, "n_trs_total": 40}
    onsets = np.sort(rng.uniform(0, 85, 300))
    words = pd.DataFrame({"word": "w", "onset": onsets, "offset": onsets + 0.2})
    got = event_rate(words["onset"].to_numpy() + 0.1, grid)
    mid = words["onset"].to_numpy() + 0.1
    expected = np.array([((mid >= 3.0 + 2 * i - 1.0) & (mid < 3.0 + 2 * i + 1.0)).sum() / 2.0 for i in range(40)])
    np.testing.assert_allclose(got, expected)
    values, names = lowlevel_story(["word_rate"], grid, words.assign(word_index=np.arange(300)))
    assert names == ["word_rate"] and values.shape == (40, 1)
    np.testing.assert_allclose(values[:, 0], expected)


# ----------------------------------------------------------------------------- controls
def test_random_init_is_deterministic_and_differs_from_pretrained(minilm):
    _, pre = minilm
    _, a = C.random_init_model("all-MiniLM-L6-v2", seed=1)
    _, b = C.random_init_model("all-MiniLM-L6-v2", seed=1)
    _, c = C.random_init_model("all-MiniLM-L6-v2", seed=2)
    key = "encoder.layer.0.attention.self.query.weight"
    sa, sb, sc, sp = (m.state_dict()[key] for m in (a, b, c, pre))
    assert (sa == sb).all() and not (sa == sc).all() and not np.allclose(sa.numpy(), sp.numpy(), atol=1e-3)
    assert T.model_fingerprint(a) == T.model_fingerprint(b) != T.model_fingerprint(c)


def test_zero_positions_make_the_model_blind_to_word_order(minilm):
    """Without position embeddings self-attention is permutation-equivariant: the last word's
    feature cannot depend on the order of the words before it (the pretrained model's does)."""
    tok, pre = minilm
    _, blind = T.load_model("all-MiniLM-L6-v2", "cpu")
    C.zero_position_embeddings(blind)
    assert all((t.weight == 0).all() for t in C.position_tables(blind))
    words = "the keeper climbed the stairs to light the lamp".split()
    shuffled = [words[i] for i in (3, 0, 6, 1, 7, 2, 5, 4)] + [words[-1]]

    def last(model, w):
        return T.extract_word_features(w, tok, model, [6], context_words=20)[6][-1]

    np.testing.assert_allclose(last(blind, words), last(blind, shuffled), atol=2e-5)
    assert np.abs(last(pre, words) - last(pre, shuffled)).max() > 1e-2


def test_shuffle_windows_keep_the_words_and_the_last_word():
    words = [f"w{i}" for i in range(30)]
    plain = T._windows(words, 8)
    mixed = T._windows(words, 8, shuffle_seed=4)
    assert mixed == T._windows(words, 8, shuffle_seed=4)
    for p, m in zip(plain, mixed):
        assert sorted(p) == sorted(m) and p[-1] == m[-1]
    assert sum(p != m for p, m in zip(plain, mixed)) > 20


# ----------------------------------------------------------------------------- tuned
def _tiny_text_model(path, seed=0, scale=None):
    import torch
    from tiny_bert import make_tiny_bert

    make_tiny_bert(path, chars="", seed=seed)
    if scale is not None:  # "retrain": the same architecture with other weights at the same path
        from transformers import AutoModel

        model = AutoModel.from_pretrained(path)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)
        model.save_pretrained(path, safe_serialization=True)
    return path


def test_tuned_directory_checks(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        TU.check_model_directory(tmp_path / "none")
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "pytorch_model.bin").write_bytes(b"\x80")
    with pytest.raises(ValueError, match="never unpickled"):
        TU.check_model_directory(d)
    (d / "pytorch_model.bin").unlink()
    with pytest.raises(ValueError, match="no safetensors weights"):
        TU.check_model_directory(d)
    a = tmp_path / "adapter"
    a.mkdir()
    (a / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="no adapter_model.safetensors"):
        TU.check_model_directory(a)


def test_retraining_at_the_same_path_changes_the_features(tmp_path):
    """The feature cache is keyed by the weights: a model retrained at the same path gives its own
    features (equal to the directly computed ones), never the stale cached ones."""
    path = tmp_path / "06_models" / "sst2"
    words = pd.DataFrame({"story": "s", "word_index": np.arange(12), "sentence_id": 0,
                          "word": "the keeper climbed the stairs to light the lamp at dusk again".split()})
    embedding = {"cache_dir": str(tmp_path / "cache"), "device": "cpu", "context_words": 4}
    kind = KINDS["tuned"]
    params = kind.check("sst2", {"kind": "tuned", "model_dataset": "sst2.tuned_model"})

    def run():
        return kind.extract("sst2", params, embedding, [1], words=words, sst2__tuned_model=str(path))[1]["s"]

    def direct():
        tok, model = TU.load_tuned(path)
        return T.extract_word_features(words["word"].tolist(), tok, model, [1], context_words=4)[1]

    _tiny_text_model(path, seed=0)
    first = run()
    np.testing.assert_allclose(first, direct(), atol=1e-6)
    np.testing.assert_allclose(run(), first)            # a cache hit gives the same features
    _tiny_text_model(path, seed=0, scale=0.5)
    second = run()
    np.testing.assert_allclose(second, direct(), atol=1e-6)
    assert np.abs(second - first).max() > 1e-3
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_lora_adapter_directory_merges(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    base = _tiny_text_model(tmp_path / "base")
    model = get_peft_model(AutoModel.from_pretrained(base), LoraConfig(r=2, target_modules=["query", "value"],
                                                                       init_lora_weights=False))
    ad = tmp_path / "adapter"
    model.save_pretrained(ad)
    tok, merged = TU.load_tuned(ad, base_model=str(base))
    enc = tok(["a lamp"], return_tensors="pt")
    with torch.no_grad():
        ref = model(**enc).last_hidden_state
        got = merged(**enc).last_hidden_state
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)


# ----------------------------------------------------------------------------- derived / fold rule
def _fold_setup(n_trs=(30, 40, 35), dim=5, seed=0):
    from brainalign.core.encoding.folds import folds_to_table, leave_stories_out

    rng = np.random.default_rng(seed)
    stories = ["s0", "s1", "s2"]
    grids = pd.DataFrame({"story": stories, "n_trs": list(n_trs)})
    source = {s: rng.standard_normal((n, dim)).astype(np.float32) for s, n in zip(stories, n_trs)}
    against = {s: rng.standard_normal((n, 2)).astype(np.float32) for s, n in zip(stories, n_trs)}
    return grids, source, against, folds_to_table(leave_stories_out(list(n_trs)))


def test_fold_rule_spy_never_fits_on_test_rows(monkeypatch):
    """A deliberately leaky transform (it would memorise every row it is fitted on) records the
    rows it is given: in every fold they are exactly that fold's training samples."""
    grids, source, _, folds = _fold_setup()
    seen = []

    class Leaky:
        def fit(self, X, context):
            seen.append((np.asarray(context["rows"]).copy(), set(context["stories"])))
            self.memory = np.asarray(X).copy()
            return self

        def transform(self, X, context):
            return np.asarray(X) + self.memory.mean()

    monkeypatch.setitem(D.TRANSFORMS, "leaky", Leaky)
    out = dict(D.fit_per_fold("leaky", source, grids, folds))   # computed fold by fold on access
    assert len(seen) == folds["fold"].nunique() == 3
    for f, (rows, stories) in enumerate(seen):
        test = set(folds[(folds["fold"] == f) & (folds["role"] == "test")]["sample"])
        train = set(folds[(folds["fold"] == f) & (folds["role"] == "train")]["sample"])
        assert not set(rows.tolist()) & test
        assert set(rows.tolist()) == train
        assert f"s{f}" not in stories                    # the held-out story never reaches fit
    assert set(out) == {f"{f}/{s}" for f in range(3) for s in ("s0", "s1", "s2")}


def test_residual_matches_sklearn_fitted_on_training_rows():
    from sklearn.linear_model import LinearRegression

    grids, source, against, folds = _fold_setup()
    out = D.fit_per_fold("residual", source, grids, folds, against=against)
    X = np.concatenate([source[s] for s in ("s0", "s1", "s2")]).astype(np.float64)
    A = np.concatenate([against[s] for s in ("s0", "s1", "s2")]).astype(np.float64)
    for f in range(3):
        train = folds[(folds["fold"] == f) & (folds["role"] == "train")]["sample"].to_numpy()
        ref = X - LinearRegression().fit(A[train], X[train]).predict(A)
        got = np.concatenate([out[f"{f}/{s}"] for s in ("s0", "s1", "s2")])
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_encoding_with_per_fold_features_equals_each_fold_alone():
    from brainalign.core.encoding.folds import folds_from_table
    from brainalign.core.encoding.ridge import cross_validated_encoding

    grids, source, against, folds = _fold_setup(dim=6, seed=3)
    per_fold = D.fit_per_fold("residual", source, grids, folds, against=against)
    fold_list = folds_from_table(folds)
    stories = ["s0", "s1", "s2"]
    rng = np.random.default_rng(5)
    Y = rng.standard_normal((105, 4)).astype(np.float32)
    sos = np.repeat(np.arange(3), [30, 40, 35])
    Xf = [np.concatenate(D.fold_features(per_fold, f, stories)) for f in range(3)]
    kw = dict(alphas=np.logspace(-1, 3, 5), n_inner=3, inner_gap=0)
    res = cross_validated_encoding(Xf[0], Y, fold_list, sos, fold_features=Xf, **kw)
    for f in range(3):
        alone = cross_validated_encoding(Xf[f], Y, [fold_list[f]], sos, **kw)
        np.testing.assert_allclose(res.fold_r[f], alone.fold_r[0], atol=1e-6)


def test_phoneme_rate_counts_the_lebel_phone_tier(tmp_path):
    """Phones of the LeBel TextGrid (fixture written by lebel_fixture: ~3 phones per word) counted
    per volume, against a direct count of the phones the fixture wrote."""
    from lebel_fixture import _phones, write_lebel_study

    from brainalign.io.readers.lebel import LebelReader

    planted = write_lebel_study(tmp_path / "ds003020")
    reader = LebelReader(tmp_path / "ds003020")
    grids = reader.tr_grids().set_index("story")
    story = grids.index[0]
    grid = dict(grids.loc[story], story=story)
    w = planted["words"][story]
    written = [p for a in w[["word", "onset", "offset"]].itertuples(index=False) for p in _phones(*a)]
    mids = np.array([(p[0] + p[1]) / 2 for p in written])
    t = grid["t0"] + grid["tr"] * np.arange(int(grid["n_trs_total"]))
    expected = np.array([((mids >= ti - grid["tr"] / 2) & (mids < ti + grid["tr"] / 2)).sum() for ti in t]) / grid["tr"]
    kind = KINDS["lowlevel"]
    params = kind.check("low", {"kind": "lowlevel", "features": ["word_rate", "phoneme_rate"]})
    words = reader.words()[story].assign(story=story, word_index=lambda d: np.arange(len(d)))
    from brainalign.pipelines.data_prep.nodes import read_phones

    one = grids.loc[[story]].reset_index()
    out = kind.extract("low", params, {}, [0], words=words, tr_grids=one, phones=read_phones(reader, one))[0][story]
    np.testing.assert_allclose(out[:, 1], expected, atol=1e-6)
    assert out[:, 1].sum() > 2 * out[:, 0].sum() > 0


def test_zero_positions_refuses_models_that_keep_word_order():
    from transformers import GPT2Config, GPT2Model

    gpt2 = GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32))
    assert "causal" in C.order_leaks(gpt2)
    with pytest.raises(ConditionError, match="use mode 'shuffle'"):
        C.zero_position_embeddings(gpt2)


def test_tuned_model_fitted_on_a_test_story_is_refused(tmp_path):
    """The fold rule for models fitted on this study's responses: a tuned directory whose
    brainalign.json lists a story that an encoding test fold holds is an error naming it."""
    import json

    from brainalign.core.encoding.folds import folds_to_table, leave_stories_out

    grids = pd.DataFrame({"story": ["a", "b", "c"], "n_trs": [20, 20, 20]})
    folds = folds_to_table(leave_stories_out([20, 20, 20]))
    d = _tiny_text_model(tmp_path / "brain")
    (d / "brainalign.json").write_text(json.dumps({"method": "brain", "fitted_on_stories": ["b"]}))
    with pytest.raises(ConditionError, match=r"fitted on stories \['b'\].*fold rule"):
        TU.check_fold_rule("brain", TU.read_info(d), folds, grids)
    TU.check_fold_rule("brain", TU.read_info(d), folds_to_table(leave_stories_out([20, 20])),
                       grids[grids.story != "b"].reset_index(drop=True))   # b left out: allowed


def test_conditions_table_takes_missing_fields_from_brainalign_json():
    table = describe_conditions({"t": {"kind": "tuned", "task": "sst2"}},
                                {"t": {"base_model": "bert-base-cased", "method": "prefix", "task": "other",
                                       "trainable_fraction": 0.003}})
    row = table.set_index("condition").loc["t"]
    assert (row["base_model"], row["method"], row["task"]) == ("bert-base-cased", "prefix", "sst2")
    assert float(row["trainable_fraction"]) == 0.003


def test_speech_features_to_grid_is_the_lanczos_sum_written_out():
    """Window features at 0.1 s to volumes at t0 + 2 i: each volume's value is the sum over
    windows of sinc(d / TR) sinc(d / (3 TR)) for |d| < 3 TR (d = volume time - window time)."""
    from brainalign.core.representations.speech import speech_features_to_grid

    rng = np.random.default_rng(0)
    times = np.arange(1, 600) * 0.1
    feats = rng.standard_normal((len(times), 3))
    tr_t = 3.0 + 2.0 * np.arange(25)
    got = speech_features_to_grid(times, feats, tr_t)
    ref = np.zeros((25, 3))
    for i, t in enumerate(tr_t):
        for j, s in enumerate(times):
            d = t - s
            if abs(d) < 6.0:
                ref[i] += np.sinc(d / 2.0) * np.sinc(d / 6.0) * feats[j]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_read_audio_places_resamples_and_checks_coverage():
    """data_prep's read_audio: resampled to 16 kHz (scipy reference), shifted by the reader's
    audio_start onto the TR-grid clock, and an error naming the story when the audio ends before
    its last word."""
    from scipy.signal import resample_poly

    from brainalign.pipelines.data_prep.nodes import read_audio

    rng = np.random.default_rng(0)
    wav = rng.standard_normal(22050 * 4).astype(np.float32) * 0.1

    class Study:
        name, root = "fake", "/nowhere"

        def audio(self, story):
            return wav, 22050

        def audio_start(self, story):
            return 0.5

    words = pd.DataFrame({"story": "s", "word": ["a", "b"], "onset": [1.0, 3.0], "offset": [1.5, 4.2]})
    grids = pd.DataFrame({"story": ["s"]})
    out = read_audio(Study(), words, grids, {"audio_sample_rate": 16000})["s"]
    ref = resample_poly(wav.astype(np.float64), 320, 441)
    assert len(out) == 8000 + len(ref)
    np.testing.assert_allclose(out[:8000], 0)
    np.testing.assert_allclose(out[8000:], ref, atol=1e-6)
    late = words.assign(offset=[1.5, 5.2])
    with pytest.raises(ValueError, match="story s: the audio"):
        read_audio(Study(), late, grids, {"audio_sample_rate": 16000})
