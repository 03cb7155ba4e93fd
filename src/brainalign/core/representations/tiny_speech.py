"""Tiny, randomly initialised speech models (Wav2Vec2, HuBERT, Whisper) written offline.

No pretrained speech model can be downloaded offline; the registered name ``tiny-wav2vec2``
(:func:`tiny_wav2vec2`, built once under ``$BRAINALIGN_MODEL_DIR``) stands in for one in the
speech brain-tuning study (``conf/speech_brain_tuning``) and the test suite uses every family.
Their scores are smoke figures of random weights, never results about a pretrained model.

:func:`save_tiny_speech_model` writes a model of the real ``transformers`` class with its feature
extractor into a directory (``save_pretrained``: ``config.json``, ``model.safetensors``,
``preprocessor_config.json``), ready for
:func:`brainalign.core.representations.speech.load_speech_model`. Nothing is downloaded.

Sizes (all families): hidden size 32, 2 transformer layers, 2 attention heads, feed-forward 64.

- ``wav2vec2`` / ``hubert``: the real convolutional stack of the base models (kernels
  (10, 3, 3, 3, 3, 2, 2), strides (5, 2, 2, 2, 2, 2, 2): 320 samples = 20 ms per frame at
  16 kHz, 400-sample receptive field) with 32 channels per layer, so frame arithmetic is the
  real one while a 16 s window costs only a few ms; positional convolution of 16 taps in 2 groups.
  The wav2vec2 feature extractor normalises each input (``do_normalize=True``, as
  wav2vec2-base); the hubert one does not (``do_normalize=False``), so both paths are exercised.
- ``whisper``: ``WhisperModel`` with ``d_model`` 32, 2 encoder and 1 decoder layers, 80 mel bins,
  ``max_source_positions`` 1500 (the real 30 s input of 3000 mel frames), a 64-token vocabulary;
  the default ``WhisperFeatureExtractor`` (16 kHz, hop 160, 30 s chunks).
"""
from __future__ import annotations

from pathlib import Path

TINY_FAMILIES = ("wav2vec2", "hubert", "whisper")

_CONV = dict(conv_dim=(32,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2))
_ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def save_tiny_speech_model(path, family: str, seed: int = 0) -> Path:
    """Write a tiny random speech model of ``family`` and its feature extractor to ``path``.

    Parameters
    ----------
    path : directory to write (created if missing).
    family : ``"wav2vec2"``, ``"hubert"`` or ``"whisper"``.
    seed : torch seed of the random initialisation (same seed, same weights).

    Returns
    -------
    Path of the directory.
    """
    import torch
    from transformers import (HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor,
                              Wav2Vec2Model, WhisperConfig, WhisperFeatureExtractor, WhisperModel)

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if family == "wav2vec2":
        model = Wav2Vec2Model(Wav2Vec2Config(**_CONV, **_ENCODER, vocab_size=32))
        fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                      do_normalize=True, return_attention_mask=False)
    elif family == "hubert":
        model = HubertModel(HubertConfig(**_CONV, **_ENCODER, vocab_size=32))
        fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                      do_normalize=False, return_attention_mask=False)
    elif family == "whisper":
        config = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=32, encoder_layers=2,
                               encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
                               decoder_attention_heads=2, decoder_ffn_dim=64,
                               max_source_positions=1500, max_target_positions=32,
                               pad_token_id=0, bos_token_id=1, eos_token_id=2,
                               decoder_start_token_id=1, suppress_tokens=None,
                               begin_suppress_tokens=None)
        model = WhisperModel(config)
        fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160,
                                     chunk_length=30, n_fft=400)
    else:
        raise ValueError(f"unknown tiny speech family {family!r}; expected one of {TINY_FAMILIES}")
    model.eval()
    model.save_pretrained(str(path), safe_serialization=True)
    fe.save_pretrained(str(path))
    return path


def tiny_wav2vec2(seed: int = 0) -> str:
    """Path of the tiny random Wav2Vec2 (:func:`save_tiny_speech_model`), built on first use (the
    ``tiny-wav2vec2`` registry entry)."""
    from .text import build_once

    return build_once(f"tiny-wav2vec2-h32-l2-s{seed}", lambda tmp: save_tiny_speech_model(tmp, "wav2vec2", seed))
