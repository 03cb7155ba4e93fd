"""Project commands: Kedro's own ``kedro run``, with ``--params`` that accepts lists.

Kedro splits the value of ``--params`` on every comma, so ``--params "layers=[2,4]"`` fails
("Item `4]` must contain a key and a value"). Kedro loads a project's ``cli.py`` and lets its
commands replace the built-in ones; this module gives ``run`` a ``--params`` parser that splits
only on commas outside brackets, braces and quotes. Everything else about ``kedro run`` is
Kedro's, unchanged.
"""
from __future__ import annotations

import copy

import click
from kedro.framework.cli.project import run as _kedro_run
from omegaconf import OmegaConf


def split_top_level(value: str) -> list[str]:
    """Split ``value`` on commas that are not inside ``[]``, ``{}``, ``()`` or quotes."""
    items, depth, quote, cur = [], 0, "", []
    for ch in value:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur))
    if depth != 0 or quote:
        raise click.BadParameter(f"unbalanced brackets or quotes in {value!r}", param_hint="--params")
    return [i.strip() for i in items if i.strip()]


def parse_params(ctx: click.Context | None, param, value) -> dict:
    """``key=value[,key=value...]`` -> nested dict, values parsed as YAML by OmegaConf (so
    ``layers=[2,4]`` is a list and ``encoding.alphas={low: 1, high: 1e4}`` a map)."""
    if isinstance(value, dict):
        return value
    if not value:
        return {}
    dot_list = []
    for item in split_top_level(value):
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"item {item!r} must be key=value", param_hint="--params")
        dot_list.append(f"{key.strip()}={val}")
    return OmegaConf.to_container(OmegaConf.from_dotlist(dot_list))


run = copy.copy(_kedro_run)
run.params = [copy.copy(p) for p in _kedro_run.params]
for _p in run.params:
    if _p.name == "params":
        _p.callback = parse_params
        _p.help = ("Parameters to override, key=value pairs separated by commas; lists and maps "
                   "in brackets, e.g. \"layers=[2,4],encoding.backend=torch\"")


@click.group(name="brainalign")
def cli() -> None:
    """brainalign's project commands."""


cli.add_command(run, "run")
