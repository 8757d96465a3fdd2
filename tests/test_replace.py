"""Explained cells replaced by their explanations (atlas --replace): the per-step clamp carries
exactly what it is given, the mean ablation is `ablate`'s, and the CLI says it in one line."""

import json

import numpy as np
import pytest

from charmodel.analysis import atlas
from charmodel.analysis import replace as rp
from charmodel.analysis.ablate import ablate, sweep
from charmodel.engine import Engine, bits_per_char
from charmodel.run.handle import Run

from .conftest import make_random_run
from .test_cli import cli


@pytest.fixture(scope="module")
def built(tmp_path_factory, alice_text):
    run = make_random_run(tmp_path_factory.mktemp("replace") / "r", alice_text[:8000], layers=2, units=12)
    atlas.build_for_run(run, "best")
    return run, atlas.load(run, "best"), Engine.load(run, "best")


def test_predictions_for_many_cells_are_each_cells_own(built):
    run, found, _ = built
    text = "Alice said `no, never' to the Queen.\n"
    cells = np.array([0, 3, 7])
    for way in rp.WAYS:  # the phrase, the background, and both: each what simulate gives for one cell
        many = rp.predictions(found, 1, "c", cells, text, way)
        for n, cell in enumerate(cells):
            assert np.allclose(many[:, n], found.simulate(1, "c", int(cell), text, way), atol=1e-5)


def test_held_at_means_is_ablate_and_a_perfect_explanation_recovers_everything(built, monkeypatch):
    run, found, engine = built
    text = Run.open(run).split()[1]
    cells = rp.explained_cells(found, 1, "h", min_r=-1.0)  # every cell with an explanation
    assert len(cells) == 12
    result = rp.replace(engine, found, text, [(1, "h")], min_r=-1.0)
    ablated = ablate(engine, text, 1, "h", cells)
    assert result["bpc"] == pytest.approx(ablated["bpc"], abs=1e-4)
    assert result["bpc"] == pytest.approx(bits_per_char(engine, text), abs=1e-4)
    assert result["bpc_means"] == pytest.approx(ablated["bpc_ablated"], abs=1e-4)
    assert result["cells"] == 12
    # an explanation that predicts the cell exactly: the model keeps all of it
    _, records, _ = engine.forward(engine.vocab.encode(text, "t")[None], record=("h",), layers=[1])
    monkeypatch.setattr(rp, "predictions", lambda a, layer, kind, cells, text, way: records[(layer, kind)][0][:, cells])
    exact = rp.replace(engine, found, text, [(1, "h")], min_r=-1.0)
    assert exact["bpc_phrase"] == pytest.approx(exact["bpc"], abs=1e-4)
    assert exact["bpc_both"] == pytest.approx(exact["bpc"], abs=1e-4)
    lost = exact["bpc_means"] - exact["bpc"]
    assert exact["recovered"] == (pytest.approx(1, abs=1e-3) if lost > 0 else None)
    if result["recovered"] is not None:
        assert result["recovered"] == pytest.approx((result["bpc_means"] - result["bpc_phrase"]) / (
            result["bpc_means"] - result["bpc"]), abs=1e-3)
    if result["beyond_context"] is not None:  # three characters are its zero point
        assert result["beyond_context"] == pytest.approx((result["bpc_context"] - result["bpc_both"]) / (
            result["bpc_context"] - result["bpc"]), abs=1e-3)


def test_replace_cli_prints_the_scores_and_refuses_stray_flags(built):
    run, _, _ = built
    done = cli("atlas", "--run", str(run), "--replace", "--min-r", "-1", "--chars", "800", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"bpc", "bpc_means", "bpc_context", "bpc_phrase", "bpc_both", "recovered", "beyond_context",
                        "cells"} and out["cells"] == 48
    one = json.loads(cli("atlas", "--run", str(run), "--replace", "--layer", "2", "--kind", "c", "--min-r", "-1",
                         "--chars", "800", "--json", "--quiet").stdout)
    assert one["cells"] == 12 and one["bpc"] == out["bpc"]
    for flags, said in ((["--min-r", "0.5"], "--min-r goes with --replace"),
                        (["--replace", "--layer", "2"], "--layer and --kind together"),
                        (["--replace", "--cell", "3"], "--layer and --kind together"),
                        (["--replace", "--text", "abc"], "--text does not go with --replace")):
        done = cli("atlas", "--run", str(run), *flags)
        assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_one_cell_replaced_reports_what_holding_it_costs(built):
    run, found, engine = built
    text = Run.open(run).split()[1]
    cell = int(rp.explained_cells(found, 0, "c", min_r=-1.0)[0])
    one = rp.replace_cell(engine, found, text, 0, "c", cell)
    assert one["ablation_bits"] == pytest.approx(one["bpc_means"] - one["bpc"], abs=1e-4)
    assert one["bpc_means"] == pytest.approx(ablate(engine, text, 0, "c", cell)["bpc_ablated"], abs=1e-4)
    if one["ablation_bits"] < rp.MIN_ABLATION_BITS:
        assert one["recovered"] is None
    done = cli("atlas", "--run", str(run), "--replace", "--layer", "1", "--kind", "c", "--cell", str(cell), "--json",
               "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ablation_bits"] == pytest.approx(one["ablation_bits"], abs=1e-4)


