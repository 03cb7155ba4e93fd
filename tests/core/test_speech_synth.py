"""Story audio synthesised with eSpeak NG (core/synthetic/speech.py) and its word timings.

The timings are checked against the waveform itself with numpy (sound inside every spoken word,
silence in the pauses between sentences, the sound after a pause starting right after the next
word's onset), not against the code's own earlier output.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from brainalign.core.synthetic import speech as SP
from brainalign.core.synthetic.speech import synthesize_story

TEXT = ("He paused — then spoke. It came from the gallery of the lighthouse, to be honest, "
        "in 1984. Was a storm coming? Nobody knew!")
LEAD = 1.0


@pytest.fixture(scope="module")
def story():
    return synthesize_story(TEXT, lead_silence_s=LEAD)


def _samples(st, a, b):
    sr = st.sample_rate
    return st.waveform[int(round(a * sr)):int(round(b * sr))]


def test_one_row_per_token_in_order(story):
    w = story.words
    assert list(w.columns) == ["word", "onset", "offset"]
    assert w["word"].tolist() == TEXT.split()
    on, off = w["onset"].to_numpy(), w["offset"].to_numpy()
    assert (off >= on).all()
    assert (np.diff(on) >= 0).all()
    assert (off[:-1] <= on[1:] + 1e-12).all()          # no overlap
    assert off.max() <= story.duration + 1e-9


def test_waveform_format(story):
    assert story.sample_rate == 22050
    assert story.waveform.dtype == np.float32 and story.waveform.ndim == 1
    assert np.abs(story.waveform).max() <= 1.0
    assert story.meta["voice"] == "en-us" and story.meta["words_per_minute"] == 160


def test_every_spoken_word_holds_sound(story):
    w = story.words
    spoken = w[w["word"].str.contains(r"\w", regex=True)]
    assert len(spoken) == len(w) - 1                    # only "—" is not spoken
    for row in spoken.itertuples():
        x = _samples(story, row.onset, row.offset)
        assert row.offset - row.onset > 0.05, row.word
        rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
        assert rms > 0.01, (row.word, rms)              # above -40 dB re full scale


def test_word_pairs_of_the_dictionary_get_their_own_times(story):
    """eSpeak's multi-word entries ("of the", "to be") would merge the pair into one event."""
    w = story.words
    for pair in (("of", "the"), ("to", "be"), ("from", "the"), ("Was", "a")):
        i = next(i for i in range(len(w) - 1) if (w["word"].iloc[i], w["word"].iloc[i + 1]) == pair)
        assert w["offset"].iloc[i + 1] - w["onset"].iloc[i + 1] > 0.05, pair
        assert w["onset"].iloc[i + 1] > w["onset"].iloc[i] + 0.05, pair


def test_pauses_after_sentences_are_silent(story):
    w = story.words
    ends = [i for i in range(len(w) - 1) if re.search(r"[.!?]$", w["word"].iloc[i])]
    assert len(ends) == 3
    for i in ends:
        gap = _samples(story, w["offset"].iloc[i], w["onset"].iloc[i + 1])
        assert len(gap) / story.sample_rate > 0.1, w["word"].iloc[i]
        assert np.abs(gap).max() <= 1e-3, w["word"].iloc[i]


def test_sound_resumes_just_after_the_onset_following_a_pause(story):
    """Independent of the event times: the first sample above -60 dB after a sentence pause
    lies at most 80 ms after the next word's onset, never before it."""
    w, x, sr = story.words, story.waveform, story.sample_rate
    for i in [i for i in range(len(w) - 1) if re.search(r"[.!?]$", w["word"].iloc[i])]:
        start = int(round(w["offset"].iloc[i] * sr))
        first_loud = start + int(np.flatnonzero(np.abs(x[start:]) > 1e-3)[0])
        onset = w["onset"].iloc[i + 1]
        assert onset <= first_loud / sr <= onset + 0.08, w["word"].iloc[i + 1]


def test_punctuation_token_gets_a_zero_length_interval_at_the_previous_offset(story):
    w = story.words.reset_index(drop=True)
    k = w.index[w["word"] == "—"][0]
    assert w.loc[k, "onset"] == w.loc[k, "offset"] == w.loc[k - 1, "offset"]
    # a leading punctuation token sits at the first spoken word's onset
    lead = synthesize_story("— Yes.", lead_silence_s=0.5, isolate=False).words
    assert lead["word"].tolist() == ["—", "Yes."]
    assert lead["onset"].iloc[0] == lead["offset"].iloc[0] == lead["onset"].iloc[1]


