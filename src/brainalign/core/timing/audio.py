"""Story audio: WAV files in and out, resampling, and a check that audio and word timings agree.

Conventions
-----------
* A waveform is a float32 array of shape (n_samples,): mono, full scale 1.0 (integer PCM is
  divided by 2**(bits - 1); unsigned 8-bit is centred on 128 first). Sample 0 is time 0 of the
  story's word clock wherever a reader pairs audio with word timings.
* Multi-channel files are mixed down to mono by averaging the channels (logged with the file
  name and the channel count).
* :func:`write_wav` writes 16-bit PCM by default (what every tool reads; a round trip changes
  a sample in [-1, 1 - 2**-15] by at most 2**-16), or 32-bit float with ``dtype="float32"``.
* Resampling is polyphase filtering (:func:`scipy.signal.resample_poly`) by the rational factor
  ``to_rate / from_rate`` reduced by their greatest common divisor; no torchaudio.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: seconds the last word may end after the audio (rounding of word tables, trailing release)
AUDIO_END_TOLERANCE = 0.5
WAV_DTYPES = ("int16", "float32")


def _to_float(data: np.ndarray, path) -> np.ndarray:
    kind, size = data.dtype.kind, data.dtype.itemsize
    if kind == "f":
        return data.astype(np.float32, copy=False)
    if kind == "u" and size == 1:
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if kind == "i":
        return (data.astype(np.float64) / float(2 ** (8 * size - 1))).astype(np.float32)
    raise ValueError(f"{path}: unsupported WAV sample type {data.dtype}; expected 8-bit unsigned, "
                     "16/24/32-bit integer or float PCM")


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as mono float32.

    Parameters
    ----------
    path : the ``.wav`` file.

    Returns
    -------
    waveform : float32 array of shape (n_samples,), full scale 1.0 (integers scaled: int16 by
        2**15, int32 and scipy's left-justified 24-bit by 2**31, uint8 as (x - 128) / 128; float
        data as stored). Channels are averaged.
    sample_rate : int, samples per second.

    Raises
    ------
    FileNotFoundError when the file is missing; ValueError naming the file when it is not a
    readable WAV file or its data are neither (n,) nor (n, channels).
    """
    from scipy.io import wavfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        rate, data = wavfile.read(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a readable WAV file ({exc})") from exc
    data = np.asarray(data)
    if data.ndim == 2:
        if data.shape[1] == 0:
            raise ValueError(f"{path}: the WAV file has no channels")
        wave = _to_float(data, path)
        if data.shape[1] > 1:
            log.info("%s: %d channels mixed down to mono (channel mean)", path, data.shape[1])
            wave = wave.astype(np.float64).mean(axis=1).astype(np.float32)
        else:
            wave = wave[:, 0]
    elif data.ndim == 1:
        wave = _to_float(data, path)
    else:
        raise ValueError(f"{path}: audio data of shape {data.shape}; expected (n_samples,) or "
                         "(n_samples, n_channels)")
    if int(rate) <= 0:
        raise ValueError(f"{path}: sample rate {rate} in the WAV header")
    return np.ascontiguousarray(wave, dtype=np.float32), int(rate)


def write_wav(path: str | Path, waveform: np.ndarray, sample_rate: int, dtype: str = "int16") -> Path:
    """Write a mono waveform as a WAV file (parent folders are created).

    Parameters
    ----------
    path : the ``.wav`` file to write.
    waveform : float array of shape (n_samples,), full scale 1.0.
    sample_rate : samples per second (positive integer).
    dtype : ``int16`` (default: 16-bit PCM, ``round(x * 32768)`` clipped to [-32768, 32767],
        the inverse of :func:`read_wav`'s scaling; a warning when any value was outside
        [-1, 1]) or ``float32`` (stored as is).

    Returns
    -------
    The path written.
    """
    from scipy.io import wavfile

    path = Path(path)
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"{path}: write_wav takes a mono waveform of shape (n_samples,), got {x.shape}")
    if dtype not in WAV_DTYPES:
        raise ValueError(f"{path}: dtype must be one of {WAV_DTYPES}, got {dtype!r}")
    if int(sample_rate) != sample_rate or int(sample_rate) <= 0:
        raise ValueError(f"{path}: sample_rate must be a positive integer, got {sample_rate}")
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: the waveform has non-finite samples")
    if dtype == "int16":
        over = np.abs(x) > 1.0
        if over.any():
            log.warning("%s: %d samples outside [-1, 1] clipped", path, int(over.sum()))
        data = np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    else:
        data = x.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, int(sample_rate), data)
    return path


