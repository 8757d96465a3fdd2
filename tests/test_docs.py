"""docs/keras.md's walkthrough, "Explore the post's own model", run as written (smaller), then its
quotation cell opened on the Visualise page."""

import os
import re
import shlex
import subprocess
import sys

from .conftest import ROOT

SMALL = ["--units", "16", "--chars", "8000", "--epochs", "1", "--stride", "9"]  # the same shape, in seconds


def walkthrough() -> list[str]:
    doc = (ROOT / "docs" / "keras.md").read_text(encoding="utf-8")
    section = doc.split("## Explore the post's own model", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for line in block.splitlines() if line.strip()]


def test_explore_the_posts_own_model_as_the_docs_say(tmp_path, monkeypatch):
    from .test_app import app, htmls, no_errors

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    printed = []
    for line in walkthrough():
        argv = shlex.split(line)
        assert argv[0] == "python", line
        argv[0] = sys.executable
        if argv[1] == "tools/post_model.py":
            argv[1] = str(ROOT / "tools" / "post_model.py")
            argv[argv.index("--text") + 1] = str(ROOT / argv[argv.index("--text") + 1])
            argv += SMALL
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, (line, done.stderr[-2000:])
        printed.append(done.stdout)
    made, imported, scored, ranked = printed
    assert all((tmp_path / f"post.{s}").is_file() for s in ("keras", "h5", "txt"))
    assert "checked against Keras" in imported and "windows of 100 characters" in imported
    assert "from windows of 100 characters" in scored and "stateful" in scored
    best = re.search(r"layer (\d) (h|c) cell +(\d+)", ranked)
    assert best, ranked
    layer, kind, cell = best.groups()
    monkeypatch.setenv("CHARMODEL_WEIGHTS", str(tmp_path / "weights"))
    at = app(run="post", layer=layer, cell=cell, kind=kind)
    at.switch_page("pages/visualise.py").run()
    no_errors(at)
    assert f"layer {layer} cell {cell} {kind}" in htmls(at)
    assert at.get("vega_lite_chart") or at.get("arrow_vega_lite_chart")  # the cell's line plot beside the text
