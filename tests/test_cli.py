"""``kedro run --params`` with lists (src/brainalign/cli.py replaces Kedro's parser)."""
from __future__ import annotations

import click
import pytest

from brainalign.cli import parse_params, split_top_level


def test_split_keeps_brackets_and_quotes_together():
    assert split_top_level("layers=[2,4],encoding.backend=torch") == ["layers=[2,4]", "encoding.backend=torch"]
    assert split_top_level("a={x: 1, y: [1,2]}, b='c,d'") == ["a={x: 1, y: [1,2]}", "b='c,d'"]
    with pytest.raises(click.BadParameter, match="unbalanced"):
        split_top_level("layers=[2,4")


def test_parse_gives_nested_typed_values():
    got = parse_params(None, None, "layers=[2,4],encoding.backend=torch,encoding.alphas={low: 1, n: 3}")
    assert got == {"layers": [2, 4], "encoding": {"backend": "torch", "alphas": {"low": 1, "n": 3}}}
    with pytest.raises(click.BadParameter, match="must be key=value"):
        parse_params(None, None, "layers")


def test_readme_example_reaches_the_parameters(tmp_path):
    """The README's list example is parsed (Kedro's own parser fails on it at the comma inside the
    list); a misspelled key beside it then stops the run in the parameter check, before any node."""
    from kedro_project import copy_project, run_kedro

    project = copy_project(tmp_path / "p", env="test")
    res = run_kedro(project, "run", "--env", "test", "--params", "layers=[0,4],encoding.backnd=torch", check=False)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0
    assert "must contain a key and a value" not in out
    assert "encoding.backnd (did you mean encoding.backend?)" in out
