"""The walkthrough notebook runs top to bottom on the real Alice data (code cells executed in order)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ALICE = ROOT.parent / "shared" / "data" / "alice2016"


@pytest.mark.slow
@pytest.mark.skipif(not ALICE.is_dir(), reason=f"real data not found at {ALICE}")
def test_walkthrough_runs(monkeypatch):
    monkeypatch.setenv("BRAINALIGN_ALICE_DIR", str(ALICE))
    monkeypatch.chdir(ROOT / "notebooks")
    nb = json.loads((ROOT / "notebooks" / "walkthrough.ipynb").read_text())
    ns: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "walkthrough.ipynb", "exec"), ns)
    res, Y = ns["res"], ns["Y"]
    assert Y.shape == (362, 6)
    assert np.isfinite(res.r).all() and res.r.shape == (6,)
    assert len(ns["words"]) == len(ns["word_feats"][ns["LAYER"]])
