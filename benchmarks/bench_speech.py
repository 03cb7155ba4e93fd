"""Speed of speech-model feature extraction (windows/s), wav2vec2-base sized random model.

Builds a RANDOM ``Wav2Vec2Model`` of the wav2vec2-base size (hidden 768, 12 layers, 12 heads,
intermediate 3072, the default conv stack: 20 ms frames) with its feature extractor (nothing is
downloaded), synthesises a chirp plus noise, and times
:func:`brainalign.core.representations.speech.extract_speech_features` on the first
``--n-windows`` full-length windows (the audio is trimmed to the end of the N-th window that is
``--window-s`` long, and only windows ending from ``--window-s`` on are extracted: those dominate
a story, e.g. 5841 of 5996 windows of a 10-minute story). ``--from-start`` instead times the first
N windows of the story, which are shorter (they start at 0).

On cuda the same run also times the cpu on a small subset (``--cpu-windows``) and prints the
cuda/cpu ratio; ``--dtype bfloat16`` runs the cuda model under ``torch.autocast``.

Usage:  python benchmarks/bench_speech.py --device cpu --n-windows 8 [--window-s 16 --stride-s 0.1]
        python benchmarks/bench_speech.py --device cuda --n-windows 400 --dtype bfloat16
"""
from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

from brainalign.core.representations.speech import extract_speech_features, window_end_times

SR = 16000


def build_model(device: str):
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=3072)  # default conv stack = wav2vec2-base
    model = Wav2Vec2Model(config).eval().to(device)
    model.freeze_feature_encoder()
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0,
                                  do_normalize=True, return_attention_mask=False)
    return fe, model


def chirp(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    f = 100 + 3000 * t / max(seconds, 1e-9)
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def audio_for(audio: np.ndarray, n_windows: int, window_s: float, stride_s: float,
              from_start: bool) -> tuple[np.ndarray, int]:
    """The audio trimmed to the end of the N-th timed window, and N (fewer if the audio is short)."""
    times = window_end_times(len(audio) / SR, window_s, stride_s)
    if not from_start:
        first_full = int(np.searchsorted(times, window_s - 1e-9))
        times = times[first_full:]
    n = min(n_windows, len(times))
    end = int(round(times[n - 1] * SR))
    return audio[:end], n


def run(audio, fe, model, layers, window_s, stride_s, batch_size, autocast, from_start):
    import torch

    kwargs = dict(window_s=window_s, stride_s=stride_s, batch_size=batch_size)
    if not from_start:  # only the full-length windows of the trimmed audio
        kwargs["min_window_s"] = window_s
    ctx = (torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext())
    with ctx:
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        times, feats = extract_speech_features(audio, SR, fe, model, layers, **kwargs)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        return len(times), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="bfloat16: torch.autocast on cuda (ignored on cpu)")
    ap.add_argument("--seconds", type=float, default=60.0, help="synthetic audio length (s)")
    ap.add_argument("--window-s", type=float, default=16.0)
    ap.add_argument("--stride-s", type=float, default=0.1)
    ap.add_argument("--n-windows", type=int, default=16, help="time only the first N windows")
    ap.add_argument("--cpu-windows", type=int, default=4, help="cpu reference subset (cuda runs)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--layers", default="6,12")
    ap.add_argument("--from-start", action="store_true",
                    help="time the first N windows of the story (short ones) instead of full-length ones")
    ap.add_argument("--threads", type=int, default=0, help="torch cpu threads (0: torch default)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for but CUDA is not available")
    layers = [int(x) for x in args.layers.split(",")]
    audio = chirp(args.seconds)
    autocast = args.device == "cuda" and args.dtype == "bfloat16"
    fe, model = build_model(args.device)
    print(f"wav2vec2-base-sized random model on {args.device} ({args.dtype if args.device == 'cuda' else 'float32'}), "
          f"window {args.window_s} s, stride {args.stride_s} s, batch {args.batch_size}, layers {layers}, "
          f"torch threads {torch.get_num_threads()}")

    a, n = audio_for(audio, args.n_windows, args.window_s, args.stride_s, args.from_start)
    if args.device == "cuda":  # warm-up (cuDNN autotuning, allocator)
        run(a[: int(round((args.window_s + args.stride_s) * SR))], fe, model, layers, args.window_s,
            args.stride_s, args.batch_size, autocast, args.from_start)
    count, secs = run(a, fe, model, layers, args.window_s, args.stride_s, args.batch_size, autocast,
                      args.from_start)
    rate = count / secs
    print(f"{args.device}: {count} windows in {secs:.2f} s = {rate:.2f} windows/s")
    if args.device == "cuda":
        fe_c, model_c = build_model("cpu")
        a_c, _ = audio_for(audio, args.cpu_windows, args.window_s, args.stride_s, args.from_start)
        count_c, secs_c = run(a_c, fe_c, model_c, layers, args.window_s, args.stride_s,
                              args.batch_size, False, args.from_start)
        rate_c = count_c / secs_c
        print(f"cpu: {count_c} windows in {secs_c:.2f} s = {rate_c:.2f} windows/s")
        print(f"ratio cuda/cpu: {rate / rate_c:.1f}x")
    if not args.from_start:
        story_windows = len(window_end_times(600.0, args.window_s, args.stride_s))
        print(f"a 10-minute story has {story_windows} windows: ~{story_windows / rate / 60:.1f} min on "
              f"{args.device} at this rate")


if __name__ == "__main__":
    main()
