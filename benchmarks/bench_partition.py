"""Variance partitioning: the kernel (dual) form of the banded-ridge random search against the
primal form, on the same data, in the same run (core/encoding/partition.py switches to the dual
form when the bands hold more features than training rows).

    python benchmarks/bench_partition.py --n 260 --features 40 1536 --targets 776 --n-iter 20

Prints the seconds of each form for one fold and their ratio, and the largest difference between
their predictions.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from brainalign.core.encoding.partition import _fit_subset
from brainalign.core.encoding.ridge import alpha_grid, himalaya_backend


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=260, help="training rows")
    ap.add_argument("--test", type=int, default=130)
    ap.add_argument("--features", type=int, nargs="+", default=[40, 1536])
    ap.add_argument("--targets", type=int, default=776)
    ap.add_argument("--n-iter", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    Xtr = [rng.standard_normal((args.n, p)).astype("float32") for p in args.features]
    Xte = [rng.standard_normal((args.test, p)).astype("float32") for p in args.features]
    Y = rng.standard_normal((args.n, args.targets)).astype("float32")
    edges = np.linspace(0, args.n, 6).astype(int)
    pos = np.arange(args.n)
    splits = [(pos[(pos < a) | (pos >= b)], pos[(pos >= a) & (pos < b)]) for a, b in zip(edges[:-1], edges[1:])]
    alphas = alpha_grid(1e-2, 1e8, 21).astype("float32")
    out = {}
    with himalaya_backend("numpy"):
        for dual in (False, True):
            t = time.perf_counter()
            pred = _fit_subset(Xtr, Xte, Y, alphas, splits, args.n_iter, (0.1, 1.0), 0, args.targets, dual=dual)[0]
            out[dual] = (time.perf_counter() - t, np.asarray(pred))
    print(f"{args.n} rows x {sum(args.features)} features ({args.features}), {args.targets} targets, "
          f"n_iter {args.n_iter}")
    print(f"primal {out[False][0]:.1f} s, dual {out[True][0]:.1f} s, primal / dual = {out[False][0] / out[True][0]:.2f}; "
          f"max |prediction difference| {np.abs(out[False][1] - out[True][1]).max():.2e}")


if __name__ == "__main__":
    main()
