"""docs/keras.md's walkthrough, "Explore the post's own model", run as written (smaller), then its
quotation cell opened on the Visualise page."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from .conftest import ROOT

SMALL = ["--units", "16", "--chars", "8000", "--epochs", "1", "--stride", "9"]  # the same shape, in seconds


def walkthrough(title: str = "Explore the post's own model") -> list[str]:
    doc = (ROOT / "docs" / "keras.md").read_text(encoding="utf-8")
    section = doc.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for line in block.splitlines() if line.strip()]


@pytest.mark.slow  # trains the post's shape with Keras
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
    made, imported, scored, ranked, explained = printed
    assert all((tmp_path / f"post.{s}").is_file() for s in ("keras", "h5", "txt"))
    assert "checked against Keras" in imported and "windows of 100 characters" in imported
    assert "from windows of 100 characters" in scored and "stateful" in scored
    assert (tmp_path / "weights" / "post" / "atlas-best.npz").is_file() and "wrote" in explained
    # evaluate's windowed figure is Keras' own on the same windows: t from the 100 before it, t >= 100
    import keras
    import numpy as np

    from charmodel.run import folder as runfolder
    from charmodel.run.handle import Run

    run = tmp_path / "weights" / "post"
    vocab = runfolder.read_config(run)["vocab"]
    ids = np.array([vocab.index(c) for c in Run.open(run).split()[1]])
    x = np.stack([ids[t - 100 : t] for t in range(100, len(ids))]) / len(vocab)
    p = np.asarray(keras.saving.load_model(tmp_path / "post.keras").predict(x[..., None], verbose=0), np.float64)
    theirs = -np.log2(p[np.arange(len(p)), ids[100:]]).mean()
    assert abs(float(scored.split()[0]) - theirs) < 2e-3, (scored, theirs)
    best = re.search(r"layer (\d) (h|c) cell +(\d+)", ranked)
    assert best, ranked
    layer, kind, cell = best.groups()
    monkeypatch.setenv("CHARMODEL_WEIGHTS", str(tmp_path / "weights"))
    at = app(run="post", layer=layer, cell=cell, kind=kind)
    at.switch_page("pages/visualise.py").run()
    no_errors(at)
    assert f"layer {layer} cell {cell} {kind}" in htmls(at)
    assert at.get("vega_lite_chart") or at.get("arrow_vega_lite_chart")  # the cell's line plot beside the text


@pytest.mark.slow  # Keras checks the import
def test_explore_a_textgenrnn_model_as_the_docs_say(tmp_path):
    """The download is replaced by the copy in tests/data/textgenrnn (the same bytes as the package's
    2.0.0), and Alice by its first 30,000 characters."""
    import shutil

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alice.txt").write_text((ROOT / "data" / "alice.txt").read_text(encoding="utf-8")[:30000])
    lines = walkthrough("Explore a textgenrnn model")
    assert lines[0].startswith("pip download textgenrnn==2.0.0") and lines[1] == "tar xzf textgenrnn-2.0.0.tar.gz"
    shutil.copytree(ROOT / "tests" / "data" / "textgenrnn", tmp_path / "textgenrnn-2.0.0" / "textgenrnn")
    printed = []
    for line in lines[2:]:
        argv = shlex.split(line)
        assert argv[:3] == ["python", "-m", "charmodel"], line
        done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env,
                              timeout=600)
        assert done.returncode == 0, (line, done.stderr[-2000:])
        printed.append(done.stdout)
    imported, generated, scored, explained = printed
    assert "checked against Keras" in imported and "(textgenrnn, 2x128, windows of 40 characters" in imported
    assert len(generated.strip()) > 100
    assert "bits per character from windows of 40 characters" in scored and "padded" in scored
    assert (tmp_path / "weights" / "textgenrnn" / "atlas-best.npz").is_file() and "wrote" in explained


def test_the_python_api_page_runs_as_written(monkeypatch, capsys):
    """docs/api.md's Python blocks, in order, in one namespace, from the repository root."""
    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(ROOT)
    namespace = {}
    for n, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md block {n + 1}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "alice: 2 x 512 LSTM over 72 characters" in printed
    assert "coloured by layer 2 c cell 380" in printed and "cells explained" in printed
    assert namespace["result"]["bpc_ablated"] > namespace["result"]["bpc"]
