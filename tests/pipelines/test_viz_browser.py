"""kedro-viz in a real browser: the built site of the tiny project, opened in headless Chromium
(the Debian package; the test is skipped where it is not installed), shows the graph (a screenshot
that is not blank, no size warning instead of it) with the pipelines, the collapsed top-level
namespaces and the datasets between them listed (tests/pipelines/test_stage_namespaces.py checks
the size of the default grid's top level)."""
from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1400,900", "--virtual-time-budget=20000", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_viz_opens_on_a_readable_graph(tmp_path):
    import matplotlib.image as mpimg

    from kedro_project import copy_project, run_kedro

    project = copy_project(tmp_path / "p", env="test")
    run_kedro(project, "viz", "build", env_vars={"KEDRO_ENV": "test"}, timeout=300)
    site = project / "build"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        shot = tmp_path / "viz.png"
        _chromium(f"--screenshot={shot}", url)
        dom = _chromium("--dump-dom", url).stdout
    finally:
        server.shutdown()
    # the screenshot is the rendered app, not a blank page: many colours, a large non-uniform area
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[0] >= 800 and img.shape[1] >= 1300
    colours = np.unique((img.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 200, len(colours)
    assert img.std() > 0.05
    # the pipeline selector, the collapsed top-level namespaces and the datasets between them are
    # listed, and the graph is drawn (no "chonky pipeline" warning in place of the graph)
    assert "__default__" in dom
    for name in ("data_prep", "grid", "analysis", "sub-01.responses", "encoding_scores", "report_index"):
        assert name in dom, name
    assert "chonky" not in dom
