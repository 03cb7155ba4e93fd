"""The variance-partitioning bands of the parameters: parsed, checked, wired (no run)."""
from __future__ import annotations

import pytest

from brainalign.pipelines import analysis, encoding
from brainalign.pipelines.grid import Grid, condition_specs, partition_bands

PARAMS = {"layers": [0, 4], "conditions": {
    "pretrained": {"kind": "text", "model": "all-MiniLM-L6-v2"},
    "lowlevel": {"kind": "lowlevel", "features": ["word_rate"]}}}


def _bands(**vp):
    return partition_bands(vp, condition_specs(PARAMS))


def test_bands_are_parsed_and_wired_per_subject():
    bands = _bands(enabled=True, bands=[{"name": "low", "condition": "lowlevel"},
                                        {"name": "model", "condition": "pretrained", "layer": 4}])
    assert bands == (("low", "lowlevel", 0), ("model", "pretrained", 4))
    assert _bands(enabled=False, bands=[]) == ()
    grid = Grid(("sub-01", "sub-02"), ("pretrained", "lowlevel"), (0, 4), specs=tuple(condition_specs(PARAMS)),
                partition=bands)
    enc = encoding.create_pipeline(grid)
    fit = [n for n in enc.nodes if n.name.endswith("fit_partition")]
    assert sorted(n.name for n in fit) == ["sub-01.partition.fit_partition", "sub-02.partition.fit_partition"]
    node = next(n for n in fit if n.name.startswith("sub-01"))
    assert node.inputs[-2:] == ["lowlevel.layer_0.tr_features", "pretrained.layer_4.tr_features"]
    assert node.outputs == ["sub-01.partition.scores"]
    names = {n.name for n in analysis.create_pipeline(grid).nodes}
    assert {"collect_partition", "partition_summary", "plot_partition"} <= names


@pytest.mark.parametrize("bands,match", [
    ([{"condition": "pretrained", "layer": 4}], "2 or 3 bands"),
    ([{"condition": "nosuch"}, {"condition": "pretrained", "layer": 4}], "'nosuch' is not among"),
    ([{"condition": "lowlevel"}, {"condition": "pretrained", "layer": 3}], "layer 3 of 'pretrained' is not scored"),
    ([{"condition": "lowlevel"}, {"condition": "pretrained"}], "layer None of 'pretrained'"),
    ([{"name": "a", "condition": "lowlevel"}, {"name": "a", "condition": "pretrained", "layer": 0}], "share a name"),
    ([{"name": "a b", "condition": "lowlevel"}, {"condition": "pretrained", "layer": 0}], "band name 'a b'"),
    ({"low": {"condition": "lowlevel"}}, "must list"),
])
def test_bad_bands_are_named(bands, match):
    with pytest.raises(ValueError, match=match):
        _bands(enabled=True, bands=bands)
