"""benchmarks/bench_encoding.py runs and writes the keys the performance issue asks for (no
timing is checked: the script prints ratios, the suite only checks that it works and agrees)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_preset_writes_json(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_encoding", ROOT / "benchmarks" / "bench_encoding.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "b.json"
    mod.main(["--preset", "tiny", "--no-memory", "--json", str(out)])
    got = json.loads(out.read_text())
    assert {"ratio_vs_himalaya", "same_alpha_share", "max_abs_dr", "memory_ratio"} <= set(got)
    assert got["same_alpha_share"] >= 0.99 and got["max_abs_dr"] < 1e-4
    assert got["ratio_vs_himalaya"] > 0
    # the second reference (himalaya with NumPy's LAPACK) is timed on the numpy backend
    assert got["ratio_vs_himalaya_numpy_lapack"] > 0 and got["himalaya_numpy_lapack_s"] > 0


def test_plain_reference_keeps_scipys_lapack_and_the_second_uses_numpys():
    """The reference called plain runs himalaya as a user does (SciPy's decompositions); the
    second inside brainalign's block (NumPy's). Checked by the function each one sees."""
    import numpy as np
    import scipy.linalg

    spec = importlib.util.spec_from_file_location("bench_encoding", ROOT / "benchmarks" / "bench_encoding.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    seen = []
    with mod.himalaya_backend("numpy", numpy_lapack=False) as bk:
        seen.append(bk.eigh)
    with mod.himalaya_backend("numpy") as bk:
        seen.append(bk.eigh)
    assert seen == [scipy.linalg.eigh, np.linalg.eigh]
