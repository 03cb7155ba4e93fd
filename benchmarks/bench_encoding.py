"""Speed of the cross-validated encoding model, as ratios against references in the same run.

Reference 1: himalaya's own RidgeCV / KernelRidgeCV called directly on the same arrays with the
same outer folds, inner splits and alpha grid (numpy backend): the ratio is brainalign's overhead
(standardisation, scoring, target batching).
Reference 2: the numpy backend against the torch backend (CPU here; torch_cuda when a GPU exists).

Usage:  python benchmarks/bench_encoding.py [--targets 5000] [--samples 1200] [--repeat 2]
Prints one line per case; copy the figures to docs/performance.md.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from brainalign.core.encoding.folds import _Splits, inner_splits, leave_stories_out
from brainalign.core.encoding.ridge import alpha_grid, cross_validated_encoding, himalaya_backend, standardize


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def himalaya_direct(X, Y, folds, story, alphas, backend):
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    with himalaya_backend(backend) as bk:
        for train, test in folds:
            Xtr, Xte = standardize(X[train], X[test])
            Ytr, _ = standardize(Y[train], Y[test], scale=False)
            cv = _Splits(inner_splits(train, story, 5, 5))
            if Xtr.shape[1] > Xtr.shape[0]:
                m = KernelRidgeCV(alphas=alphas, kernel="linear", cv=cv)
            else:
                m = RidgeCV(alphas=alphas, cv=cv, solver_params={"warn": False})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(Xtr, Ytr)
            bk.to_numpy(m.predict(Xte))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1200)
    ap.add_argument("--targets", type=int, default=5000)
    ap.add_argument("--stories", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.samples
    lens = [n // args.stories] * args.stories
    lens[-1] += n - sum(lens)
    folds = leave_stories_out(lens)
    story = np.repeat(np.arange(args.stories), lens)
    alphas = alpha_grid(1e-2, 1e8, 21)
    try:
        import torch
        gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        gpu = False
    print(f"samples={n} targets={args.targets} stories={args.stories} folds={len(folds)} "
          f"alphas={len(alphas)} gpu={gpu}")
    for p in (384, 1536):
        X = rng.standard_normal((n, p)).astype(np.float32)
        W = rng.standard_normal((p, args.targets)).astype(np.float32) / np.sqrt(p)
        Y = (X @ W * 0.3 + rng.standard_normal((n, args.targets))).astype(np.float32)
        solver = "KernelRidgeCV" if p > n - n // args.stories else "RidgeCV"
        ref = best_of(lambda: himalaya_direct(X, Y, folds, story, alphas, "numpy"), args.repeat)
        ours = {b: best_of(lambda b=b: cross_validated_encoding(X, Y, folds, story, alphas, backend=b),
                           args.repeat)
                for b in (["numpy", "torch"] + (["torch_cuda"] if gpu else []))}
        line = (f"p={p:5d} ({solver:13s}) himalaya direct numpy {ref:7.2f}s | brainalign numpy "
                f"{ours['numpy']:7.2f}s (x{ours['numpy'] / ref:.2f} of direct)")
        for b in ours:
            if b != "numpy":
                line += f" | {b} {ours[b]:7.2f}s (numpy/{b} = {ours['numpy'] / ours[b]:.2f})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