def test_lead_silence_shifts_the_times_and_the_synthesis_is_deterministic(story):
    """Isolated syntheses (the default) depend on the arguments only, whatever ran before."""
    synthesize_story("Something else first, to change eSpeak's state.", isolate=False)
    bare = synthesize_story(TEXT, lead_silence_s=0.0)
    lead = int(round(LEAD * story.sample_rate))
    assert np.all(story.waveform[:lead] == 0)
    np.testing.assert_array_equal(story.waveform[lead:], bare.waveform)
    np.testing.assert_allclose(story.words[["onset", "offset"]].to_numpy(),
                               bare.words[["onset", "offset"]].to_numpy() + lead / story.sample_rate,
                               atol=1e-12)
    assert story.words["onset"].iloc[0] >= LEAD


def test_max_words_truncates_before_synthesis():
    st = synthesize_story(TEXT, max_words=4, lead_silence_s=0.0, isolate=False)
    assert st.words["word"].tolist() == TEXT.split()[:4]
    assert st.duration < synthesize_story(TEXT, lead_silence_s=0.0, isolate=False).duration / 2


def test_rate_changes_the_duration():
    text = "The gulls had gone quiet over the water."
    slow = synthesize_story(text, words_per_minute=100, lead_silence_s=0, isolate=False)
    fast = synthesize_story(text, words_per_minute=300, lead_silence_s=0, isolate=False)
    assert slow.duration > 1.8 * fast.duration


@pytest.mark.parametrize("kwargs, match", [
    ({"voice": "no-such-voice"}, "no-such-voice"),
    ({"words_per_minute": 20}, "words_per_minute"),
    ({"pitch": 300}, "pitch"),
    ({"max_words": 0}, "max_words"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthesize_story("Hello there.", isolate=False, **kwargs)


def test_an_unknown_voice_is_named_from_the_child_process():
    with pytest.raises(ValueError, match="no voice 'no-such-voice'"):
        synthesize_story("Hello there.", voice="no-such-voice")


def test_empty_text_is_an_error():
    with pytest.raises(ValueError, match="non-empty"):
        synthesize_story("   ")


def test_simulate_node_uses_the_synthesis(monkeypatch):
    """The data_prep ``simulate`` node: synthesis timings and audio with ``audio`` on (default),
    the old :func:`time_words` timings and no audio with it off."""
    from brainalign.core.synthetic.study import story_texts, time_words
    from brainalign.pipelines.data_prep import nodes

    rng = np.random.default_rng(0)
    monkeypatch.setattr(nodes, "load_model", lambda name, device="cpu": (None, None))
    monkeypatch.setattr(nodes, "extract_word_features",
                        lambda words, tok, model, layers, **kw: {layers[0]: rng.standard_normal((len(words), 8))})
    synthetic = {"n_subjects": 1, "stories": ["orchard"], "max_words_per_story": 30, "tr": 2.0,
                 "volume_shape": [4, 4, 4], "model": "x", "semantic_layer": 1, "context_words": 5, "seed": 3}
    study = nodes.simulate(synthetic, {"trim_start": 1, "trim_end": 1})
    tokens = story_texts(["orchard"])["orchard"].split()[:30]
    w = study.words["orchard"]
    assert w["word"].tolist() == tokens
    expected = synthesize_story(" ".join(tokens), lead_silence_s=6.0).words
    np.testing.assert_allclose(w[["onset", "offset"]].to_numpy(), expected[["onset", "offset"]].to_numpy(),
                               atol=1e-9)
    wave, rate = study.audio["orchard"]
    assert rate == 22050 and len(wave) / rate >= w["offset"].max()
    assert study.ground_truth["sound_power_share"].max() > 0

    old = nodes.simulate({**synthetic, "audio": False}, {"trim_start": 1, "trim_end": 1})
    assert old.audio == {}
    ref = time_words(story_texts(["orchard"])["orchard"], np.random.default_rng(3), max_words=30)
    pd.testing.assert_frame_equal(old.words["orchard"], ref)
    assert (old.ground_truth["sound_power_share"] == 0).all()


def test_engine_reports_exact_sample_positions():
    """The WORD events' ``sample`` agrees with their millisecond ``audio_position``."""
    eng = SP._engine()
    wav, events = eng.synth("One two three. Four five.", "en-us", 160, None)
    words = [e for e in events if e[0] == SP.EVENT_WORD]
    assert len(words) == 5
    for _t, _pos, sample, ms in words:
        assert 0 <= sample <= len(wav)
        assert abs(sample * 1000.0 / eng.sample_rate - ms) <= 1.0
