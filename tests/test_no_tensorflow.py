"""Sampling, inspection, evaluation and cell analysis must run where TensorFlow cannot be imported."""

import subprocess
import sys

from .conftest import ROOT

SCRIPT = r"""
import sys
sys.modules["tensorflow"] = None  # any `import tensorflow` now raises ImportError
sys.modules["keras"] = None
from charmodel.engine import Engine, inspect
from charmodel.engine.sampling import generate
from charmodel.engine.scoring import evaluate
from charmodel.analysis.cells import batched_activations, feature, rank_cells
from charmodel.analysis import study
from charmodel.view import charts
from charmodel.view import render
from charmodel.training import jobs
run = sys.argv[1]
e = Engine.load(run)
print(generate(e, "Alice ", 50, 0.5, seed=1)[0] != "")
print(inspect(e, "Alice was here").values(1, "f").shape)
print(evaluate(run)["bpc"] > 0)
print(len(rank_cells(batched_activations(e, "Alice was here, `she said.'"), feature("quote", "Alice was here, `she said.'"))))
from charmodel.analysis import ablate
from charmodel.exchange import archive
from charmodel.analysis import atlas
from charmodel.analysis import compare
from charmodel.analysis import explain
from charmodel.analysis import probe
from charmodel.analysis import saliency  # the analyses, the archive
print(ablate.ablate(e, "Alice was here, `she said.'", 1, "c", 3)["delta"] is not None)
print(len(saliency.attribute(e, "Alice was here", 10, {"next": True}, "gxi")["scores"]))
from charmodel.cli import main
main(["generate", "--run", run, "--length", "20"])
"""


def test_sampling_and_inspection_never_import_tensorflow(random_run):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(random_run)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:6] == ["True", "(14, 24)", "True", str(2 * 2 * 24), "True", "11"]
