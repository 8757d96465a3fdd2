"""The free-GPU notebook runs, top to bottom, on the CPU with a tiny configuration (nbclient and a
real Jupyter kernel), so that it cannot rot. The parameters are overridden as papermill does: a
cell inserted after the one tagged "parameters"."""

import json
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from charmodel.run import folder as runfolder

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "train_on_gpu.ipynb"


pytestmark = pytest.mark.slow  # the notebook, executed


def test_the_gpu_notebook_trains_evaluates_and_exports_on_a_cpu(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    run, archive = tmp_path / "nb-run", tmp_path / "nb-run.zip"
    text = tmp_path / "alice-60k.txt"
    text.write_bytes((ROOT / "data" / "alice.txt").read_bytes()[:60000])
    overrides = nbformat.v4.new_code_cell(
        f"INSTALL = False\nTEXT = {str(text)!r}\nRUN = {str(run)!r}\nARCHIVE = {str(archive)!r}\n"
        'TRAIN_FLAGS = "--layers 1 --units 32 --embedding 8 --epochs 1 --batch-size 16 --seq-len 40"'
    )
    nb.cells.insert(tagged[0] + 1, overrides)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()

    outputs = {i: "".join(o.get("text", "") for o in c.get("outputs", [])) for i, c in enumerate(nb.cells)
               if c.cell_type == "code"}
    everything = "\n".join(outputs.values())
    assert "already inside a checkout" in everything
    assert "GPU(s):" in everything
    assert "--strategy auto" in everything and "epoch 1: train" in everything
    assert [r["epoch"] for r in runfolder.read_history(run)] == [1]
    evaluated = next(outputs[i] for i, c in enumerate(nb.cells) if '"evaluate"' in c.source)
    scored = json.loads(evaluated)
    assert scored["run"] == str(run) and 0 < scored["bpc"] < 8
    with zipfile.ZipFile(archive) as z:
        assert any(name.endswith("best.npz") for name in z.namelist())
    assert f"archive written: {archive}" in everything
