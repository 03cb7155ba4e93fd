"""Method variants (``task_tuning.variants``): one run tunes several proportions of parameters of
one method, each variant its own condition ``<base>-<variant>-<task>`` whose method is the
registered one (what the tuning comparison groups by)."""
from __future__ import annotations

import pytest

from brainalign.pipelines.grid import tuned_conditions, tuning_cells, tuning_method

VARIANTS = {"partial-10": {"method": "partial", "fraction": 0.10},
            "partial-30": {"method": "partial", "fraction": 0.30}}


def _tt(**kw):
    tt = {"enabled": True, "base_model": "all-MiniLM-L6-v2", "tasks": ["sst2"],
          "methods": ["full", "partial-10", "partial-30"], "method_params": {"partial": {"top_layers": 2}},
          "variants": VARIANTS}
    tt.update(kw)
    return tt


def test_variants_are_conditions_of_their_method():
    tt = _tt()
    assert tuning_cells(tt) == (("all-MiniLM-L6-v2-full-sst2", "sst2", "full"),
                                ("all-MiniLM-L6-v2-partial-10-sst2", "sst2", "partial-10"),
                                ("all-MiniLM-L6-v2-partial-30-sst2", "sst2", "partial-30"))
    conds = tuned_conditions({"task_tuning": tt})
    assert conds["all-MiniLM-L6-v2-partial-10-sst2"]["method"] == "partial"
    assert conds["all-MiniLM-L6-v2-full-sst2"]["method"] == "full"
    # the variant's parameters replace the method's (top_layers and fraction together are an error)
    assert tuning_method(tt, "partial-10") == ("partial", {"fraction": 0.10})
    assert tuning_method(tt, "partial") == ("partial", {"top_layers": 2})


@pytest.mark.parametrize("variants, match", [
    ({"partial-x": {"method": "nope"}}, "must be one of"),
    ({"partial": {"method": "partial", "fraction": 0.1}}, "must differ"),
    ({"part/x": {"method": "partial", "fraction": 0.1}}, "letters, digits"),
])
def test_bad_variants_are_named(variants, match):
    with pytest.raises(ValueError, match=match):
        tuning_cells(_tt(methods=["full"], variants=variants))


def test_unknown_method_still_an_error():
    with pytest.raises(ValueError, match="partial-20"):
        tuning_cells(_tt(methods=["partial-20"]))


@pytest.mark.slow
def test_tune_cell_variant_fractions(shared_data):
    """Two variants of partial tune different shares of the parameters; the result row keeps the
    registered method and names the variant's condition."""
    from brainalign.pipelines.task_tuning.nodes import tune_cell

    rows = {}
    for name in ("partial-10", "partial-30"):
        params = _tt(nlu_root=str(shared_data / "nlu"), max_examples={"train": 16, "dev": 16}, epochs=1,
                     batch_size=8, max_length=32, lr={"partial": 1e-4})
        _, rows[name] = tune_cell(params, task="sst2", method=name)
    for name, row in rows.items():
        assert row["method"] == "partial" and row["condition"] == f"all-MiniLM-L6-v2-{name}-sst2"
    f10, f30 = rows["partial-10"]["trainable_fraction"], rows["partial-30"]["trainable_fraction"]
    assert 0.10 <= f10 < f30, (f10, f30)   # the smallest top block holding >= the fraction of the backbone
