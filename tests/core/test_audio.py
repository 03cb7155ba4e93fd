"""Audio I/O, resampling and the audio/word-timing check (core/timing/audio.py).

References: files written with scipy.io.wavfile directly, numpy's scaling formulas, the channel
mean, and analytic sines for the resampler.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from scipy.io import wavfile

from brainalign.core.timing.audio import check_audio_covers_words, read_wav, resample_audio, write_wav


def _sine(freq, rate, seconds, amp=0.5, phase=0.3):
    t = np.arange(int(round(seconds * rate))) / rate
    return amp * np.sin(2 * np.pi * freq * t + phase)


# --------------------------------------------------------------------------- read / write
def test_int16_round_trip_is_within_half_a_step(tmp_path):
    x = _sine(440, 16000, 0.5, amp=0.9)
    path = write_wav(tmp_path / "a" / "tone.wav", x, 16000)
    rate, raw = wavfile.read(path)
    assert rate == 16000 and raw.dtype == np.int16
    np.testing.assert_array_equal(raw, np.round(x * 32768).astype(np.int16))
    y, sr = read_wav(path)
    assert sr == 16000 and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, raw / 32768.0, rtol=0, atol=1e-7)
    assert np.abs(y - x).max() <= 2.0 ** -16 + 1e-9


def test_float32_round_trip_is_exact(tmp_path):
    x = _sine(1000, 22050, 0.2).astype(np.float32)
    path = write_wav(tmp_path / "f.wav", x, 22050, dtype="float32")
    y, sr = read_wav(path)
    assert sr == 22050
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("dtype, expected", [
    (np.int16, lambda d: d / 32768.0),
    (np.int32, lambda d: d / 2147483648.0),
    (np.uint8, lambda d: (d.astype(float) - 128) / 128.0),
    (np.float64, lambda d: d),
])
def test_sample_formats_are_scaled_to_full_scale_one(tmp_path, dtype, expected):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, size=500, endpoint=True).astype(dtype)
    else:
        data = rng.uniform(-1, 1, 500).astype(dtype)
    path = tmp_path / f"{np.dtype(dtype).name}.wav"
    wavfile.write(path, 8000, data)
    y, sr = read_wav(path)
    assert sr == 8000 and y.dtype == np.float32
    np.testing.assert_allclose(y, expected(data), rtol=1e-6, atol=1e-7)
    assert np.abs(y).max() <= 1.0


def test_stereo_is_mixed_down_to_the_channel_mean(tmp_path, caplog):
    rng = np.random.default_rng(1)
    data = rng.integers(-20000, 20000, size=(1000, 2)).astype(np.int16)
    path = tmp_path / "stereo.wav"
    wavfile.write(path, 16000, data)
    with caplog.at_level(logging.INFO, logger="brainalign.core.timing.audio"):
        y, _ = read_wav(path)
    np.testing.assert_allclose(y, data.astype(np.float64).mean(axis=1) / 32768.0, atol=1e-7)
    assert any(str(path) in r.getMessage() and "2 channels" in r.getMessage() for r in caplog.records)


def test_single_channel_2d_is_returned_as_mono(tmp_path):
    data = (np.arange(100, dtype=np.int16) * 100)[:, None]
    wavfile.write(tmp_path / "one.wav", 8000, data)
    y, _ = read_wav(tmp_path / "one.wav")
    assert y.shape == (100,)
    np.testing.assert_allclose(y, data[:, 0] / 32768.0)


def test_odd_shapes_and_bad_files_name_the_file(tmp_path, monkeypatch):
    bad = tmp_path / "not_audio.wav"
    bad.write_text("this is not a RIFF file")
    with pytest.raises(ValueError, match="not_audio.wav"):
        read_wav(bad)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        read_wav(tmp_path / "missing.wav")
    ok = write_wav(tmp_path / "cube.wav", np.zeros(10), 8000)
    monkeypatch.setattr(wavfile, "read", lambda p: (8000, np.zeros((4, 2, 2), np.int16)))
    with pytest.raises(ValueError, match=r"cube.wav.*\(4, 2, 2\)"):
        read_wav(ok)


def test_write_wav_checks_its_input(tmp_path, caplog):
    with pytest.raises(ValueError, match="mono"):
        write_wav(tmp_path / "x.wav", np.zeros((10, 2)), 8000)
    with pytest.raises(ValueError, match="non-finite"):
        write_wav(tmp_path / "x.wav", np.array([0.0, np.nan]), 8000)
    with pytest.raises(ValueError, match="dtype"):
        write_wav(tmp_path / "x.wav", np.zeros(4), 8000, dtype="int8")
    with caplog.at_level(logging.WARNING, logger="brainalign.core.timing.audio"):
        write_wav(tmp_path / "loud.wav", np.array([0.0, 1.5, -2.0, -1.0, 0.25]), 8000)
    assert "clipped" in caplog.text
    _, raw = wavfile.read(tmp_path / "loud.wav")
    np.testing.assert_array_equal(raw, [0, 32767, -32768, -32768, 8192])


# --------------------------------------------------------------------------- resampling
@pytest.mark.parametrize("src, dst", [(22050, 16000), (16000, 22050), (44100, 22050)])
def test_resampled_sine_matches_the_analytic_sine(src, dst):
    seconds, freq = 1.0, 440.0
    x = _sine(freq, src, seconds)
    y = resample_audio(x, src, dst)
    assert y.dtype == np.float32
    assert len(y) == int(np.ceil(len(x) * dst / src))
    expected = _sine(freq, dst, len(y) / dst)
    inner = slice(int(0.05 * dst), len(y) - int(0.05 * dst))  # away from the filter's edge effects
    assert np.abs(y[inner] - expected[inner]).max() < 2e-3


def test_resampling_removes_what_the_new_rate_cannot_carry():
    """A 7 kHz tone is above the 4 kHz Nyquist rate of 8 kHz audio: it is filtered out."""
    y = resample_audio(_sine(7000, 16000, 1.0), 16000, 8000)
    assert np.sqrt(np.mean(y[400:-400] ** 2)) < 0.01


def test_resample_equal_rates_and_bad_rates():
    x = np.arange(5, dtype=np.float64)
    y = resample_audio(x, 8000, 8000)
    np.testing.assert_array_equal(y, x.astype(np.float32))
    assert y is not x
    with pytest.raises(ValueError, match="to_rate"):
        resample_audio(x, 8000, 0)
    with pytest.raises(ValueError, match="from_rate"):
        resample_audio(x, 8000.5, 16000)


# --------------------------------------------------------------------------- coverage check
def test_check_audio_covers_words_names_story_and_file():
    words = pd.DataFrame({"word": ["a", "b", "end."], "onset": [1.0, 2.0, 3.0], "offset": [1.5, 2.5, 3.6]})
    check_audio_covers_words(3.6, words, "orchard", "stimuli/orchard.wav")
    check_audio_covers_words(3.3, words, "orchard", "stimuli/orchard.wav", tolerance_s=0.5)
    with pytest.raises(ValueError, match=r"story orchard.*stimuli/orchard.wav.*'end\.'.*3\.600"):
        check_audio_covers_words(3.0, words, "orchard", "stimuli/orchard.wav", tolerance_s=0.5)
    check_audio_covers_words(0.0, words.iloc[:0], "empty", "x.wav")
