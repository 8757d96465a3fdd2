"""Sparse probes: L1 logistic regressions over all cells, swept over their strength."""

import json

import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.analysis.cells import word_start
from charmodel.analysis.probe import probe
from charmodel.engine import Engine
from charmodel.run.handle import Run

from .test_cli import cli


def test_probe_curve_trades_cells_for_auc(random_run, monkeypatch):
    import charmodel.analysis.probe as pr

    monkeypatch.setattr(pr, "FIT_CHARS", 3000)
    engine = Engine.load(random_run)
    train, val = Run.open(random_run).split()
    result = probe(engine, train, val, word_start, strengths=(0.001, 0.01, 0.1, 1.0))
    counts = [d["cells"] for d in result["curve"]]
    assert counts == sorted(counts) and counts[0] < counts[-1]  # weaker regularisation, more cells
    assert all(0 <= d["auc"] <= 1 for d in result["curve"])
    chosen = result["chosen"]
    assert len(chosen["cells"]) == next(d["cells"] for d in result["curve"] if d["C"] == chosen["C"])
    assert abs(chosen["cells"][0]["weight"]) >= abs(chosen["cells"][-1]["weight"])
    assert max(d["auc"] for d in result["curve"]) >= result["single"]["auc"] - 0.05  # many cells do no worse


def test_a_constant_hypothesis_cannot_be_probed(random_run):
    engine = Engine.load(random_run)
    train, val = Run.open(random_run).split()
    with pytest.raises(CharModelError, match="constant over the fit text"):
        probe(engine, train, val, lambda text: np.zeros(len(text), bool))


def test_probe_cli(random_run):
    out = cli("probe", "--run", random_run, "--hypothesis", "word_start", "--layers", "2", "--kinds", "h", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert [set(r) for r in d["curve"][:1]] == [{"C", "cells", "auc"}]
    assert all(c["layer"] == 2 and c["kind"] == "h" for c in d["chosen"]["cells"])  # counted from 1
    bad = cli("probe", "--run", random_run, "--hypothesis", "line_position")
    assert bad.returncode == 2 and "yes/no hypothesis" in bad.stderr and bad.stderr.count("\n") == 1
    bad = cli("probe", "--run", random_run, "--explanation", "no such thing")
    assert bad.returncode == 2 and "atlas --run RUN --list" in bad.stderr
    # a composite explanation, pasted whole from --list, names its terms; one term, sign and all, is read
    bad = cli("probe", "--run", random_run, "--explanation", "first character of a word (−) · whitespace (+)")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "has 2 terms" in bad.stderr
    assert "'first character of a word'" in bad.stderr and "'whitespace'" in bad.stderr
    out = cli("probe", "--run", random_run, "--explanation", "first character of a word (−)", "--layers", "2",
              "--kinds", "h", "--json")
    assert out.returncode == 0, out.stderr
