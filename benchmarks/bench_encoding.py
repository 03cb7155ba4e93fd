"""Encoding solvers against a plain himalaya call, in the same run, on arrays of real shape.

For each outer fold (leave one story out) the reference standardises X, centres Y and calls
himalaya's ``RidgeCV`` (``KernelRidgeCV`` with a linear kernel when features outnumber training
rows) with the same inner splits and alpha grid, then predicts the held-out story; brainalign runs
``cross_validated_encoding`` (the project's whole encoding path: standardisation, nested CV,
scoring, target batches read from a memory map) with the solver asked for. Both are timed in the
same process, one after the other.

Printed (and written with ``--json FILE``): seconds of each, ``ratio_vs_himalaya`` (brainalign /
plain himalaya), ``ratio_vs_himalaya_numpy_lapack`` (brainalign / himalaya with its numpy
backend's decompositions routed to NumPy's LAPACK, as brainalign runs it: the solver's own gain
without the thread-pool effect; numpy backend only), ``same_alpha_share`` (targets x folds with
the same chosen alpha), ``max_abs_dr``
(largest |r difference| over targets with the same alphas in every fold), peak traced memory of
each (tracemalloc: numpy and torch CPU allocations) and ``memory_ratio`` (brainalign's peak over
the bytes of X and Y), the FLOP count of brainalign's solver (products and decompositions; the
usual 2mnk per product, 9p^3 per symmetric eigendecomposition) and its share of this machine's
measured float32 matmul rate.

    python benchmarks/bench_encoding.py --preset small --json bench.json
    python benchmarks/bench_encoding.py --preset lebel --backend torch_cuda     # on a GPU
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from brainalign.core.encoding.folds import _Splits, inner_splits, leave_stories_out
from brainalign.core.encoding.metrics import pearson_r
from brainalign.core.encoding.ridge import alpha_grid, cross_validated_encoding, himalaya_backend, standardize

PRESETS = {
    # 2 cores: 3,000 TRs in 5 stories (2,400 training TRs per fold), 768 features (192 x 4 delays)
    "small": dict(samples=3000, stories=5, features=768, targets=5000, alphas=10, batch=1000),
    # features outnumber training rows (the dual / kernel form): 1,200 TRs in 4 stories, 1,536 features
    "kernel": dict(samples=1200, stories=4, features=1536, targets=5000, alphas=10, batch=1000),
    # LeBel-sized: 9,000 training TRs (5 folds of 11,250), 3,072 features (768 x 4), 80,000 voxels
    "lebel": dict(samples=11250, stories=5, features=3072, targets=80000, alphas=10, batch=10000),
    # the suite-sized check of the script itself
    "tiny": dict(samples=600, stories=4, features=64, targets=300, alphas=10, batch=300),
}


def himalaya_reference(X, Y, folds, story, alphas, backend, n_targets_batch, plain=True):
    """Per fold: best alphas (n_targets,) and r of the held-out predictions.

    ``plain``: himalaya as a user calls it (its numpy backend decomposes with SciPy); else inside
    brainalign's ``himalaya_backend``, which routes the numpy backend's decompositions to NumPy's
    LAPACK (one OpenBLAS thread pool; core/encoding/ridge.py ``_numpy_lapack``).
    """
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    fold_alpha, fold_r = [], []
    with himalaya_backend(backend, numpy_lapack=not plain) as bk:
        for train, test in folds:
            Xtr, Xte = standardize(X[train], X[test])
            Ytr, Yte = standardize(np.asarray(Y[train]), np.asarray(Y[test]), scale=False)
            cv = _Splits(inner_splits(train, story, 5, 5))
            sp = {"n_targets_batch": n_targets_batch, "n_targets_batch_refit": n_targets_batch}
            if Xtr.shape[1] > Xtr.shape[0]:
                m = KernelRidgeCV(alphas=alphas, kernel="linear", cv=cv, solver_params=sp)
            else:
                m = RidgeCV(alphas=alphas, cv=cv, solver_params={**sp, "warn": False})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(Xtr, Ytr)
            pred = bk.to_numpy(m.predict(Xte))
            fold_alpha.append(bk.to_numpy(m.best_alphas_))
            fold_r.append(pearson_r(Yte, pred))
    return np.array(fold_alpha), np.array(fold_r)


def solver_flops(n_train_inner: list[int], n_val: list[int], n_train: int, n_test: int, p: int,
                 t: int, n_alphas: int) -> float:
    """FLOPs of the shared solver for one fold (module docstring of core/encoding/solvers.py)."""
    flops = 0.0

    def one(n, n_o):
        k = min(p, n)
        if p <= n:   # X^T X, eigh, Xo V, V^T X^T
            dec = 2 * n * p * p + 9 * p ** 3 + 2 * n_o * p * p + 2 * p * p * n
        else:        # X X^T, eigh, Xo X^T, (.) U
            dec = 2 * n * n * p + 9 * n ** 3 + 2 * n_o * n * p + 2 * n_o * n * n
        return dec, k

    for n, nv in zip(n_train_inner, n_val):
        dec, k = one(n, nv)
        flops += dec + 2 * k * n * t + n_alphas * (2 * nv * k * t + 3 * nv * t)
    dec, k = one(n_train, n_test)
    flops += dec + 2 * k * n_train * t + 2 * n_test * k * t
    return flops


def matmul_rate(n: int = 2048, repeat: int = 3) -> float:
    """Measured float32 GFLOP/s of a square matmul on this machine (numpy's BLAS)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _traced(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--solver", default="shared")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-memory", action="store_true", help="skip the traced runs (peak memory)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed runs of each (alternating); the fastest of each is compared (on a shared "
                         "machine the noise is additive: one run's ratio varied by +-0.05 on the kernel preset)")
    ap.add_argument("--no-second-reference", action="store_true",
                    help="skip the second reference (himalaya with NumPy's LAPACK, the numpy backend only)")
    ap.add_argument("--targets", type=int, default=None,
                    help="override the preset's number of targets (e.g. the lebel preset's TRs and features with "
                         "fewer voxels: the products scale with the targets, the decompositions do not, so "
                         "fewer targets weigh the decompositions more)")
    args = ap.parse_args(argv)
    cfg = dict(PRESETS[args.preset])
    if args.targets is not None:
        if args.targets < 1:
            ap.error("--targets must be >= 1")
        cfg["targets"] = int(args.targets)
        cfg["batch"] = min(cfg["batch"], int(args.targets))
    n, p, t = cfg["samples"], cfg["features"], cfg["targets"]
    rng = np.random.default_rng(0)
    lens = [n // cfg["stories"]] * cfg["stories"]
    lens[-1] += n - sum(lens)
    folds = leave_stories_out(lens)
    story = np.repeat(np.arange(cfg["stories"]), lens)
    alphas = alpha_grid(1e-1, 1e6, cfg["alphas"])
    X = rng.standard_normal((n, p)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        # responses as a memory map, as the pipeline reads them; filled in target blocks
        Y = np.lib.format.open_memmap(Path(tmp) / "Y.npy", mode="w+", dtype=np.float32, shape=(n, t))
        for s in range(0, t, 5000):
            k = min(5000, t - s)
            W = rng.standard_normal((p, k)).astype(np.float32) / np.sqrt(p)
            snr = np.exp(rng.uniform(np.log(0.01), np.log(2), k)).astype(np.float32)
            Y[:, s:s + k] = X @ W * np.sqrt(snr) + rng.standard_normal((n, k)).astype(np.float32)
        Y.flush()
        Y = np.load(Path(tmp) / "Y.npy", mmap_mode="r")
        data_bytes = X.nbytes + Y.nbytes
        rate = matmul_rate()

        def ref():
            return himalaya_reference(X, Y, folds, story, alphas, args.backend, cfg["batch"])

        def ref_lapack():
            return himalaya_reference(X, Y, folds, story, alphas, args.backend, cfg["batch"], plain=False)
        # the second reference (himalaya with NumPy's LAPACK) only differs on the numpy backend
        second = args.backend == "numpy" and not args.no_second_reference

        def ours():
            return cross_validated_encoding(X, Y, folds, story, alphas, backend=args.backend,
                                            target_batch=cfg["batch"], solver=args.solver)
        # warm-up on a few targets (imports, thread pools), then timed runs without tracing, then
        # the same runs under tracemalloc for the peaks (tracing slows Python-level allocation)
        himalaya_reference(X, Y[:, :8], folds, story, alphas, args.backend, 8)
        cross_validated_encoding(X, Y[:, :8], folds, story, alphas, backend=args.backend, solver=args.solver)
        if args.repeat < 1:
            ap.error("--repeat must be >= 1")
        t_ref = t_ours = t_ref2 = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            ref_alpha, ref_r = ref()
            t_ref = min(t_ref, time.perf_counter() - t0)
            if second:
                t0 = time.perf_counter()
                ref_lapack()
                t_ref2 = min(t_ref2, time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = ours()
            t_ours = min(t_ours, time.perf_counter() - t0)
        mem_ref = _traced(ref)[2] if not args.no_memory else 0
        mem_ours = _traced(ours)[2] if not args.no_memory else 0
    same = np.isclose(res.fold_alpha, ref_alpha, rtol=1e-5)
    ok = same.all(0)
    dr = float(np.abs(res.r[ok] - ref_r.mean(0)[ok]).max()) if ok.any() else float("nan")
    inner = [inner_splits(train, story, 5, 5) for train, _ in folds]
    flops = sum(solver_flops([len(a) for a, _ in sp], [len(b) for _, b in sp], len(tr), len(te), p, t,
                             len(alphas)) for sp, (tr, te) in zip(inner, folds))
    out = {"preset": args.preset, "solver": args.solver, "backend": args.backend,
           "samples": n, "features": p, "targets": t, "folds": len(folds), "alphas": len(alphas),
           "repeat": args.repeat, "himalaya_s": round(t_ref, 2), "brainalign_s": round(t_ours, 2),
           "ratio_vs_himalaya": round(t_ours / t_ref, 3),
           "himalaya_numpy_lapack_s": round(t_ref2, 2) if second else None,
           "ratio_vs_himalaya_numpy_lapack": round(t_ours / t_ref2, 3) if second else None,
           "same_alpha_share": round(float(same.mean()), 5), "max_abs_dr": dr,
           "peak_mb_himalaya": round(mem_ref / 2 ** 20, 1), "peak_mb_brainalign": round(mem_ours / 2 ** 20, 1),
           "data_mb": round(data_bytes / 2 ** 20, 1), "memory_ratio": round(mem_ours / data_bytes, 3),
           "solver_gflop": round(flops / 1e9, 1), "matmul_gflops": round(rate, 1),
           "share_of_matmul_rate": round(flops / t_ours / 1e9 / rate, 3)}
    for k, v in out.items():
        print(f"{k:>22}: {v}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
