"""A simulated story-listening fMRI study with a planted ground truth (the embedded default).

Stories: texts written for this project (``brainalign/data/stories``), given word timings from
word length and punctuation (:func:`time_words`) or read aloud by eSpeak NG with exact word
timings (the ``simulate`` node's default, ``synthetic.audio``). Every voxel of a shared template brain responds to

* a semantic signal: a fixed random projection of one layer of a language model's contextual
  word features (Lanczos-downsampled to TRs, convolved with the canonical HRF), and
* low-level signals: word rate and mean word length (same path to TRs), and, when the study
  has audio (``audio``: story -> (waveform, sample_rate), sample 0 at time 0 of the word clock,
  e.g. from :func:`brainalign.core.synthetic.speech.synthesize_story`), the sound power: the
  log power (dB re full scale, floored at -60 dB so that pauses and stop closures do not
  dominate) of the audio in 50 ms windows every 50 ms
  (:func:`brainalign.core.representations.lowlevel_audio.sound_power`), Lanczos-downsampled to
  the TRs (scaled by 50 ms / TR, so a TR's value is about the mean dB around it) and convolved
  with the canonical HRF,

mixed with a per-voxel semantic share; the low-level part of a voxel is a non-negative mix
(weights |N(0, 1)|) of the z-scored low-level signals, so the sound power weighs most where the
semantic share is low (the A1-like ROI). ``sound_power_share`` in the ground truth is
``(1 - semantic_share) w_sound**2 / sum_j w_j**2`` over the low-level weights ``w``: a share of
squared weights of unit-variance signals, not of variance (word rate and sound power
correlate); 0 without audio and for pure-noise voxels.

Noise is added at a per-voxel signal-to-noise ratio (variance ratio signal / noise; the signal
is scaled to variance ``snr`` over the kept TRs, the noise has unit marginal variance). A share of
voxels (and the whole "WM" region) is pure noise. Voxel weights and SNRs are shared by subjects
(inter-subject correlation is meaningful); noise and drift are drawn per subject, story and voxel.

Noise model (as real BOLD, DESIGN.md "Simulated data carry autocorrelated noise and drift"):

* noise: a stationary Gaussian AR(1) process per subject, story and voxel, with coefficient
  ``noise_ar`` = phi per TR (:func:`ar1_noise`): ``e_0 ~ N(0, 1)`` (the stationary
  distribution), ``e_t = phi e_{t-1} + sqrt(1 - phi**2) u_t``, ``u_t ~ N(0, 1)``; so every sample
  has variance 1 and lag-k autocorrelation ``phi**k``. ``noise_ar = 0`` is white noise, drawn
  exactly as before AR noise existed (the same innovations ``u`` are filtered for any phi).
* drift, added to the response after ``expected_r`` is computed (detrending is there to remove
  it, and a perfect model does not predict it):

  - a linear trend per run, ``linspace(-1, 1) * N(0, 0.5**2)`` per voxel (noise-sd units);
  - slow drift (:func:`slow_drift`): ``DRIFT_COMPONENTS`` cosines per run and voxel with random
    phase, Gaussian amplitude and period log-uniform in ``drift_periods`` (default 128-1024 s,
    i.e. below SPM's 128 s high-pass), scaled so that its marginal sd is ``drift_sd`` (noise-sd
    units; 0: none).

  What detrending removes (``core.brain.preprocess``, per story after trimming; shares of the
  drift's variance over the kept TRs, expected over draws, default periods): ``study.detrend:
  linear`` (the conf/base default) removes the mean and the linear trend exactly, and of the slow
  drift only what a straight line fits: ~87 % on 90 s runs (conf/test), ~35-38 % on the 300-330 s
  runs of the default study (~55 % of linear trend + slow drift with ``drift_sd = 0.5``).
  ``highpass`` (DCT drifts slower than ``highpass_cutoff`` = 128 s, as SPM) removes > 99 % of the
  linear trend and ~96-98 % of the slow drift on those runs (~99 % and ~87 % on 90 s runs, whose
  DCT basis has one cosine). Cosines slower than the run leave a curved residue that neither
  removes completely.

The slow drift is drawn from its own generator (spawned from the study's), so voxel parameters,
noise innovations and linear trends are the same draws whatever ``noise_ar`` and ``drift_sd``
are; with ``noise_ar = 0`` and ``drift_sd = 0`` (the function's defaults) the study is the white
noise + linear drift study of earlier versions, array for array. The default study
(conf/base ``synthetic:``) uses ``noise_ar = 0.5`` and ``drift_sd = 0.5``.

Planted regions (optional; each takes a part of the pure-noise "WM" slab, ordered along the first
axis, and draws from a generator of its own spawned from the study's, so that every other voxel's
signal, noise, drift and ground truth are bit-identical to the study without it):

* ``PROP`` (``property_values``), the upper half of WM: responds to a word property alone (the
  property-removal study's positive control); ground truth column ``property_share``.
* ``NONLIN`` (``nonlinear_features``), the quarter of WM below PROP (WM keeps its lowest quarter
  as pure-noise controls; 32 of the 129 WM voxels in the default 12 x 12 x 10 volume): responds
  to a signal that is *not* a linear map of the model's features. Per word, ``h``: 4 random
  directions within the top 8 principal components of the word features of another layer
  (``nonlinear_layer``, z-scored per dimension), z-scored; then ``h**2 - 1`` less its
  least-squares fit on those 8 components (:func:`nonlinear_word_signal`): a quadratic, smooth
  function of the features that no linear function of the components explains. A random
  linear combination per voxel, Lanczos-downsampled and HRF-convolved like the other signals, at
  an SNR log-uniform in ``nonlinear_snr``. The brain-tuning study's positive control: on the
  default study's noise-free NONLIN signal, a cross-validated ridge from MiniLM's layer-4 or
  layer-6 word features (FIR delays 1-4 or the HRF) reaches r 0.25-0.41 (mean over voxels; a
  linear signal planted from layer 4: 0.58-0.97), a small MLP on the layer-2 features 0.48
  (docs/methods.md, "Planted regions"). Ground truth column ``nonlinear_share``.

The ground truth ``expected_r`` of a voxel is the correlation of its noise-free signal with its
simulated response (signal + noise, without drift) over the kept TRs: what a perfect model would
score on perfectly detrended data (0 for pure-noise voxels).

Written to disk in real formats (:func:`write_study`): per subject and story a 4D NIfTI BOLD
image, a brain mask and an ROI label image (BIDS-derivative names), per story a word-timing TSV
(BIDS events columns) and the audio as a 16-bit WAV (when the study has audio), a labels TSV and
``ground_truth.parquet``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from scipy import signal as sp_signal

from ..representations.lowlevel_audio import sound_power
from ..timing.audio import check_audio_covers_words, write_wav
from ..timing.resample import hrf_convolve, lanczos_downsample
from ..timing.stimuli import word_times

ROI_SPECS = {
    # name: (semantic share range, SNR range, share of pure-noise voxels)
    "pSTS": ((0.8, 1.0), (0.3, 2.0), 0.1),
    "aTL": ((0.7, 1.0), (0.1, 1.0), 0.1),
    "IFG": ((0.6, 1.0), (0.05, 0.5), 0.1),
    "AG": ((0.8, 1.0), (0.02, 0.3), 0.1),
    "A1": ((0.1, 0.4), (0.3, 2.0), 0.1),
    "WM": ((0.0, 0.0), (0.0, 0.0), 1.0),
}


# slow drift: number of random-phase cosines per run and voxel
DRIFT_COMPONENTS = 3


def check_noise_parameters(noise_ar: float, drift_sd: float, drift_periods) -> tuple[float, float, tuple[float, float]]:
    """Validated ``(noise_ar, drift_sd, (min_period, max_period))``; a ValueError names the bad one."""
    try:
        phi = float(noise_ar)
    except (TypeError, ValueError):
        raise ValueError(f"synthetic noise_ar must be a number in [0, 1), got {noise_ar!r}") from None
    if not (np.isfinite(phi) and 0.0 <= phi < 1.0):
        raise ValueError(f"synthetic noise_ar (AR(1) coefficient of the noise, per TR) must be in [0, 1), "
                         f"got {noise_ar!r}")
    try:
        sd = float(drift_sd)
    except (TypeError, ValueError):
        raise ValueError(f"synthetic drift_sd must be a number >= 0, got {drift_sd!r}") from None
    if not (np.isfinite(sd) and sd >= 0.0):
        raise ValueError(f"synthetic drift_sd (sd of the slow drift, noise-sd units) must be >= 0, got {drift_sd!r}")
    try:
        lo, hi = (float(v) for v in drift_periods)
    except (TypeError, ValueError):
        raise ValueError("synthetic drift_periods must be two periods [min, max] in seconds, "
                         f"got {drift_periods!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 < lo <= hi):
        raise ValueError("synthetic drift_periods must be [min, max] seconds with 0 < min <= max, "
                         f"got {drift_periods!r}")
    return phi, sd, (lo, hi)


def ar1_noise(innovations: np.ndarray, phi: float) -> np.ndarray:
    """Stationary AR(1) noise with unit marginal variance from standard-normal ``innovations``
    (n_trs, ...) along axis 0: ``e_0 = u_0``, ``e_t = phi e_{t-1} + sqrt(1 - phi**2) u_t``.
    ``phi = 0`` returns the innovations themselves."""
    u = np.asarray(innovations, dtype=np.float64)
    if phi == 0.0 or u.shape[0] == 0:
        return u
    c = np.sqrt(1.0 - phi ** 2)
    # y_0 = c u_0 + zi must equal u_0 (a draw from the stationary distribution)
    zi = ((1.0 - c) * u[0])[None]
    out, _ = sp_signal.lfilter([c], [1.0, -phi], u, axis=0, zi=zi)
    return out


def slow_drift(rng: np.random.Generator, n_trs: int, tr: float, n_vox: int, sd: float,
               periods: tuple[float, float] = (128.0, 1024.0),
               n_components: int = DRIFT_COMPONENTS) -> np.ndarray:
    """Slow drift of one run, (n_trs, n_vox): a sum of ``n_components`` cosines per voxel,
    ``a cos(2 pi t / P + theta)`` at ``t = tr * (0..n_trs-1)``, with ``P`` log-uniform in
    ``periods`` (s), ``theta`` uniform in [0, 2 pi) and ``a ~ N(0, 2 sd**2 / n_components)``, so
    that each time point has variance ``sd**2`` (over draws). All power is at frequencies
    ``<= 1 / periods[0]``."""
    lo, hi = periods
    shape = (n_components, n_vox)
    period = np.exp(rng.uniform(np.log(lo), np.log(hi), shape))
    phase = rng.uniform(0.0, 2 * np.pi, shape)
    amp = rng.standard_normal(shape) * sd * np.sqrt(2.0 / n_components)
    t = tr * np.arange(n_trs)[:, None, None]
    return (amp * np.cos(2 * np.pi * t / period + phase)).sum(1)


#: the NONLIN region (:func:`nonlinear_word_signal`): its word signals are the squares of
#: NONLINEAR_COMPONENTS random directions within the top NONLINEAR_PCS principal components of the
#: layer's word features, less their linear fit on those components
NONLINEAR_COMPONENTS = 4
NONLINEAR_PCS = 8
NONLINEARITY = "square"


def check_nonlinear_inputs(features: dict, words: dict, snr) -> None:
    """A ValueError naming the story (or ``nonlinear_snr``) unless ``features`` has, for every
    story of ``words``, a finite 2-D array with one row per word and the same columns for all."""
    stories = list(words)
    missing = [s for s in stories if s not in features]
    if missing:
        raise ValueError(f"simulate_study: nonlinear_features has no features for stories {missing} "
                         f"(it has {sorted(features)})")
    dims = {}
    for s in stories:
        f = np.asarray(features[s])
        if f.ndim != 2 or f.shape[0] != len(words[s]):
            raise ValueError(f"simulate_study: story {s}: nonlinear_features must be (n_words, dim) with one row per "
                             f"word ({len(words[s])}), got shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"simulate_study: story {s}: nonlinear_features has non-finite values")
        dims[s] = f.shape[1]
    if len(set(dims.values())) > 1:
        raise ValueError(f"simulate_study: nonlinear_features have different dimensions per story: {dims}")
    try:
        lo, hi = (float(v) for v in snr)
    except (TypeError, ValueError):
        raise ValueError(f"simulate_study: nonlinear_snr must be [min, max], got {snr!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 < lo <= hi):
        raise ValueError(f"simulate_study: nonlinear_snr must be [min, max] with 0 < min <= max, got {snr!r}")


def nonlinear_word_signal(features: dict, rng: np.random.Generator, n_components: int = NONLINEAR_COMPONENTS,
                          n_pcs: int = NONLINEAR_PCS) -> dict:
    """story -> (n_words, n_components): the NONLIN region's word-level signals, a quadratic
    function of the word features that no linear function of their top principal components
    explains.

    ``F``: the features of all stories' words, each dimension z-scored over them (a constant one
    stays 0), ``F = U S V'`` its SVD and ``U_m``, ``V_m`` the top ``m = min(n_pcs, rank F)``
    components (``U_m``: the words' unit-variance component scores, up to a factor).

    1. ``h = U_m V_m' W`` with ``W ~ N(0, 1)`` of shape (dim, n_components) (the only draw of
       ``rng``): random directions within the top components (``V_m' W`` is a standard-normal
       (m, n_components) matrix; ``U_m V_m'`` does not depend on the signs the SVD gives its
       components), each column z-scored over the words;
    2. ``g = h**2 - 1`` elementwise (mean 0 over the words);
    3. ``g - U_m U_m' g``: less its least-squares fit on ``[1, U_m]`` (the columns of ``U_m``
       are orthonormal and have mean 0), so over the study's words ``g`` is uncorrelated with
       every linear function of those components, even where their scores are skewed.

    Every step is a polynomial in ``F`` of degree at most 2, so the result is a smooth
    (quadratic) function of the features; few components (default 4 in the top 8) keep it
    learnable from a few hundred TRs.
    """
    stories = list(features)
    f = np.concatenate([np.asarray(features[s], dtype=np.float64) for s in stories])
    sd = f.std(0)
    f = (f - f.mean(0)) / np.where(sd > 0, sd, 1.0)
    u, sv, vt = np.linalg.svd(f, full_matrices=False)
    rank = int((sv > sv[0] * 1e-8).sum()) if sv.size and sv[0] > 0 else 0
    if rank == 0:
        raise ValueError("simulate_study: nonlinear_features are constant over the words")
    m = min(int(n_pcs), rank)
    u, vt = u[:, :m], vt[:m]
    h = u @ (vt @ rng.standard_normal((f.shape[1], n_components)))
    h_sd = h.std(0)
    if not (h_sd > 0).all():
        raise ValueError("simulate_study: a NONLIN direction is constant over the words")
    g = ((h - h.mean(0)) / h_sd) ** 2 - 1.0
    g = g - u @ (u.T @ g)
    bounds = np.cumsum([0] + [len(features[s]) for s in stories])
    return {s: g[bounds[i]:bounds[i + 1]] for i, s in enumerate(stories)}


def story_texts(names: list[str] | None = None) -> dict[str, str]:
    """The packaged story texts, name -> text."""
    root = resources.files("brainalign") / "data" / "stories"
    avail = sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".txt"))
    names = avail if names is None else names
    missing = [n for n in names if n not in avail]
    if missing:
        raise ValueError(f"unknown stories {missing}; packaged stories are {avail}")
    return {n: (root / f"{n}.txt").read_text(encoding="utf-8") for n in names}


def time_words(text: str, rng: np.random.Generator, start: float = 6.0,
               rate: float = 0.055, base: float = 0.13, max_words: int | None = None) -> pd.DataFrame:
    """Word timings for a text read aloud: duration ``base + rate * letters`` (+-15 %), pauses of
    0.15 s after commas and 0.45 s after sentence ends.

    Returns
    -------
    DataFrame with columns word, onset, offset.
    """
    words = text.split()[:max_words] if max_words else text.split()
    t = start
    rows = []
    for w in words:
        letters = len(re.sub(r"[^A-Za-z]", "", w)) or 1
        dur = (base + rate * letters) * rng.uniform(0.85, 1.15)
        rows.append((w, t, t + dur))
        t += dur
        if re.search(r"[.!?][\"')]*$", w):
            t += 0.45
        elif re.search(r"[,;:][\"')]*$", w):
            t += 0.15
    return pd.DataFrame(rows, columns=["word", "onset", "offset"])


def _zscore(x, axis=0):
    sd = x.std(axis, keepdims=True)
    sd[sd == 0] = 1
    return (x - x.mean(axis, keepdims=True)) / sd


def ellipsoid_rois(shape: tuple[int, int, int], roi_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A brain mask (ellipsoid) and an ROI label image (1..n_rois) splitting it into slabs
    along the first axis, interleaved across the second so every ROI spans both halves."""
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radius = np.array(shape) / 2
    dist = sum(((grid[a] - centre[a]) / radius[a]) ** 2 for a in range(3))
    mask = dist <= 1.0
    labels = np.zeros(shape, dtype=np.int16)
    n = len(roi_names)
    order = np.argsort(grid[0][mask] + 1e-3 * grid[1][mask], kind="stable")
    lab = np.empty(order.size, dtype=np.int16)
    lab[order] = 1 + (np.arange(order.size) * n // order.size)
    labels[mask] = lab
    return mask.astype(np.uint8), labels


@dataclass
class SimulatedStudy:
    """Arrays of a simulated study (see module docstring).

    bold : dict (subject, story) -> float32 array of shape (*volume_shape, n_trs_total)
    mask : uint8 array of shape volume_shape; labels : int16, same shape (0 = outside)
    roi_names : ROI name of label k at position k - 1
    words : dict story -> DataFrame(word, onset, offset), seconds from the first volume
    ground_truth : DataFrame with subject, target, roi, expected_r, snr, semantic_share,
        sound_power_share, is_noise (and property_share, nonlinear_share when PROP, NONLIN are
        planted)
    audio : dict story -> (float32 waveform (n_samples,), sample_rate), sample 0 at the first
        volume; empty when the study has no audio
    """

    bold: dict
    mask: np.ndarray
    labels: np.ndarray
    roi_names: list[str]
    words: dict
    ground_truth: pd.DataFrame
    tr: float
    affine: np.ndarray
    meta: dict = field(default_factory=dict)
    audio: dict = field(default_factory=dict)


def target_ids(mask: np.ndarray) -> list[str]:
    """Voxel target ids ``v<i>_<j>_<k>`` in C order of the in-mask voxels."""
    return [f"v{i}_{j}_{k}" for i, j, k in zip(*np.nonzero(mask))]


def simulate_study(word_features: dict[str, np.ndarray], words: dict[str, pd.DataFrame], *,
                   n_subjects: int = 3, tr: float = 2.0, volume_shape=(12, 12, 10),
                   tail_seconds: float = 20.0, trim_start: int = 0, trim_end: int = 0,
                   n_components: int = 16, seed: int = 0, audio: dict | None = None,
                   sound_window_s: float = 0.05, sound_floor_db: float = -60.0,
                   noise_ar: float = 0.0, drift_sd: float = 0.0,
                   drift_periods: tuple[float, float] = (128.0, 1024.0),
                   property_values: dict | None = None, property_name: str = "property",
                   property_snr: tuple[float, float] = (0.3, 1.5),
                   nonlinear_features: dict | None = None, nonlinear_layer: int | str | None = None,
                   nonlinear_snr: tuple[float, float] = (0.5, 2.0)) -> SimulatedStudy:
    """Simulate BOLD for every subject and story.

    Parameters
    ----------
    word_features : story -> array of shape (n_words, dim), the semantic layer's word features.
    words : story -> DataFrame(word, onset, offset) from :func:`time_words`.
    tail_seconds : scan time after the last word.
    trim_start, trim_end : TRs that data_prep will trim; ``expected_r`` is computed on the rest.
    n_components : dimension of the random semantic projection.
    audio : story -> (waveform float (n_samples,), sample_rate), sample 0 at time 0 of the word
        clock, for every story or None. Adds the sound-power low-level signal (module docstring);
        without it the simulation draws exactly what it drew before audio existed.
    sound_window_s : window and step (s) of the sound power before downsampling to TRs.
    sound_floor_db : lower clip of the sound power (dB re full scale).
    noise_ar : AR(1) coefficient of the noise per TR, in [0, 1); 0 (default) is white noise. The
        noise has unit marginal variance whatever the coefficient (module docstring).
    drift_sd : marginal sd of the slow drift (noise-sd units, >= 0); 0 (default): only the
        linear trend.
    drift_periods : (min, max) period in seconds of the slow-drift cosines.
    property_values : story -> float array (n_words,), a planted linguistic property of each word
        (e.g. its position in the sentence), or None (default: nothing planted, the study is drawn
        exactly as without it). The upper half of the "WM" slab becomes the ROI ``PROP``: its
        voxels respond only to the property (z-scored over words, Lanczos-downsampled, HRF-
        convolved; one time course, a random sign per voxel) at an SNR log-uniform in
        ``property_snr``. Its draws come from a generator of their own, so every other voxel,
        noise and drift is the same as without it; ground truth column ``property_share``
        (1 in PROP, else 0) and ``meta['property']`` name it. The removal study's positive
        control: removing the property from a model's features must lower alignment in PROP
        and not elsewhere (docs/methods.md, "Property removal").
    nonlinear_features : story -> array (n_words, dim'), the word features of another layer of
        the model (or None, the default: nothing planted, the study is drawn exactly as without
        it). The voxels of the second quarter of the "WM" slab (the upper half of the half that
        PROP leaves, whether PROP is planted or not) become the ROI ``NONLIN``: they respond to
        a random mix (per voxel) of the :func:`nonlinear_word_signal` of these features (squares
        of random directions in their top principal components, less their linear fit on those
        components), Lanczos-downsampled and HRF-convolved, at an SNR log-uniform in
        ``nonlinear_snr``. Draws from a generator of its own (child 2 of the study's seed
        sequence: the drift's is child 0, PROP's child 1), so every other voxel, noise and
        drift is the same as without it; ground truth column ``nonlinear_share`` (1 in NONLIN,
        else 0), ``meta['nonlinear']`` (layer, nonlinearity, components, SNR range). The
        brain-tuning study's positive control: a linear readout of the untuned model's features
        captures little of it (module docstring; docs/methods.md, "Planted regions").
    nonlinear_layer : the layer that ``nonlinear_features`` come from (recorded in ``meta``).
    nonlinear_snr : (min, max) SNR of the NONLIN voxels (log-uniform).

    Returns
    -------
    SimulatedStudy; ``bold[(subject, story)]`` float32 (*volume_shape, n_trs) with
    ``n_trs = ceil((last word offset + tail_seconds) / tr)``.
    """
    noise_ar, drift_sd, drift_periods = check_noise_parameters(noise_ar, drift_sd, drift_periods)
    if nonlinear_features is not None:
        check_nonlinear_inputs(nonlinear_features, words, nonlinear_snr)
    rng = np.random.default_rng(seed)
    # the slow drift has its own stream, so the other draws do not depend on drift_sd
    drift_rng = rng.spawn(1)[0]
    roi_names = list(ROI_SPECS)
    mask, labels = ellipsoid_rois(tuple(volume_shape), roi_names)
    vox = np.nonzero(mask)
    roi_of_vox = labels[vox] - 1
    n_vox = len(roi_of_vox)
    stories = list(words)
    audio = dict(audio or {})
    if audio:
        missing = [s for s in stories if s not in audio]
        if missing:
            raise ValueError(f"simulate_study: audio is given for {sorted(audio)} but not for stories {missing}; "
                             "give it for every story or for none")
        for s in stories:
            wave, rate = audio[s]
            check_audio_covers_words(len(wave) / float(rate), words[s], s, "simulated audio")
    dim = next(iter(word_features.values())).shape[1]
    projection = rng.standard_normal((dim, n_components)) / np.sqrt(dim)

    # stimulus signals on each story's TR grid
    sem, low, n_trs = {}, {}, {}
    for story in stories:
        w = words[story]
        n = int(np.ceil((w["offset"].max() + tail_seconds) / tr))
        n_trs[story] = n
        times = tr * np.arange(n)
        wt = word_times(w)
        letters = w["word"].str.replace(r"[^A-Za-z]", "", regex=True).str.len().to_numpy(float)
        sem[story] = hrf_convolve(lanczos_downsample(word_features[story] @ projection, wt, times), tr)
        low[story] = hrf_convolve(lanczos_downsample(np.c_[np.ones(len(w)), letters], wt, times), tr)
        if audio:
            wave, rate = audio[story]
            fine = np.arange(0.0, n * tr, sound_window_s)
            power = sound_power(wave, rate, fine, window_s=sound_window_s, floor_db=sound_floor_db)
            snd = lanczos_downsample(power, fine, times) * np.float32(sound_window_s / tr)
            low[story] = np.c_[low[story], hrf_convolve(snd, tr)]
    keep = {s: slice(trim_start, n_trs[s] - trim_end) for s in stories}
    # z-score each signal over all kept TRs of all stories together
    for sig in (sem, low):
        allk = np.concatenate([sig[s][keep[s]] for s in stories])
        mu, sd = allk.mean(0), allk.std(0)
        for s in stories:
            sig[s] = (sig[s] - mu) / sd

    # per-voxel parameters (shared by subjects)
    w_sem = rng.standard_normal((n_components, n_vox))
    w_low = np.abs(rng.standard_normal((2, n_vox)))
    if audio:  # drawn only with audio, so a study without audio keeps its old draws
        w_low = np.vstack([w_low, np.abs(rng.standard_normal((1, n_vox)))])
    prop_idx = np.zeros(0, dtype=np.int64)
    draw_roi = roi_of_vox   # voxel parameters are drawn by the original slabs (same draws with PROP)
    if property_values is not None:   # the upper half of the WM slab becomes PROP (docstring)
        missing = [s for s in stories if s not in property_values]
        if missing:
            raise ValueError(f"simulate_study: property_values has no values for stories {missing}")
        for s in stories:
            if len(property_values[s]) != len(words[s]) or not np.isfinite(property_values[s]).all():
                raise ValueError(f"simulate_study: story {s}: property_values needs one finite value per word "
                                 f"({len(words[s])}), got {len(property_values[s])}")
        wm = np.flatnonzero(roi_of_vox == roi_names.index("WM"))
        prop_idx = wm[np.argsort(vox[0][wm] + 1e-3 * vox[1][wm], kind="stable")][wm.size // 2:]
        roi_names = [*roi_names, "PROP"]
        roi_of_vox = roi_of_vox.copy()
        roi_of_vox[prop_idx] = len(roi_names) - 1
        labels = labels.copy()
        labels[tuple(v[prop_idx] for v in vox)] = len(roi_names)
    nl_idx = np.zeros(0, dtype=np.int64)
    if nonlinear_features is not None:   # the second quarter of the WM slab becomes NONLIN (docstring)
        wm = np.flatnonzero(draw_roi == roi_names.index("WM"))
        half = wm.size // 2   # PROP is the upper half, [half:]
        nl_idx = wm[np.argsort(vox[0][wm] + 1e-3 * vox[1][wm], kind="stable")][half // 2:half]
        if nl_idx.size == 0:
            raise ValueError(f"simulate_study: the WM slab of a {tuple(volume_shape)} volume has {wm.size} voxels, "
                             "too few for a NONLIN region (its second quarter); use a larger volume_shape")
        roi_names = [*roi_names, "NONLIN"]
        roi_of_vox = roi_of_vox.copy()
        roi_of_vox[nl_idx] = len(roi_names) - 1
        labels = labels.copy()
        labels[tuple(v[nl_idx] for v in vox)] = len(roi_names)
    share = np.empty(n_vox)
    snr = np.empty(n_vox)
    is_noise = np.zeros(n_vox, bool)
    for k, name in enumerate(ROI_SPECS):
        (s_lo, s_hi), (n_lo, n_hi), p_noise = ROI_SPECS[name]
        idx = np.flatnonzero(draw_roi == k)
        share[idx] = rng.uniform(s_lo, s_hi, idx.size)
        snr[idx] = np.exp(rng.uniform(np.log(max(n_lo, 1e-9)), np.log(max(n_hi, 1e-9)), idx.size))
        is_noise[idx] = rng.random(idx.size) < p_noise
    snr[is_noise] = 0.0

    # noise-free signal per voxel, unit variance over kept TRs
    sig_sem = {s: sem[s] @ w_sem for s in stories}
    sig_low = {s: low[s] @ w_low for s in stories}
    for d in (sig_sem, sig_low):
        allk = np.concatenate([d[s][keep[s]] for s in stories])
        for s in stories:
            d[s] = (d[s] - allk.mean(0)) / allk.std(0)
    signal = {s: np.sqrt(share) * sig_sem[s] + np.sqrt(1 - share) * sig_low[s] for s in stories}
    allk = np.concatenate([signal[s][keep[s]] for s in stories])
    for s in stories:
        signal[s] = (signal[s] - allk.mean(0)) / allk.std(0) * np.sqrt(snr)

    prop_share = np.zeros(n_vox)
    if prop_idx.size:
        prop_rng = rng.spawn(1)[0]   # spawning leaves rng's own stream untouched
        all_v = np.concatenate([property_values[s] for s in stories]).astype(float)
        mu_v, sd_v = all_v.mean(), all_v.std()
        if sd_v == 0:
            raise ValueError(f"simulate_study: property {property_name!r} is constant over the words")
        psig = {}
        for story in stories:
            v = (np.asarray(property_values[story], float) - mu_v) / sd_v
            psig[story] = hrf_convolve(lanczos_downsample(v[:, None], word_times(words[story]), tr * np.arange(n_trs[story])), tr)[:, 0]
        allk = np.concatenate([psig[s][keep[s]] for s in stories])
        lo, hi = np.log(property_snr[0]), np.log(property_snr[1])
        p_snr = np.exp(prop_rng.uniform(lo, hi, prop_idx.size))
        sign = prop_rng.choice([-1.0, 1.0], prop_idx.size)
        for s in stories:
            z = (psig[s] - allk.mean()) / allk.std()
            signal[s][:, prop_idx] = z[:, None] * (sign * np.sqrt(p_snr))[None, :]
        snr[prop_idx], is_noise[prop_idx], share[prop_idx], prop_share[prop_idx] = p_snr, False, 0.0, 1.0
    nl_share = np.zeros(n_vox)
    if nl_idx.size:
        # child 2 of the study's seed sequence whether PROP (child 1) was spawned or not; spawning
        # after PROP's spawn keeps PROP's generator child 1, so PROP's draws do not change either
        nl_rng = rng.spawn(1 if prop_idx.size else 2)[-1]
        word_sig = nonlinear_word_signal({s: nonlinear_features[s] for s in stories}, nl_rng)
        w_nl = nl_rng.standard_normal((NONLINEAR_COMPONENTS, nl_idx.size))
        lo, hi = np.log(nonlinear_snr[0]), np.log(nonlinear_snr[1])
        nl_snr = np.exp(nl_rng.uniform(lo, hi, nl_idx.size))
        nsig = {s: hrf_convolve(lanczos_downsample(word_sig[s], word_times(words[s]), tr * np.arange(n_trs[s])), tr)
                @ w_nl for s in stories}
        allk = np.concatenate([nsig[s][keep[s]] for s in stories])
        mu_n, sd_n = allk.mean(0), allk.std(0)
        if not (sd_n > 0).all():
            raise ValueError("simulate_study: the NONLIN signal is constant over the kept TRs")
        for s in stories:
            signal[s][:, nl_idx] = (nsig[s] - mu_n) / sd_n * np.sqrt(nl_snr)
        snr[nl_idx], is_noise[nl_idx], share[nl_idx], nl_share[nl_idx] = nl_snr, False, 0.0, 1.0
    sound_share = ((1 - share) * w_low[2] ** 2 / (w_low ** 2).sum(0)) if audio else np.zeros(n_vox)
    bold, gt_rows = {}, []
    tids = target_ids(mask)
    baseline = 500 + 100 * rng.random(n_vox)
    for sub in range(1, n_subjects + 1):
        subject = f"sub-{sub:02d}"
        kept_sig, kept_resp = [], []
        for s in stories:
            noise = ar1_noise(rng.standard_normal((n_trs[s], n_vox)), noise_ar)
            resp = signal[s] + noise
            kept_sig.append(signal[s][keep[s]])
            kept_resp.append(resp[keep[s]])
            drift = np.linspace(-1, 1, n_trs[s])[:, None] * rng.normal(0, 0.5, n_vox)
            if drift_sd > 0:
                drift = drift + slow_drift(drift_rng, n_trs[s], tr, n_vox, drift_sd, drift_periods)
            vol = np.zeros((*volume_shape, n_trs[s]), dtype=np.float32)
            vol[vox] = (baseline + 5.0 * (resp + drift)).T
            bold[(subject, s)] = vol
        ks, kr = np.concatenate(kept_sig), np.concatenate(kept_resp)
        ks, kr = ks - ks.mean(0), kr - kr.mean(0)
        den = np.sqrt((ks ** 2).sum(0) * (kr ** 2).sum(0))
        expected = np.where(den > 0, (ks * kr).sum(0) / np.where(den > 0, den, 1), 0.0)
        gt_rows.append(pd.DataFrame({
            "subject": subject, "target": tids, "roi": [roi_names[k] for k in roi_of_vox],
            "expected_r": expected, "snr": snr, "semantic_share": np.where(is_noise, 0.0, share),
            "sound_power_share": np.where(is_noise | (prop_share > 0) | (nl_share > 0), 0.0, sound_share),
            "is_noise": is_noise,
            **({"property_share": prop_share} if prop_idx.size else {}),
            **({"nonlinear_share": nl_share} if nl_idx.size else {})}))
    # 3 mm voxels; the box is centred on the left perisylvian cortex in MNI space (-50, -20, 6 mm),
    # where the simulated ROIs' namesakes are, so the brain maps land on the left hemisphere
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = np.array([-50.0, -20.0, 6.0]) - 3.0 * (np.array(volume_shape) - 1) / 2
    return SimulatedStudy(bold=bold, mask=mask, labels=labels, roi_names=roi_names, words=words,
                          ground_truth=pd.concat(gt_rows, ignore_index=True), tr=tr, affine=affine,
                          meta={"n_trs": n_trs, "seed": seed, "n_components": n_components,
                                "noise_ar": noise_ar, "drift_sd": drift_sd,
                                "drift_periods": list(drift_periods),
                                **({"property": property_name} if prop_idx.size else {}),
                                **({"nonlinear": {"layer": nonlinear_layer, "nonlinearity": NONLINEARITY,
                                                  "n_components": NONLINEAR_COMPONENTS,
                                                  "n_pcs": NONLINEAR_PCS,
                                                  "snr": [float(v) for v in nonlinear_snr]}}
                                   if nl_idx.size else {})},
                          audio={s: (np.asarray(audio[s][0], dtype=np.float32), int(audio[s][1])) for s in audio})


def write_study(study: SimulatedStudy, root: str | Path, extra_meta: dict | None = None) -> Path:
    """Write a simulated study in real formats under ``root`` (see module docstring).

    Layout::

        dataset_description.json
        roi_labels.tsv                                 index, name
        stimuli/<story>_words.tsv                      onset, duration, word
        stimuli/<story>.wav                            16-bit PCM audio (studies with audio)
        sub-XX/func/sub-XX_task-<story>_bold.nii.gz    4D float32, TR in the header
        sub-XX/func/sub-XX_task-<story>_desc-brain_mask.nii.gz
        sub-XX/func/sub-XX_task-<story>_desc-roi_dseg.nii.gz
        ground_truth.parquet                           subject, target, roi, expected_r, ...
    """
    import nibabel as nib

    root = Path(root)
    (root / "stimuli").mkdir(parents=True, exist_ok=True)
    desc = {"Name": "brainalign simulated story listening", "BIDSVersion": "1.8.0",
            "DatasetType": "derivative", "RepetitionTime": study.tr, **(extra_meta or {})}
    (root / "dataset_description.json").write_text(json.dumps(desc, indent=2))
    pd.DataFrame({"index": np.arange(1, len(study.roi_names) + 1), "name": study.roi_names}).to_csv(
        root / "roi_labels.tsv", sep="\t", index=False)
    for story, w in study.words.items():
        pd.DataFrame({"onset": w["onset"].round(4), "duration": (w["offset"] - w["onset"]).round(4),
                      "word": w["word"]}).to_csv(root / "stimuli" / f"{story}_words.tsv", sep="\t",
                                                  index=False)
    for story, (wave, rate) in study.audio.items():
        write_wav(root / "stimuli" / f"{story}.wav", wave, rate)
    for (subject, story), vol in study.bold.items():
        func = root / subject / "func"
        func.mkdir(parents=True, exist_ok=True)
        stem = func / f"{subject}_task-{story}"
        img = nib.Nifti1Image(vol, study.affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = study.tr
        nib.save(img, f"{stem}_bold.nii.gz")
        nib.save(nib.Nifti1Image(study.mask, study.affine), f"{stem}_desc-brain_mask.nii.gz")
        nib.save(nib.Nifti1Image(study.labels, study.affine), f"{stem}_desc-roi_dseg.nii.gz")
    study.ground_truth.to_parquet(root / "ground_truth.parquet", index=False)
    return root
