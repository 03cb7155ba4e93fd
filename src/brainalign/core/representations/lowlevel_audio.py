"""Low-level acoustic features of story audio at arbitrary times: sound power and a spectral
envelope.

Windows: the value at time ``t`` (seconds from sample 0 of the waveform) uses the
``N = max(1, round(window_s * sample_rate))`` samples starting at sample
``round(t * sample_rate) - N // 2`` (centred on ``t``); the waveform is taken as zero outside
``[0, n_samples)``, so times before the audio or after its end read as silence.

Units: decibels relative to full scale (a sample value of 1.0), ``10 log10(power)``, clipped
below at ``floor_db`` (silence would be minus infinity).

* :func:`sound_power`: power = mean square of the window's samples, so a sine of amplitude A
  reads ``20 log10(A / sqrt(2))`` dB.
* :func:`spectral_envelope`: power per band of a Hann-windowed frame, ``n_bands`` bands with
  edges equally spaced on the mel scale (``2595 log10(1 + f / 700)``) from ``fmin`` to ``fmax``
  (each band ``[lo, hi)``). A band's power is its share of the frame's mean square:
  ``2 sum_{k in band} |X_k|^2 / (N sum_n w_n^2)`` with ``X = rfft(w * frame)`` (the one-sided
  periodogram with density scaling summed over the band times the bin width), so a sine of
  amplitude A well inside a band reads ``20 log10(A / sqrt(2))`` dB in that band.
"""
from __future__ import annotations

import numpy as np

DEFAULT_WINDOW_S = 0.05
DEFAULT_FLOOR_DB = -100.0
#: frames processed at once by :func:`spectral_envelope` (bounds memory)
_CHUNK = 2048


def _frame_starts(times, sample_rate: float, n: int) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"times must be 1-D (n_times,), got shape {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("times must be finite")
    return np.round(t * sample_rate).astype(np.int64) - n // 2


def _check(waveform, sample_rate, window_s):
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"waveform must be mono (n_samples,), got shape {x.shape}")
    if not sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    return x.astype(np.float64), max(1, int(round(window_s * sample_rate)))


def _to_db(power: np.ndarray, floor_db: float) -> np.ndarray:
    floor = 10.0 ** (floor_db / 10.0)
    return 10.0 * np.log10(np.maximum(power, floor))


def sound_power(waveform: np.ndarray, sample_rate: float, times, window_s: float = DEFAULT_WINDOW_S,
                floor_db: float = DEFAULT_FLOOR_DB) -> np.ndarray:
    """Sound power (dB re full scale) in a window centred on each time.

    Parameters
    ----------
    waveform : array of shape (n_samples,), mono, full scale 1.0.
    sample_rate : samples per second.
    times : array of shape (n_times,), seconds from sample 0.
    window_s : window length (s).
    floor_db : lower clip (dB).

    Returns
    -------
    float64 array of shape (n_times,): ``10 log10(mean(x[start:start + N] ** 2))`` over the
    zero-padded waveform (module docstring), at least ``floor_db``.
    """
    x, n = _check(waveform, sample_rate, window_s)
    start = _frame_starts(times, sample_rate, n)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    lo = np.clip(start, 0, len(x))
    hi = np.clip(start + n, 0, len(x))
    return _to_db((csum[hi] - csum[lo]) / n, floor_db)


def mel(f):
    """Hz to mel (``2595 log10(1 + f / 700)``)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    """Mel to Hz, the inverse of :func:`mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def band_edges(n_bands: int, fmin: float, fmax: float) -> np.ndarray:
    """``n_bands + 1`` band edges (Hz) equally spaced on the mel scale from fmin to fmax."""
    if n_bands < 1 or not 0 <= fmin < fmax:
        raise ValueError(f"need n_bands >= 1 and 0 <= fmin < fmax, got {n_bands}, {fmin}, {fmax}")
    return mel_to_hz(np.linspace(mel(fmin), mel(fmax), n_bands + 1))


def spectral_envelope(waveform: np.ndarray, sample_rate: float, times, n_bands: int = 8,
                      window_s: float = DEFAULT_WINDOW_S, fmin: float = 50.0, fmax: float | None = 8000.0,
                      floor_db: float = DEFAULT_FLOOR_DB) -> np.ndarray:
    """Log power (dB re full scale) in mel-spaced frequency bands around each time.

    Parameters
    ----------
    waveform : array of shape (n_samples,), mono, full scale 1.0.
    sample_rate : samples per second.
    times : array of shape (n_times,), seconds from sample 0.
    n_bands : number of bands.
    window_s : frame length (s); a Hann window (periodic, :func:`scipy.signal.get_window`).
    fmin, fmax : lowest and highest band edge (Hz); ``fmax`` is capped at the Nyquist rate
        (None: the Nyquist rate).
    floor_db : lower clip (dB).

    Returns
    -------
    float64 array of shape (n_times, n_bands), bands from low to high frequency (module
    docstring for the scaling).

    Raises
    ------
    ValueError when a band holds no FFT bin (a window too short for that many bands).
    """
    from scipy.signal import get_window

    x, n = _check(waveform, sample_rate, window_s)
    nyq = sample_rate / 2.0
    fmax = nyq if fmax is None else min(float(fmax), nyq)
    edges = band_edges(int(n_bands), float(fmin), fmax)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    band = np.searchsorted(edges, freqs, side="right") - 1  # bin k is in band b when edges[b] <= f < edges[b+1]
    band[(freqs < edges[0]) | (freqs >= edges[-1])] = -1
    counts = np.bincount(band[band >= 0], minlength=n_bands)
    if (counts == 0).any():
        raise ValueError(f"spectral_envelope: bands {np.flatnonzero(counts == 0).tolist()} of {n_bands} "
                         f"(edges {np.round(edges, 1).tolist()} Hz) hold no FFT bin of a {n}-sample "
                         f"window ({sample_rate / n:.1f} Hz apart); use a longer window_s or fewer bands")
    w = get_window("hann", n)
    scale = 2.0 / (n * np.sum(w * w))
    start = _frame_starts(times, sample_rate, n)
    pad_lo = int(max(0, -start.min())) if len(start) else 0
    pad_hi = int(max(0, start.max() + n - len(x))) if len(start) else 0
    xp = np.concatenate([np.zeros(pad_lo), x, np.zeros(pad_hi)])
    out = np.empty((len(start), n_bands))
    member = np.zeros((len(freqs), n_bands))
    member[np.flatnonzero(band >= 0), band[band >= 0]] = 1.0
    offs = np.arange(n)
    for c in range(0, len(start), _CHUNK):
        idx = start[c:c + _CHUNK, None] + pad_lo + offs[None, :]
        spec = np.abs(np.fft.rfft(xp[idx] * w, axis=1)) ** 2
        out[c:c + _CHUNK] = (spec @ member) * scale
    return _to_db(out, floor_db)
