"""The LSTMVis export: every whitespace character named, unsigned layout, quoted YAML, the CLI."""

import subprocess
import sys

import h5py
import numpy as np

from charmodel.analysis.study import export_lstmvis, word_name
from charmodel.run.handle import Run

from .conftest import ROOT, make_random_run


def test_every_whitespace_character_gets_a_name_without_whitespace(tmp_path):
    vocab = " \t\n\u00a0\u0085\u2028ab"
    export_lstmvis(tmp_path, "a b\u00a0a\u2028", vocab, {(0, "c"): np.zeros((6, 3), np.float32)}, name="x")
    lines = (tmp_path / "words.dict").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(vocab)
    for i, line in enumerate(lines):
        parts = line.split()  # LSTMVis splits each line on whitespace
        assert len(parts) == 2 and parts[1] == str(i), line
    assert [word_name(c) for c in "\u00a0\u2028"] == ["<U+00A0>", "<U+2028>"]


def test_unsigned_layout_puts_the_negative_part_after_the_positive(tmp_path):
    v = np.array([[0.5, -2.0], [-0.25, 1.0]], np.float16)
    export_lstmvis(tmp_path, "ab", "ab", {(1, "c"): v, (1, "h"): v}, name="yes", unsigned=True)
    with h5py.File(tmp_path / "states.h5") as f:
        np.testing.assert_array_equal(f["states2"][:], [[0.5, 0, 0, 2.0], [0, 1.0, 0.25, 0]])
        assert f["output2"].shape == (2, 4)
    yml = (tmp_path / "lstm.yml").read_text()
    assert 'name: "yes"' in yml and "unsigned: true" in yml and 'description: "' in yml


def test_lstmvis_command_writes_the_files(tmp_path, small_text):
    run = make_random_run(tmp_path / "1.0", small_text)
    out = subprocess.run([sys.executable, "-m", "charmodel", "lstmvis", "--run", str(run), "--out",
                          str(tmp_path / "out"), "--layers", "2", "--kinds", "c", "--unsigned"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    val = Run.open(run).split()[1]
    with h5py.File(tmp_path / "out" / "states.h5") as f:
        assert list(f) == ["states2"] and f["states2"].shape == (len(val), 2 * 24)
        assert (f["states2"][:] >= 0).all()
    assert 'name: "1.0"' in (tmp_path / "out" / "lstm.yml").read_text()
    bad = subprocess.run([sys.executable, "-m", "charmodel", "lstmvis", "--run", str(run), "--out", str(tmp_path / "o"),
                          "--layers", "3"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--layers" in bad.stderr
