"""brain_maps.max_q: the map shows only targets whose per-target q passes (planted q values)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.pipelines.analysis.nodes import _map_values


def _scores():
    rows = []
    qs = {"t0": [0.01, 0.01, 0.01], "t1": [0.01, 0.2, 0.01], "t2": [0.2, 0.2, 0.01], "t3": [0.5, 0.5, 0.5]}
    for t, q in qs.items():
        for s, qq in enumerate(q):
            rows.append({"subject": f"s{s}", "condition": "c", "layer": 1, "target": t, "r": 0.1 * (s + 1), "q": qq})
    return pd.DataFrame(rows)


def test_max_q_masks_targets_by_share_of_significant_subjects():
    sc = _scores()
    all_, _ = _map_values(sc, {})
    assert all_.notna().all() and all_["t0"] == pytest.approx(0.2)
    half, what = _map_values(sc, {"max_q": 0.05})   # >= 50 % of subjects: t0 (3/3), t1 (2/3)
    assert half.notna().to_dict() == {"t0": True, "t1": True, "t2": False, "t3": False}
    assert "q < 0.05" in what
    every, _ = _map_values(sc, {"max_q": 0.05, "min_share_significant": 1.0})
    assert every.notna().sum() == 1 and np.isfinite(every["t0"])
    one, _ = _map_values(sc, {"max_q": 0.05}, subject="s1")
    assert one.notna().to_dict() == {"t0": True, "t1": False, "t2": False, "t3": False}
    with pytest.raises(ValueError, match="no q column"):
        _map_values(sc.drop(columns="q"), {"max_q": 0.05})