def resample_audio(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample audio by the rational factor ``to_rate / from_rate`` (polyphase FIR filter of
    :func:`scipy.signal.resample_poly`, up = to_rate / g, down = from_rate / g, g their gcd).

    Parameters
    ----------
    waveform : array of shape (n_samples,) or (n_samples, n_channels).
    from_rate, to_rate : positive integer sample rates (Hz).

    Returns
    -------
    float32 array of shape (ceil(n_samples * to_rate / from_rate),) (or with the channels);
    a copy when the rates are equal.
    """
    for name, r in (("from_rate", from_rate), ("to_rate", to_rate)):
        if int(r) != r or int(r) <= 0:
            raise ValueError(f"resample_audio: {name} must be a positive integer, got {r}")
    from_rate, to_rate = int(from_rate), int(to_rate)
    x = np.asarray(waveform)
    if x.ndim not in (1, 2):
        raise ValueError(f"resample_audio: waveform of shape {x.shape}; expected (n,) or (n, channels)")
    if from_rate == to_rate:
        return x.astype(np.float32, copy=True)
    from scipy.signal import resample_poly

    g = math.gcd(from_rate, to_rate)
    return resample_poly(x.astype(np.float64), to_rate // g, from_rate // g, axis=0).astype(np.float32)


def check_audio_covers_words(duration_s: float, words, story: str, source: str,
                             tolerance_s: float = AUDIO_END_TOLERANCE) -> None:
    """Raise when the audio ends before the story's last word does.

    Parameters
    ----------
    duration_s : length of the audio (s), on the clock of the word timings.
    words : DataFrame with word and offset columns (seconds).
    story : story name (for the message); source : the audio file (for the message).
    tolerance_s : how far (s) the last offset may lie beyond the end of the audio.

    Raises
    ------
    ValueError naming the story and the file.
    """
    if len(words) == 0:
        return
    offsets = np.asarray(words["offset"], dtype=float)
    k = int(np.nanargmax(offsets))
    if offsets[k] > float(duration_s) + float(tolerance_s):
        word = words["word"].iloc[k] if "word" in getattr(words, "columns", ()) else "?"
        raise ValueError(
            f"story {story}: the audio {source} lasts {float(duration_s):.3f} s, but its last word "
            f"{word!r} ends at {offsets[k]:.3f} s (more than {tolerance_s:g} s later); the audio is "
            "truncated, belongs to another story, or the word timings are on another clock")


def audio_on_grid_clock(waveform: np.ndarray, from_rate: int, to_rate: int, start_s: float = 0.0) -> np.ndarray:
    """A story's audio resampled to ``to_rate`` and placed on the clock of its words and TR grid.

    Parameters
    ----------
    waveform : float array (n_samples,), mono.
    from_rate, to_rate : sample rates (Hz).
    start_s : where the audio's first sample sits on the TR-grid clock (s); positive: that much
        silence is prepended, negative: that much audio is dropped.

    Returns
    -------
    float32 array (n_out,): sample k at time k / to_rate on the TR-grid clock.
    """
    x = resample_audio(waveform, int(from_rate), int(to_rate))
    shift = int(round(float(start_s) * to_rate))
    if shift > 0:
        x = np.concatenate([np.zeros(shift, np.float32), x])
    elif shift < 0:
        x = x[-shift:]
    return x.astype(np.float32, copy=False)