def test_the_atlas_stores_what_each_cell_costs_and_what_its_explanation_wins_back(built):
    run, found, engine = built
    text = Run.open(run).split()[1][: rp.REPLACE_CHARS]
    assert found.meta["ablation_chars"] == len(text) > 100
    bits, recovered, r = (found.arrays[k] for k in ("ablation_bits", "recovered", "phrase_r"))
    for layer, kind in ((0, "c"), (1, "h")):  # each cell held at its mean alone: ablate.sweep's figure
        swept = {d["cell"]: d["delta"] for d in sweep(engine, text, layer, kind)}
        assert np.allclose([bits[found.index(layer, kind, c)] for c in range(12)], [swept[c] for c in range(12)],
                           atol=2e-5)
    measured = np.flatnonzero(np.isfinite(recovered))
    assert len(measured) > 0
    used = np.isfinite(r) & (r >= 0.5) & (bits >= rp.MIN_ABLATION_BITS)
    assert np.array_equal(np.isfinite(recovered), used)  # only cells explained and used get a share
    for i in measured[:3]:  # each one's own replacement, as `atlas --replace --cell` measures it
        layer, rest = divmod(int(i), 24)
        one = rp.replace_cell(engine, found, text, layer, ("h", "c")[rest // 12], rest % 12)
        assert recovered[i] == pytest.approx(one["recovered"], abs=2e-3)
        assert bits[i] == pytest.approx(one["ablation_bits"], abs=1e-4)
    rows = found.cells()
    assert [row["recovered"] is not None for row in rows] == list(used)
    cov = found.coverage()
    positive = np.maximum(bits, 0)
    assert cov["weighted_coverage"] == pytest.approx(positive[np.isfinite(r) & (r >= 0.5)].sum() / positive.sum(), abs=1e-3)
    assert cov["replacement"]["model"]["cells"] == int((np.isfinite(r) & (r >= 0.5)).sum())
    listed = json.loads(cli("atlas", "--run", str(run), "--list", "--json").stdout)
    assert [row["recovered"] for row in listed] == [row["recovered"] for row in rows]
    assert [row["ablation_bits"] for row in listed] == [row["ablation_bits"] for row in rows]
    done = cli("atlas", "--run", str(run), "--list")
    assert done.returncode == 0 and f"holding {cov['weighted_coverage']:.0%} of what single cells carry" in done.stdout
    done = cli("atlas", "--run", str(run), "--replace", "--weighted", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["weighted_coverage"] == cov["weighted_coverage"]
    for flags, said in ((["--weighted"], "--weighted goes with --replace"),
                        (["--replace", "--weighted", "--chars", "600"], "leave out --chars")):
        done = cli("atlas", "--run", str(run), *flags)
        assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_sentence_about_one_cell_says_what_the_figures_say():
    assert "barely uses it" in rp.cell_sentence(0.001, None, True)
    assert "keeps 74% of what this cell gives it" in rp.cell_sentence(0.05, 0.74, True)
    assert "replaced by its phrase alone" in rp.cell_sentence(0.05, 0.74, True)
    assert "too weak to stand in for it" in rp.cell_sentence(0.05, None, False)
    assert "does worse still (-7%)" in rp.cell_sentence(0.05, -0.07, True)


def test_a_windowed_atlas_leaves_the_ablations_to_the_commands_and_says_so(tmp_path, alice_text):
    run = make_random_run(tmp_path / "w", alice_text[:3000], layers=1, units=6)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "window": 8}))
    atlas.build_for_run(run, "best")
    found = atlas.load(run, "best")
    assert found.meta["ablation_chars"] == 0 and found.meta["replacement"] is None
    assert np.isnan(found.arrays["ablation_bits"]).all() and np.isnan(found.arrays["recovered"]).all()
    cov = found.coverage()
    assert cov["weighted_coverage"] is None and cov["median_recovered"] is None
    assert all(row["ablation_bits"] is None and row["recovered"] is None for row in found.cells())
    assert rp.cell_sentence(None, None, True) == "what the model loses without it was not measured."
    done = cli("atlas", "--run", str(run), "--list")
    assert done.returncode == 0, done.stderr
    assert "what single cells carry is not measured in a windowed model's atlas" in done.stdout
