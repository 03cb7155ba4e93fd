"""The report index (core.reporting) and the figure dataset whose load gives the saved file."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from kedro.io import DatasetError  # noqa: E402

from brainalign.core.reporting import index_markdown  # noqa: E402
from brainalign.io.datasets import FigureDataset  # noqa: E402


def test_figure_dataset_loads_the_saved_file_with_its_pixel_size(tmp_path):
    ds = FigureDataset(filepath=str(tmp_path / "f.png"), save_args={"dpi": 50})
    fig = plt.figure(figsize=(4.2, 3.0))
    fig.add_subplot().plot([0, 1], [1, 0])
    ds.save(fig)
    plt.close(fig)
    got = ds.load()
    height, width = mpimg.imread(tmp_path / "f.png").shape[:2]      # the reference: the decoded image
    assert (got.width, got.height) == (width, height) == (210, 150)
    assert got.path.endswith("f.png")
    (tmp_path / "g.png").write_text("not a png")
    with pytest.raises(DatasetError, match="g.png: not a PNG"):
        FigureDataset(filepath=str(tmp_path / "g.png")).load()
    with pytest.raises(DatasetError, match="no such figure"):
        FigureDataset(filepath=str(tmp_path / "missing.png")).load()


def test_index_embeds_figures_and_shows_table_heads(tmp_path):
    ds = FigureDataset(filepath=str(tmp_path / "roi_bars.png"))
    fig = plt.figure(figsize=(2, 2))
    ds.save(fig)
    plt.close(fig)
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"roi": [f"R{i}" for i in range(20)], "mean_r": rng.normal(size=20)})
    md = index_markdown({"tests": table, "roi_bar_plot": ds.load(), "claims": {"a": 0.5, "b": "yes", "c": {"d": [0.123456, 2.0]}},
                         "viewer": "<html><body>x</body></html>", "empty": table.iloc[:0]}, "report: x")
    lines = md.splitlines()
    assert lines[0] == "# report: x"
    assert "1 figure, 2 tables and 2 other outputs" in md
    # figures first, linked by file name
    assert md.index("## roi_bar_plot") < md.index("## empty") < md.index("## tests") < md.index("## claims")
    assert "![roi_bar_plot](roi_bars.png)" in lines
    assert "20 rows x 2 columns (the first 8 rows)" in md
    rows = [ln for ln in lines if ln.startswith("| R")]
    assert len(rows) == 8
    assert rows[3] == f"| R3 | {table['mean_r'][3]:.4g} |"
    assert "0 rows x 2 columns" in md and "- `a`: 0.5" in md and "- `b`: yes" in md and "- `c`: {'d': [0.1235, 2.0]}" in md and "HTML page" in md
