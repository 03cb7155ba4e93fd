"""Layer-wise features of speech models (Wav2Vec2, HuBERT, Whisper encoder) on sliding windows.

Method (brain-tuning study, DESIGN.md method card 3): the story audio (mono, float) is resampled
to the model's rate (the feature extractor's ``sampling_rate``, 16 kHz for the three families;
``scipy.signal.resample_poly``); windows of ``window_s`` seconds (default 16) end every
``stride_s`` seconds (default 0.1) and go through the model; the chosen layer's *last frame* of
each window that corresponds to real audio is the feature at the window's end time. The features
are then Lanczos-downsampled to the TR grid (:func:`speech_features_to_grid`).

Windows (:func:`window_end_times`, :func:`window_sample_spans`)
    End times are ``k * stride_s`` for integer ``k``, from the first multiple of ``stride_s`` that
    is ``>= min_window_s`` (default 0.5 s: shorter inputs carry too little context, and a
    Wav2Vec2/HuBERT conv stack needs at least 400 samples for one frame) to the last multiple that
    is ``<= duration``. Window ``k`` covers the samples
    ``[max(0, round((t_k - window_s) * sr)), round(t_k * sr))``: windows that would start before
    the audio take audio from 0, so the first ``window_s`` seconds have shorter windows.

Layers
    Layer 0 is ``hidden_states[0]`` of ``transformers`` (Wav2Vec2/HuBERT: after the feature
    projection and the positional convolution; Whisper: after the two convolutions plus the
    positional embedding), layer ``k`` the output of block ``k`` (Whisper's last layer includes
    the encoder's final layer norm, as ``transformers`` returns it).

Last frame (per family, :data:`SPEECH_FAMILIES`)
    Wav2Vec2/HuBERT: the conv stack turns ``n`` samples into
    ``model._get_feat_extract_output_lengths(n)`` frames; the last frame is that minus 1.
    Whisper: the feature extractor pads (or truncates) each window to 30 s of log-mel (3000
    frames of ``hop_length`` = 160 samples, STFT centred, last frame dropped), and the encoder's
    second convolution (kernel 3, stride 2, padding 1) halves that to 1500 frames of 20 ms.
    Mel frame ``i`` is centred on sample ``i * hop``, so ``n`` samples of real audio fill
    ``ceil(n / hop)`` mel frames, and encoder frame ``j`` is centred on mel frame ``2 j``: the
    last encoder frame of real audio is ``ceil(n / hop / 2) - 1`` (= ``ceil(ceil(n / hop) / 2) - 1``).
    ``window_s`` above the extractor's 30 s chunk is an error for Whisper.

Batching
    Input normalisation is the feature extractor's, per window (``do_normalize`` as in its
    config). Wav2Vec2/HuBERT windows are batched only with windows of the same number of samples
    (all full windows; the short start windows are each their own group), so no padding - and no
    attention mask, which group-norm models such as wav2vec2-base must not receive - ever enters a
    batch. Whisper windows are all padded to 30 s by its extractor anyway, so any windows batch
    together.
"""
from __future__ import annotations

import json
import logging
import math
from fractions import Fraction

import numpy as np
from tqdm.auto import tqdm

from .base import ConditionError, RepresentationKind
from .text import ModelNotFoundError, refuse_pickled_weights, resolve_device

log = logging.getLogger(__name__)

#: default shortest window (s): the first window ends at the first multiple of the stride >= this
MIN_WINDOW_S = 0.5
#: tolerance (in strides) for a time lying on the stride grid despite float rounding
_GRID_ATOL = 1e-9


class SpeechModelNotFoundError(ModelNotFoundError):
    """A speech model could not be loaded (not a local model directory, not on the hub, or not
    one of the supported families)."""


# --------------------------------------------------------------------------------------------
# families
# --------------------------------------------------------------------------------------------
def _freeze_cnn(encoder) -> None:
    """Freeze a Wav2Vec2/HuBERT convolutional feature encoder (``requires_grad=False``; its
    ``_requires_grad`` flag too, which ``transformers`` reads in training mode)."""
    if hasattr(encoder, "_freeze_parameters"):
        encoder._freeze_parameters()
    else:
        encoder.requires_grad_(False)


