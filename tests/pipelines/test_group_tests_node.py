"""The analysis node that writes group_tests.csv: contrasts chosen from the score table (each
condition's best layer against its null, the first condition against the others), q over the
whole table; fewer than 3 subjects give an empty table and a warning."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from brainalign.pipelines.analysis.nodes import group_tests_table


def _scores(n_subjects: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        for cond, layer, effect in (("pretrained", 2, 0.2), ("pretrained", 4, 0.1), ("random_init", 1, 0.05)):
            for roi in ("A", "B"):
                for t in range(4):
                    r = (effect if roi == "A" else 0.0) + 0.03 * rng.standard_normal()
                    rows.append({"subject": f"s{s}", "condition": cond, "layer": layer, "roi": roi,
                                 "target": f"{roi}{t}", "r": r, "r_null": 0.01 * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_contrasts_and_family_wide_q():
    out = group_tests_table(_scores(8), {"n_perm": 1000, "n_boot": 500})
    assert set(out["contrast"]) == {"pretrained L2 - null", "random_init L1 - null",
                                    "pretrained L2 - random_init L1"}
    assert len(out) == 6
    a = out.set_index(["contrast", "roi"])
    assert a.loc[("pretrained L2 - null", "A"), "q"] < 0.05
    assert a.loc[("pretrained L2 - null", "B"), "q"] > 0.05
    # pretrained at its best layer minus random_init, subject means recomputed with pandas
    s = _scores(8)
    m = s[s.roi == "A"].groupby(["condition", "layer", "subject"])["r"].mean()
    diff = (m.loc[("pretrained", 2)] - m.loc[("random_init", 1)]).mean()
    assert np.isclose(a.loc[("pretrained L2 - random_init L1", "A"), "mean"], diff)


def test_too_few_subjects_give_an_empty_table_and_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        out = group_tests_table(_scores(2))
    assert len(out) == 0 and "at least 3 subjects" in caplog.text
