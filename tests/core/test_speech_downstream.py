"""Evaluation (c) for speech backbones: NLU examples read aloud by eSpeak NG, each pooled over its
own frames. References: eSpeak's word table read directly, and the model called directly on
each utterance's samples."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.core.brain_tuning.evaluate import (downstream_probe, speech_embedder, spoken_sentences,
                                                   utterance_embeddings)
from brainalign.core.representations.speech import SPEECH_FAMILIES, load_speech_model, resample_audio
from brainalign.core.synthetic.speech import synthesize_story

TEXTS = ["a charming and moving film .", "dull", "the plot goes nowhere and the actors know it !",
         "an utterly delightful surprise"]


@pytest.fixture(scope="module")
def spoken():
    return spoken_sentences(TEXTS)


def test_spans_are_the_word_timings_of_each_sentence(spoken):
    wav, sr, spans = spoken
    ref = synthesize_story("a charming and moving film . dull. the plot goes nowhere and the actors know it ! "
                           "an utterly delightful surprise.", lead_silence_s=0.5)
    w = ref.words
    np.testing.assert_array_equal(wav, ref.waveform)
    first, last = [0, 6, 7, 17], [5, 6, 16, 20]          # token indices of each sentence
    np.testing.assert_array_equal(spans[:, 0], np.round(w["onset"].to_numpy()[first] * sr))
    np.testing.assert_array_equal(spans[:, 1], np.round(w["offset"].to_numpy()[last] * sr))
    assert (np.diff(spans.ravel()) >= 0).all() and spans[-1, 1] <= len(wav)
    for a, b in spans:                                  # every utterance holds sound
        assert np.sqrt(np.mean(wav[a:b] ** 2)) > 0.01


def test_empty_text_is_named():
    with pytest.raises(ValueError, match="text 1 is empty"):
        spoken_sentences(["fine", "  "])


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_utterance_embedding_is_the_mean_frame_of_the_model_on_the_utterance(family, spoken, tmp_path):
    from tiny_speech import save_tiny_speech_model

    fe, model, fam = load_speech_model(save_tiny_speech_model(tmp_path / family, family))
    wav, sr, spans = spoken
    X = utterance_embeddings(fe, model, SPEECH_FAMILIES[fam], wav, sr, spans, layer=2)
    assert X.shape == (len(TEXTS), 32) and X.dtype == np.float32
    x16 = resample_audio(wav, sr, 16000).astype(np.float32)
    for i, (a, b) in enumerate(spans):
        seg = x16[int(round(a * 16000 / sr)):int(round(b * 16000 / sr))]
        inputs = fe(seg, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            h = model(inputs["input_values"], output_hidden_states=True).hidden_states[2][0]
        np.testing.assert_allclose(X[i], h.mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_whisper_pools_only_the_frames_inside_the_utterance(spoken, tmp_path):
    from tiny_speech import save_tiny_speech_model

    fe, model, fam = load_speech_model(save_tiny_speech_model(tmp_path / "whisper", "whisper"))
    wav, sr, spans = spoken
    X = utterance_embeddings(fe, model, SPEECH_FAMILIES[fam], wav, sr, spans[:1], layer=1)
    x16 = resample_audio(wav, sr, 16000).astype(np.float32)
    a, b = (int(round(v * 16000 / sr)) for v in spans[0])
    feats = fe(x16[a:b], sampling_rate=16000, return_tensors="pt")["input_features"]
    with torch.no_grad():
        h = model(feats, output_hidden_states=True).hidden_states[1][0]
    n = int(np.ceil((b - a) / 160 / 2))                # 10 ms mel hop, stride-2 convolution: 20 ms per frame
    assert abs(X[0] - h[:n].mean(0).numpy()).max() < 1e-4 or abs(X[0] - h[:n + 1].mean(0).numpy()).max() < 1e-4
    assert abs(X[0] - h.mean(0).numpy()).max() > 1e-3  # not the 30 s of padding


def test_a_probe_hears_a_planted_spoken_difference(tmp_path):
    """Short against long utterances: even a random speech model's pooled frames tell them apart."""
    from tiny_speech import save_tiny_speech_model

    fe, model, fam = load_speech_model(save_tiny_speech_model(tmp_path / "w", "wav2vec2"))
    texts = ["yes ."] * 10 + ["she sells sea shells by the sea shore every summer morning ."] * 10
    embed = speech_embedder(fe, model, SPEECH_FAMILIES[fam], layer=0)
    X = embed(texts, None)
    res = downstream_probe(X, np.repeat([0, 1], 10), n_folds=5)
    assert res["majority"] <= 0.5 and res["accuracy"] >= 0.9


def test_registered_tiny_wav2vec2_is_the_seeded_writer_built_once(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    from brainalign.core.representations.text import resolve_model
    from brainalign.core.representations.tiny_speech import save_tiny_speech_model

    monkeypatch.setenv("BRAINALIGN_MODEL_DIR", str(tmp_path / "models"))
    path = resolve_model("tiny-wav2vec2")
    mtime = (tmp_path / "models" / "tiny-wav2vec2-h32-l2-s0" / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-wav2vec2") == path                     # the second call reads the same folder
    assert (tmp_path / "models" / "tiny-wav2vec2-h32-l2-s0" / "model.safetensors").stat().st_mtime_ns == mtime
    ref = load_file(str(save_tiny_speech_model(tmp_path / "ref", "wav2vec2") / "model.safetensors"))
    got = load_file(f"{path}/model.safetensors")
    assert ref.keys() == got.keys() and all((ref[k] == got[k]).all() for k in ref)
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["tiny-wav2vec2-h32-l2-s0"]   # no temporary left