class _Wav2Vec2Family:
    """Wav2Vec2: ``Wav2Vec2Model`` + ``Wav2Vec2FeatureExtractor`` on raw waveforms."""

    name = "wav2vec2"
    model_types = ("wav2vec2",)
    #: windows of different lengths may share a batch (only when the extractor pads them itself)
    pads_to_fixed_length = False

    @staticmethod
    def _classes():
        from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

        return Wav2Vec2FeatureExtractor, Wav2Vec2Model

    def load(self, path: str):
        """(feature_extractor, model) from a local directory or hub name; the CNN is frozen."""
        fe_cls, model_cls = self._classes()
        refuse_pickled_weights(path, path)
        fe = fe_cls.from_pretrained(path)
        model = model_cls.from_pretrained(path, use_safetensors=True)
        _freeze_cnn(model.feature_extractor)
        return fe, model

    @staticmethod
    def n_layers(model) -> int:
        """Hidden states returned: the layer-0 input plus one per transformer block."""
        return int(model.config.num_hidden_layers) + 1

    @staticmethod
    def hidden_size(model) -> int:
        return int(model.config.hidden_size)

    @staticmethod
    def max_window_samples(fe) -> int | None:
        return None

    @staticmethod
    def last_frame(model, fe, n_samples: int) -> int:
        """Index of the last output frame of ``n_samples`` of audio (-1: no frame at all)."""
        return int(model._get_feat_extract_output_lengths(int(n_samples))) - 1

    @staticmethod
    def inputs(fe, windows: list[np.ndarray], sampling_rate: int, device):
        """Model inputs (keyword dict on ``device``) for a batch of windows of equal length."""
        enc = fe(windows, sampling_rate=sampling_rate, return_tensors="pt")
        return {"input_values": enc["input_values"].to(device)}


class _HubertFamily(_Wav2Vec2Family):
    """HuBERT: ``HubertModel`` + ``Wav2Vec2FeatureExtractor`` on raw waveforms."""

    name = "hubert"
    model_types = ("hubert",)

    @staticmethod
    def _classes():
        from transformers import HubertModel, Wav2Vec2FeatureExtractor

        return Wav2Vec2FeatureExtractor, HubertModel


