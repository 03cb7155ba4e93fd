"""The report index: one Markdown page that shows every figure of a run and the head of every table.

:func:`index_markdown` takes the analysis outputs as loaded by their datasets (figures as
:class:`~brainalign.io.datasets.FigureFile`, tables as DataFrames, JSON as dicts, HTML as text,
NIfTI images) and writes the page that ``data/08_reporting/index.md`` holds. It lives beside the
figures, so they are linked by file name.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _short(v: Any) -> Any:
    """``v`` with every float (also inside dicts and lists) rounded to 4 significant digits."""
    if isinstance(v, float):
        return v if math.isnan(v) or math.isinf(v) else float(f"{v:.4g}")
    if isinstance(v, dict):
        return {k: _short(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_short(x) for x in v]
    return v


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    return str(_short(v)).replace("|", "\\|").replace("\n", " ")


def markdown_head(table, max_rows: int = 8, max_cols: int = 12) -> str:
    """The first ``max_rows`` rows and ``max_cols`` columns of a DataFrame as a Markdown table
    (floats to 4 significant digits)."""
    head = table.iloc[:max_rows, :max_cols]
    cols = [str(c) for c in head.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in head.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _is_figure(v: Any) -> bool:
    return all(hasattr(v, a) for a in ("path", "width", "height"))


def describe_item(name: str, value: Any, max_rows: int = 8) -> list[str]:
    """Markdown lines for one output: a figure embedded, a table's size and head, a dict's first
    entries, an HTML page's size, an image's shape."""
    out = [f"## {name}", ""]
    if _is_figure(value):
        file = Path(value.path).name
        out += [f"![{name}]({file})", "", f"`{file}`, {value.width} x {value.height} px", ""]
    elif hasattr(value, "iloc") and hasattr(value, "columns"):
        n, m = value.shape
        shown = f" (the first {min(n, max_rows)} rows" + (f", {min(m, 12)} of {m} columns" if m > 12 else "") + ")"
        out += [f"{n} row{'s' * (n != 1)} x {m} column{'s' * (m != 1)}" + (shown if n > max_rows or m > 12 else ""),
                ""]
        if n:
            out += [markdown_head(value, max_rows), ""]
    elif isinstance(value, dict):
        items = list(value.items())
        out += [f"{len(items)} entries" + (f" (the first {max_rows * 2})" if len(items) > max_rows * 2 else ""), ""]
        out += [f"- `{k}`: {_cell(v)}" for k, v in items[:max_rows * 2]] + [""]
    elif isinstance(value, str):
        kind = "HTML page" if "<html" in value[:2000].lower() else "text"
        out += [f"{kind}, {len(value.encode()) / 1024:.0f} kB", ""]
    elif hasattr(value, "shape") and hasattr(value, "header"):
        out += [f"image, shape {tuple(int(x) for x in value.shape)}, {value.get_data_dtype()}", ""]
    else:
        out += [f"({type(value).__name__})", ""]
    return out


def index_markdown(items: dict[str, Any], title: str, max_rows: int = 8) -> str:
    """The report index of ``items`` (dataset name -> loaded output): figures first, then tables,
    then the rest, each group in name order."""
    def group(v: Any) -> int:
        return 0 if _is_figure(v) else 1 if hasattr(v, "columns") else 2

    names = sorted(items, key=lambda k: (group(items[k]), k))
    n_fig = sum(group(items[k]) == 0 for k in names)
    n_tab = sum(group(items[k]) == 1 for k in names)

    def count(n: int, what: str) -> str:
        return f"{n} {what}{'s' * (n != 1)}"

    lines = [f"# {title}", "", f"{count(n_fig, 'figure')}, {count(n_tab, 'table')} and "
             f"{count(len(names) - n_fig - n_tab, 'other output')} of the analysis, by their catalog names "
             "(summary.md has the encoding summary; metrics.json what MLflow logs).", ""]
    for k in names:
        lines += describe_item(k, items[k], max_rows)
    return "\n".join(lines).rstrip() + "\n"
