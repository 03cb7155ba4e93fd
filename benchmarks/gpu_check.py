"""GPU paths, checked and timed against the CPU in the same run.

1. Agreement: ``cross_validated_encoding`` with ``torch_cuda`` against ``numpy`` on the same
   random data (RidgeCV and KernelRidgeCV): largest |r difference| and share of equal alphas.
2. Feature extraction: ``extract_word_features`` on cuda against cpu, same model (weights
   seeded from the default model's config, so nothing has to be downloaded), largest relative
   difference, and words per second on each device.
3. Scale: 100,000 targets in batches on ``torch_cuda`` (wall time, peak GPU memory), with the
   CPU ``torch`` backend timed on a slice of the same targets and extrapolated linearly.

Usage (on a machine with CUDA; the import path needs only numpy, torch, himalaya, transformers):
    PYTHONPATH=src python benchmarks/gpu_check.py [--config DIR_WITH_config.json_AND_tokenizer]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from brainalign.core.encoding.folds import leave_stories_out
from brainalign.core.encoding.ridge import alpha_grid, cross_validated_encoding


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def data(n, p, t, stories, seed=0):
    rng = np.random.default_rng(seed)
    lens = [n // stories] * stories
    lens[-1] += n - sum(lens)
    X = rng.standard_normal((n, p)).astype(np.float32)
    W = rng.standard_normal((p, t)).astype(np.float32) / np.sqrt(p)
    Y = (X @ W * rng.uniform(0, 0.5, t).astype(np.float32) + rng.standard_normal((n, t))).astype(np.float32)
    return X, Y, leave_stories_out(lens), np.repeat(np.arange(stories), lens)


def agreement() -> None:
    alphas = alpha_grid(1e-2, 1e8, 21)
    for p in (384, 1536):
        X, Y, folds, story = data(800, p, 2000, 4)
        ref, t_np = timed(lambda: cross_validated_encoding(X, Y, folds, story, alphas, backend="numpy"))
        cross_validated_encoding(X[:, :8], Y[:, :8], folds, story, alphas, backend="torch_cuda")  # warm-up
        gpu, t_gpu = timed(lambda: cross_validated_encoding(X, Y, folds, story, alphas, backend="torch_cuda"))
        print(f"[agree] p={p}: max|r_cuda - r_numpy| = {np.abs(gpu.r - ref.r).max():.2e}, "
              f"max|r2 diff| = {np.abs(gpu.r2 - ref.r2).max():.2e}, alphas equal "
              f"{np.mean(gpu.fold_alpha == ref.fold_alpha):.3f} (within one grid step "
              f"{np.mean(np.abs(np.log10(gpu.fold_alpha / ref.fold_alpha)) <= 0.51):.3f}), numpy {t_np:.2f}s, "
              f"torch_cuda {t_gpu:.2f}s (ratio {t_np / t_gpu:.1f})", flush=True)


def features(config_dir: str | None) -> None:
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from brainalign.core.representations.text import extract_word_features

    if config_dir is None:
        print("[features] skipped: no --config directory", flush=True)
        return
    tok = AutoTokenizer.from_pretrained(config_dir)
    cfg = AutoConfig.from_pretrained(config_dir)
    torch.manual_seed(0)
    model = AutoModel.from_config(cfg).eval()
    stories = Path(__file__).resolve().parents[1] / "src/brainalign/data/stories"
    words = " ".join(p.read_text() for p in sorted(stories.glob("*.txt"))).split()
    layers = list(range(cfg.num_hidden_layers + 1))
    res = {}
    for dev in ("cpu", "cuda"):
        model.to(dev)
        extract_word_features(words[:64], tok, model, layers, batch_size=64)  # warm-up
        res[dev], t = timed(lambda: extract_word_features(words, tok, model, layers, batch_size=64))
        print(f"[features] {dev}: {len(words)} words, 20 words of context, {len(layers)} layers: "
              f"{t:.2f}s ({len(words) / t:.0f} words/s)", flush=True)
    worst = max(np.abs(res["cuda"][k] - res["cpu"][k]).max() / np.abs(res["cpu"][k]).max() for k in layers)
    print(f"[features] largest |cuda - cpu| / max|cpu| over layers: {worst:.2e}", flush=True)


def scale(n_targets: int) -> None:
    import torch

    alphas = alpha_grid(1e-2, 1e8, 21)
    X, Y, folds, story = data(1200, 1536, n_targets, 4, seed=1)
    torch.cuda.reset_peak_memory_stats()
    cross_validated_encoding(X, Y[:, :8], folds, story, alphas, backend="torch_cuda")
    res, t_gpu = timed(lambda: cross_validated_encoding(X, Y, folds, story, alphas,
                                                        backend="torch_cuda", target_batch=20000))
    peak = torch.cuda.max_memory_allocated() / 2**30
    part = min(n_targets, 10000)
    _, t_cpu = timed(lambda: cross_validated_encoding(X, Y[:, :part], folds, story, alphas,
                                                      backend="torch", target_batch=20000))
    est = t_cpu * n_targets / part
    print(f"[scale] 1200 samples x 1536 features (KernelRidgeCV), {n_targets} targets in batches of "
          f"20000: torch_cuda {t_gpu:.1f}s, peak GPU memory {peak:.2f} GiB, finite r "
          f"{np.isfinite(res.r).mean():.3f}; torch CPU ({torch.get_num_threads()} threads) "
          f"{t_cpu:.1f}s for {part} -> {est:.0f}s for all (ratio {est / t_gpu:.1f})", flush=True)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="directory with a model config.json and tokenizer")
    ap.add_argument("--targets", type=int, default=100000)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script checks the GPU paths")
    print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    agreement()
    features(args.config)
    scale(args.targets)


if __name__ == "__main__":
    main()