class _WhisperFamily:
    """Whisper: the encoder of ``WhisperModel`` + ``WhisperFeatureExtractor`` (30 s log-mel)."""

    name = "whisper"
    model_types = ("whisper",)
    pads_to_fixed_length = True

    def load(self, path: str):
        """(feature_extractor, encoder): the decoder is dropped; conv1/conv2 are frozen."""
        from transformers import WhisperFeatureExtractor, WhisperModel

        refuse_pickled_weights(path, path)
        fe = WhisperFeatureExtractor.from_pretrained(path)
        full = WhisperModel.from_pretrained(path, use_safetensors=True)
        encoder = full.get_encoder()
        for conv in (encoder.conv1, encoder.conv2):
            conv.requires_grad_(False)
        return fe, encoder

    @staticmethod
    def n_layers(model) -> int:
        return int(model.config.encoder_layers) + 1

    @staticmethod
    def hidden_size(model) -> int:
        return int(model.config.d_model)

    @staticmethod
    def max_window_samples(fe) -> int | None:
        return int(fe.n_samples)

    @staticmethod
    def last_frame(model, fe, n_samples: int) -> int:
        """``ceil(n / hop / 2) - 1``: see the module docstring (conv2 has stride 2)."""
        n_mel = -(-int(n_samples) // int(fe.hop_length))       # ceil(n / hop) mel frames of audio
        last = -(-n_mel // 2) - 1                                # ceil(n_mel / 2) - 1
        return min(last, int(model.config.max_source_positions) - 1)

    @staticmethod
    def inputs(fe, windows: list[np.ndarray], sampling_rate: int, device):
        enc = fe(windows, sampling_rate=sampling_rate, return_tensors="pt")
        return {"input_features": enc["input_features"].to(device)}


#: family name -> object that loads, counts layers, prepares inputs and finds the last frame.
#: Add a family by adding an entry (its ``model_types`` are the ``config.model_type`` it serves).
SPEECH_FAMILIES: dict[str, object] = {
    "wav2vec2": _Wav2Vec2Family(),
    "hubert": _HubertFamily(),
    "whisper": _WhisperFamily(),
}


def family_of(model_type: str) -> str:
    """Family name serving a ``config.model_type``; ValueError when none does."""
    for name, fam in SPEECH_FAMILIES.items():
        if model_type in fam.model_types:
            return name
    raise ValueError(f"model type {model_type!r} is not a supported speech family "
                     f"({sorted(SPEECH_FAMILIES)})")


def _family(family: str | None, model) -> object:
    if family is None:
        family = family_of(getattr(model.config, "model_type", None))
    if family not in SPEECH_FAMILIES:
        raise ValueError(f"unknown speech family {family!r}; expected one of {sorted(SPEECH_FAMILIES)}")
    return SPEECH_FAMILIES[family]


def load_speech_model(name_or_path: str, device: str | None = "cpu", family: str | None = None):
    """Load a speech model and its feature extractor for :func:`extract_speech_features`.

    Parameters
    ----------
    name_or_path : local model directory (``save_pretrained`` layout: ``config.json``, weights,
        ``preprocessor_config.json``) or hub name (needs internet).
    device : ``"cpu"``, ``"cuda"``, ``"auto"``/None (cuda when available); cuda without CUDA
        falls back to cpu with a warning.
    family : ``"wav2vec2"``, ``"hubert"`` or ``"whisper"``; None: from ``config.model_type``.
        A family that contradicts the checkpoint's model type is an error.

    Returns
    -------
    feature_extractor : the family's ``transformers`` feature extractor.
    model : in eval mode on ``device``. Wav2Vec2/HuBERT: the ``Wav2Vec2Model``/``HubertModel``;
        Whisper: the encoder of ``WhisperModel`` (the decoder is not kept). The convolutional
        feature encoder (Wav2Vec2/HuBERT CNN, Whisper conv1/conv2) is frozen
        (``requires_grad=False``), as in brain-tuning, so a trainer built on this model leaves it
        unchanged; the transformer blocks keep ``requires_grad=True``.
    family : the family name.

    Raises
    ------
    SpeechModelNotFoundError (a ValueError) naming the model when the configuration, weights or
    feature extractor cannot be loaded (offline: anything that is not a complete local directory)
    or its model type is not a speech family.
    """
    from transformers import AutoConfig

    path = str(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
        detected = family_of(config.model_type)
    except (OSError, ValueError, KeyError) as exc:
        raise SpeechModelNotFoundError(
            f"speech model {name_or_path!r}: cannot read a supported configuration (it is not a "
            f"local model directory of a {sorted(SPEECH_FAMILIES)} model, and transformers could "
            f"not load it from the Hugging Face hub; offline machines can only use local paths). "
            f"Cause: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if family is not None and family != detected:
        if family not in SPEECH_FAMILIES:
            raise ValueError(f"speech model {name_or_path!r}: unknown family {family!r}; expected one "
                             f"of {sorted(SPEECH_FAMILIES)}")
        raise SpeechModelNotFoundError(
            f"speech model {name_or_path!r} has model type {config.model_type!r} (family "
            f"{detected!r}), not the requested family {family!r}")
    fam = SPEECH_FAMILIES[detected]
    try:
        fe, model = fam.load(path)
    except (OSError, ValueError) as exc:
        raise SpeechModelNotFoundError(
            f"speech model {name_or_path!r} ({detected}): cannot load its weights or feature "
            f"extractor (a directory needs model.safetensors or another transformers weight file "
            f"and preprocessor_config.json). Cause: {str(exc).splitlines()[0]}") from exc
    model.eval().to(resolve_device(device))
    return fe, model, detected


# --------------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------------
def window_end_times(duration_s: float, window_s: float = 16.0, stride_s: float = 0.1,
                     min_window_s: float = MIN_WINDOW_S) -> np.ndarray:
    """End times of the sliding windows over ``duration_s`` seconds of audio.

    Parameters
    ----------
    duration_s : length of the audio (s).
    window_s : window length (s); windows ending before ``window_s`` are shorter (start at 0).
    stride_s : spacing of the end times (s).
    min_window_s : the first window ends at the first multiple of ``stride_s`` that is
        ``>= min_window_s`` (so the shortest window is at least that long).

    Returns
    -------
    float64 array of shape (n_windows,): ``k * stride_s`` for ``k = ceil(min_window_s /
    stride_s) .. floor(duration_s / stride_s)`` (up to 1e-9 strides of float rounding).

    Raises
    ------
    ValueError when a length is not positive or the audio is shorter than the first end time.
    """
    for name, value in (("window_s", window_s), ("stride_s", stride_s), ("min_window_s", min_window_s)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    if min_window_s > window_s:
        raise ValueError(f"min_window_s ({min_window_s} s) is longer than window_s ({window_s} s)")
    if not np.isfinite(duration_s) or duration_s < 0:
        raise ValueError(f"duration must be a non-negative number of seconds, got {duration_s!r}")
    first = math.ceil(min_window_s / stride_s - _GRID_ATOL)
    last = math.floor(duration_s / stride_s + _GRID_ATOL)
    if last < first:
        raise ValueError(f"audio of {duration_s:.3f} s is shorter than the first window end "
                         f"({first * stride_s:.3f} s = min_window_s {min_window_s} s on the "
                         f"{stride_s} s stride grid)")
    return np.arange(first, last + 1, dtype=np.float64) * float(stride_s)


def window_sample_spans(times: np.ndarray, window_s: float, sampling_rate: int,
                        n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sample spans of the windows ending at ``times``.

    Parameters
    ----------
    times : array of shape (n_windows,), window end times (s).
    window_s : window length (s).
    sampling_rate : samples per second of the audio the spans index.
    n_samples : length of that audio; ends are clipped to it (float rounding only).

    Returns
    -------
    starts, ends : int64 arrays of shape (n_windows,); window ``k`` is ``audio[starts[k]:ends[k]]``
    with ``starts = max(0, round((t - window_s) * sr))`` and ``ends = round(t * sr)``.
    """
    t = np.asarray(times, dtype=np.float64)
    ends = np.rint(t * sampling_rate).astype(np.int64)
    starts = np.maximum(0, np.rint((t - window_s) * sampling_rate).astype(np.int64))
    if n_samples is not None:
        ends = np.minimum(ends, int(n_samples))
    return starts, ends


def _check_audio(waveform, desc: str) -> np.ndarray:
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"{desc}: audio must be mono, a 1D array of samples; got shape {x.shape} "
                         f"(mix to mono first, e.g. waveform.mean(axis=channel_axis))")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{desc}: audio must be float samples (e.g. in [-1, 1]); got dtype "
                         f"{x.dtype} (convert integer PCM first, e.g. int16 / 32768)")
    if x.size == 0:
        raise ValueError(f"{desc}: the audio is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{desc}: the audio holds {int(np.sum(~np.isfinite(x)))} NaN or infinite samples")
    return x


def resample_audio(waveform: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``, up/down from the reduced rate ratio).

    Returns the input unchanged when the rates are equal.
    """
    if int(orig_rate) == int(new_rate):
        return waveform
    from scipy.signal import resample_poly

    ratio = Fraction(int(new_rate), int(orig_rate))
    return resample_poly(waveform, ratio.numerator, ratio.denominator)


# --------------------------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------------------------
def extract_speech_features(waveform, sample_rate: int, feature_extractor, model, layers,
                            window_s: float = 16.0, stride_s: float = 0.1, batch_size: int = 16,
                            progress: bool = False, desc: str = "windows", family: str | None = None,
                            min_window_s: float = MIN_WINDOW_S) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Features of one story's audio: the last real frame of each sliding window, per layer.

    Parameters
    ----------
    waveform : float array of shape (n_samples,), mono audio.
    sample_rate : its rate (Hz); resampled to ``feature_extractor.sampling_rate`` when different.
    feature_extractor, model : from :func:`load_speech_model`.
    layers : hidden-state indices (int or list of ints): 0 = ``hidden_states[0]``, ``k`` = block
        ``k``; range 0..n_blocks.
    window_s, stride_s, min_window_s : windows (see :func:`window_end_times`).
    batch_size : windows per forward pass.
    progress : show a tqdm progress bar labelled ``desc``.
    desc : names the story in messages and the progress bar.
    family : ``"wav2vec2"``, ``"hubert"``, ``"whisper"``; None: from ``model.config.model_type``.

    Returns
    -------
    times : float64 array of shape (n_windows,), window end times (s, from the audio start).
    features : dict layer -> float32 array of shape (n_windows, hidden_size), row ``k`` the
        layer's last frame of real audio of window ``k``.
    """
    import torch

    fam = _family(family, model)
    x = _check_audio(waveform, desc)
    if not (np.isfinite(sample_rate) and sample_rate > 0 and float(sample_rate) == int(sample_rate)):
        raise ValueError(f"{desc}: sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    layers = [int(layers)] if np.isscalar(layers) else [int(layer) for layer in layers]
    total = fam.n_layers(model)
    bad = [layer for layer in layers if not 0 <= layer < total]
    if bad or not layers:
        name = getattr(model.config, "_name_or_path", "") or fam.name
        raise ValueError(f"{desc}: layers {bad or layers} out of range: speech model {name!r} has "
                         f"hidden states 0..{total - 1}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sr = int(feature_extractor.sampling_rate)
    max_samples = fam.max_window_samples(feature_extractor)
    if max_samples is not None and window_s * sr > max_samples:
        raise ValueError(f"{desc}: window_s={window_s} s is longer than the {max_samples / sr:g} s "
                         f"that a {fam.name} model reads; use window_s <= {max_samples / sr:g}")
    duration = len(x) / float(sample_rate)
    if int(sample_rate) != sr:
        log.info("%s: resampling audio from %d Hz to the model's %d Hz (scipy resample_poly)",
                 desc, int(sample_rate), sr)
        x = resample_audio(x, int(sample_rate), sr)
    x = np.asarray(x, dtype=np.float32)

    try:
        times = window_end_times(duration, window_s, stride_s, min_window_s)
    except ValueError as exc:
        raise ValueError(f"{desc}: {exc}") from exc
    starts, ends = window_sample_spans(times, window_s, sr, len(x))
    lengths = ends - starts
    last = np.array([fam.last_frame(model, feature_extractor, n) for n in np.unique(lengths)])
    if np.any(last < 0):
        raise ValueError(f"{desc}: a window of {int(lengths.min())} samples gives the {fam.name} "
                         f"model no output frame; raise min_window_s")

    # batches: windows of equal length (any length where the extractor pads to a fixed size)
    if fam.pads_to_fixed_length:
        groups = [np.arange(len(times))]
    else:
        _, first, inverse = np.unique(lengths, return_index=True, return_inverse=True)
        groups = [np.flatnonzero(inverse.ravel() == g) for g in np.argsort(first, kind="stable")]
    batches = [idx[i:i + batch_size] for idx in groups for i in range(0, len(idx), batch_size)]

    device = next(model.parameters()).device
    hidden = fam.hidden_size(model)
    out = {layer: np.zeros((len(times), hidden), dtype=np.float32) for layer in layers}
    with tqdm(total=len(times), desc=desc, disable=not progress) as bar, torch.no_grad():
        for idx in batches:
            windows = [x[starts[k]:ends[k]] for k in idx]
            inputs = fam.inputs(feature_extractor, windows, sr, device)
            states = model(**inputs, output_hidden_states=True).hidden_states
            frames = torch.tensor([fam.last_frame(model, feature_extractor, ends[k] - starts[k])
                                   for k in idx], device=device)
            rows = torch.arange(len(idx), device=device)
            for layer in layers:
                out[layer][idx] = states[layer][rows, frames].float().cpu().numpy()
            bar.update(len(idx))
    return times, out


def speech_features_to_grid(times: np.ndarray, feats, tr_times: np.ndarray, window: int = 3):
    """Lanczos-downsample window features to the fMRI TR grid.

    Parameters
    ----------
    times : array of shape (n_windows,), window end times (s) from :func:`extract_speech_features`.
    feats : array of shape (n_windows, dim), or a dict layer -> such arrays.
    tr_times : array of shape (n_trs,), regular TR times (s) on the same clock as ``times``.
    window : Lanczos lobes.

    Returns
    -------
    float32 array of shape (n_trs, dim) (a dict of them for a dict input), computed by
    :func:`brainalign.core.timing.resample.lanczos_downsample`.
    """
    from brainalign.core.timing.resample import lanczos_downsample

    if isinstance(feats, dict):
        return {k: lanczos_downsample(v, times, tr_times, window=window) for k, v in feats.items()}
    return lanczos_downsample(feats, times, tr_times, window=window)


class SpeechKind(RepresentationKind):
    """``speech``: ``{kind: speech, model: <hub name or local directory>, family: wav2vec2 | hubert |
    whisper (default: from the model's config), window_s: 16, stride_s: 0.1}``.

    The story audio (``stimulus_audio``: mono, 16 kHz, on the TR-grid clock) goes through the model
    in windows of ``window_s`` ending every ``stride_s`` (:func:`extract_speech_features`); the
    chosen layer's last frame of each window is the feature at the window's end time, then the
    window features are Lanczos-resampled to the volume times of the story's full TR grid (window 3,
    cutoff at the TR's Nyquist rate; the kernel sums, so dense windows add up to a scaled low-pass
    average, and encoding z-scores the features). Level ``tr``. Features are cached by the model's
    fingerprint (weights, config), the window parameters, the audio's hash and the TR grid.
    """

    name = "speech"
    level = "tr"
    keys = ("model", "family", "window_s", "stride_s")
    required = ("model",)
    overrides = ("response_model", "delays", "lanczos_window", "batch_size")

    def check(self, name: str, params: dict) -> dict:
        params = super().check(name, params)
        fam = params.get("family")
        if fam is not None and fam not in SPEECH_FAMILIES:
            raise ConditionError(f"condition {name!r}: speech family must be one of {sorted(SPEECH_FAMILIES)}, "
                                 f"got {fam!r}")
        params.setdefault("window_s", 16.0)
        params.setdefault("stride_s", 0.1)
        if not 0 < float(params["stride_s"]) <= float(params["window_s"]):
            raise ConditionError(f"condition {name!r}: need 0 < stride_s <= window_s, got "
                                 f"{params['stride_s']} and {params['window_s']}")
        return params

    def inputs(self, name: str, params: dict) -> list[str]:
        return ["stimulus_audio", "tr_grids"]

    def load(self, name: str, params: dict, device: str, **data):
        """Feature extractor, model (eval, on ``device``) and family of the condition."""
        from .text import resolve_model

        return load_speech_model(resolve_model(params["model"]), device, params.get("family"))

    def extract(self, name: str, params: dict, embedding: dict, layers: list[int], stimulus_audio=None,
                tr_grids=None, **data) -> dict[int, dict]:
        import hashlib

        from ..timing.stimuli import tr_times
        from .text import FeatureCache, model_fingerprint, resolve_device

        rate = int(embedding.get("audio_sample_rate", 16000))
        device = resolve_device(embedding.get("device", "auto"))
        fe, model, family = self.load(name, params, device, **data)
        window = {"window_s": float(params["window_s"]), "stride_s": float(params["stride_s"])}
        lanczos = int(embedding.get("lanczos_window", 3))
        fingerprint = model_fingerprint(model, None, {**window, "lanczos_window": lanczos,
                                                      "feature_extractor": fe.to_dict()})
        log.info("condition %s: %s model, fingerprint %s", name, family, fingerprint)
        cache = FeatureCache(embedding.get("cache_dir"))
        out: dict[int, dict] = {layer: {} for layer in layers}
        for grid in tr_grids.to_dict("records"):
            story = grid["story"]
            if story not in stimulus_audio:
                raise ConditionError(f"condition {name!r}: no audio for story {story} in stimulus_audio")
            wav = np.asarray(stimulus_audio[story], dtype=np.float32)
            key = hashlib.sha1(json.dumps([fingerprint, story, hashlib.sha1(wav.tobytes()).hexdigest(), rate,
                                           float(grid["t0"]), float(grid["tr"]), int(grid["n_trs_total"])])
                               .encode()).hexdigest()[:16]
            def compute(wav=wav, grid=grid, story=story):
                batch = int(embedding.get("batch_size") if "batch_size" in params else
                            embedding.get("speech_batch_size", 16))
                times, win = extract_speech_features(wav, rate, fe, model, layers, batch_size=batch, progress=True,
                                                     desc=f"{name} {story}", family=family, **window)
                return {layer: speech_features_to_grid(times, win[layer], tr_times(grid), window=lanczos)
                        for layer in layers}

            feats = cache.fetch(key, layers, compute, what=f"condition {name}: features of story {story}")
            for layer in layers:
                out[layer][story] = np.asarray(feats[layer], dtype=np.float32)
        return out

    def describe(self, name: str, params: dict) -> dict:
        return {"condition": name, "kind": self.name, "base_model": params["model"], "method": "pretrained",
                "details": f"window {params['window_s']} s, stride {params['stride_s']} s"}
