"""Speech-model features: windows, last-frame selection, resampling, loading errors.

References are independent: window times and spans from a direct loop, features from calling the
``transformers`` model directly on exactly one window's samples, resampling from scipy.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_speech import save_tiny_speech_model  # noqa: E402

from brainalign.core.representations.speech import (  # noqa: E402
    SPEECH_FAMILIES,
    SpeechModelNotFoundError,
    extract_speech_features,
    load_speech_model,
    speech_features_to_grid,
    window_end_times,
    window_sample_spans,
)
from brainalign.core.timing.resample import lanczos_downsample  # noqa: E402

SR = 16000
FAMILIES = ("wav2vec2", "hubert", "whisper")


@pytest.fixture(scope="module")
def speech_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_models")
    return {f: save_tiny_speech_model(root / f, f, seed=3) for f in FAMILIES}


@pytest.fixture(scope="module")
def loaded(speech_dirs):
    return {f: load_speech_model(str(speech_dirs[f])) for f in FAMILIES}


def _audio(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.1 * rng.standard_normal(t.size))


# ------------------------------------------------------------------------------ windows
def test_window_end_times_against_direct_loop():
    for duration, window, stride, min_w in [(3.05, 1.0, 0.1, 0.5), (10.0, 16.0, 0.1, 0.5),
                                            (2.0, 0.8, 0.25, 0.3), (0.5, 1.0, 0.1, 0.5)]:
        expected = []
        k = 0
        while k * stride <= duration + 1e-9:
            if k * stride >= min_w - 1e-9:
                expected.append(k * stride)
            k += 1
        got = window_end_times(duration, window, stride, min_w)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, atol=1e-12)
    t = window_end_times(20.0)  # defaults: 16 s windows, 0.1 s stride, first end 0.5 s
    assert t[0] == pytest.approx(0.5) and t[-1] == pytest.approx(20.0) and len(t) == 196


def test_window_sample_spans_against_direct_computation():
    times = window_end_times(3.0, 1.0, 0.1)
    starts, ends = window_sample_spans(times, 1.0, SR, n_samples=3 * SR)
    for t, s, e in zip(times, starts, ends):
        assert e == int(round(t * SR))
        assert s == max(0, int(round((t - 1.0) * SR)))
    assert starts[0] == 0 and ends[0] == SR // 2          # short window at the story start
    assert np.all(ends[times >= 1.0] - starts[times >= 1.0] == SR)  # full windows after 1 s


def test_window_end_times_errors():
    with pytest.raises(ValueError, match="shorter than the first window end"):
        window_end_times(0.3)
    with pytest.raises(ValueError, match="stride_s"):
        window_end_times(3.0, stride_s=0)


# ------------------------------------------------------------------------------ loading
def test_load_speech_model_families_and_frozen_cnn(loaded):
    for fam in FAMILIES:
        fe, model, name = loaded[fam]
        assert name == fam and fam in SPEECH_FAMILIES
        assert not model.training
        assert fe.sampling_rate == SR
        if fam == "whisper":
            cnn = list(model.conv1.parameters()) + list(model.conv2.parameters())
            assert type(model).__name__ == "WhisperEncoder"
        else:
            cnn = list(model.feature_extractor.parameters())
        assert cnn and not any(p.requires_grad for p in cnn)
        assert any(p.requires_grad for p in model.layers.parameters()) if fam == "whisper" else \
            any(p.requires_grad for p in model.encoder.parameters())


def test_load_errors(tmp_path, speech_dirs):
    missing = tmp_path / "no_such_model"
    with pytest.raises(SpeechModelNotFoundError, match="no_such_model"):
        load_speech_model(str(missing))
    # a hub name (the tests run offline: conftest sets HF_HUB_OFFLINE)
    with pytest.raises(SpeechModelNotFoundError, match="someone/not-a-speech-model"):
        load_speech_model("someone/not-a-speech-model")
    # a directory holding the configuration and extractor but no weights
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    for f in ("config.json", "preprocessor_config.json"):
        (no_weights / f).write_bytes((speech_dirs["wav2vec2"] / f).read_bytes())
    with pytest.raises(SpeechModelNotFoundError, match="no_weights") as err:
        load_speech_model(str(no_weights))
    assert isinstance(err.value, ValueError)
    # a text model is not a speech family
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(SpeechModelNotFoundError, match="bert"):
        load_speech_model(str(tmp_path / "bert"))
    with pytest.raises(SpeechModelNotFoundError, match="whisper"):
        load_speech_model(str(speech_dirs["hubert"]), family="whisper")


# ------------------------------------------------------------------------------ last frame
def _direct(fam, fe, model, window: np.ndarray, layer: int) -> np.ndarray:
    """The model called directly on one window; the last real frame picked by hand."""
    with torch.no_grad():
        if fam == "whisper":
            feats = fe(window, sampling_rate=SR, return_tensors="pt")["input_features"]
            hs = model(feats, output_hidden_states=True).hidden_states[layer][0]
            idx = math.ceil(len(window) / fe.hop_length / 2) - 1
        else:
            vals = fe(window, sampling_rate=SR, return_tensors="pt")["input_values"]
            hs = model(vals, output_hidden_states=True).hidden_states[layer][0]
            idx = hs.shape[0] - 1            # no padding: the last frame is the last real one
    return hs[idx].numpy()


@pytest.mark.parametrize("fam", FAMILIES)
def test_last_frame_matches_direct_model_call(fam, loaded):
    fe, model, _ = loaded[fam]
    window_s, stride_s = 1.0, 0.1
    x = _audio(1.6)
    times, feats = extract_speech_features(x, SR, fe, model, [0, 1, 2], window_s=window_s,
                                           stride_s=stride_s, batch_size=3)
    assert len(times) == 12 and times[0] == pytest.approx(0.5)
    starts, ends = window_sample_spans(times, window_s, SR)
    for k in (0, 3, 5, 6, 11):                  # short windows and full ones (batched)
        window = x[starts[k]:ends[k]]
        for layer in (0, 1, 2):
            ref = _direct(fam, fe, model, window, layer)
            np.testing.assert_allclose(feats[layer][k], ref, rtol=1e-4, atol=1e-5)


def test_whisper_last_frame_index_is_the_last_frame_of_real_audio(loaded):
    """Encoder frame j is centred on mel frame 2 j (conv2: kernel 3, stride 2, padding 1), i.e.
    on sample 2 j hop (the STFT is centred): the frames of real audio are those with
    2 j hop < n, so the last one is ceil(n / (2 hop)) - 1, counted here directly."""
    fe, model, _ = loaded["whisper"]
    assert model.conv1.stride == (1,) and model.conv2.stride == (2,) and model.conv2.padding == (1,)
    assert fe.hop_length == 160 and fe.nb_max_frames == 2 * model.config.max_source_positions
    fam = SPEECH_FAMILIES["whisper"]
    for n in (1, 159, 160, 161, 319, 320, 321, 8000, 8100, 16000, 16001, 480000):
        centred_inside = [j for j in range(1500) if 2 * j * fe.hop_length < n]
        assert fam.last_frame(model, fe, n) == centred_inside[-1] == math.ceil(n / 160 / 2) - 1


def test_wav2vec2_frames_follow_the_conv_stack(loaded):
    fe, model, _ = loaded["wav2vec2"]
    for n in (400, 719, 720, 8000, 16000):
        vals = fe(_audio(1.0)[:n], sampling_rate=SR, return_tensors="pt")["input_values"]
        with torch.no_grad():
            frames = model(vals).last_hidden_state.shape[1]
        expected = 1 + (n - 400) // 320            # 400-sample receptive field, 320-sample hop
        assert frames == expected == int(model._get_feat_extract_output_lengths(n))


# ------------------------------------------------------------------------------ resampling
@pytest.mark.parametrize("fam", ["wav2vec2", "whisper"])
def test_8khz_equals_scipy_resampled_16khz(fam, loaded):
    from scipy.signal import resample_poly

    fe, model, _ = loaded[fam]
    x8 = _audio(1.4, sr=8000, seed=1)
    t8, f8 = extract_speech_features(x8, 8000, fe, model, [1], window_s=1.0, stride_s=0.2)
    t16, f16 = extract_speech_features(resample_poly(x8, 2, 1), SR, fe, model, [1], window_s=1.0,
                                       stride_s=0.2)
    np.testing.assert_allclose(t8, t16)
    np.testing.assert_allclose(f8[1], f16[1], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ runs
@pytest.mark.parametrize("fam", FAMILIES)
def test_each_family_runs_shape_finite_deterministic(fam, loaded):
    fe, model, _ = loaded[fam]
    x = _audio(2.5, seed=2).astype(np.float32)
    t1, f1 = extract_speech_features(x, SR, fe, model, [0, 2], window_s=2.0, stride_s=0.25,
                                     batch_size=4)
    t2, f2 = extract_speech_features(x, SR, fe, model, [2], window_s=2.0, stride_s=0.25,
                                     batch_size=1, family=fam)
    np.testing.assert_allclose(t1, np.arange(2, 11) * 0.25)
    assert set(f1) == {0, 2} and f1[2].shape == (9, 32) and f1[2].dtype == np.float32
    assert np.all(np.isfinite(f1[0])) and np.all(np.isfinite(f1[2]))
    np.testing.assert_allclose(f1[2], f2[2], rtol=1e-5, atol=1e-6)   # batching does not matter
    assert not np.allclose(f1[2][0], f1[2][-1])


def test_speech_features_to_grid_is_lanczos(loaded):
    rng = np.random.default_rng(0)
    times = np.arange(5, 200) * 0.1
    feats = rng.standard_normal((len(times), 4)).astype(np.float32)
    trs = np.arange(10) * 2.0
    ref = lanczos_downsample(feats, times, trs, window=3)
    np.testing.assert_array_equal(speech_features_to_grid(times, feats, trs), ref)
    np.testing.assert_array_equal(speech_features_to_grid(times, {3: feats}, trs)[3], ref)


# ------------------------------------------------------------------------------ bad input
def test_bad_input_errors(loaded):
    fe, model, _ = loaded["wav2vec2"]
    x = _audio(1.0)
    with pytest.raises(ValueError, match="mix to mono"):
        extract_speech_features(np.stack([x, x]), SR, fe, model, [0], window_s=1.0, desc="story_a")
    with pytest.raises(ValueError, match=r"story_a.*layers \[3\] out of range.*0\.\.2"):
        extract_speech_features(x, SR, fe, model, [0, 3], window_s=1.0, desc="story_a")
    with pytest.raises(ValueError, match="float"):
        extract_speech_features((x * 1000).astype(np.int16), SR, fe, model, [0], window_s=1.0)
    bad = x.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        extract_speech_features(bad, SR, fe, model, [0], window_s=1.0)
    fe_w, model_w, _ = loaded["whisper"]
    with pytest.raises(ValueError, match="longer than the 30 s"):
        extract_speech_features(x, SR, fe_w, model_w, [0], window_s=31.0)
