"""Ablation: a cell held at a value during a stateful pass, alone or a whole layer in batches."""

import json

import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.analysis.ablate import ablate, logprobs, sweep
from charmodel.engine import LN2, Engine, bits_per_char
from charmodel.run import folder as runfolder

from .test_cli import cli


def test_unablated_bpc_is_the_engines(random_run, small_text):
    engine = Engine.load(random_run)
    text = small_text[:1200]
    lp = logprobs(engine, engine.vocab.encode(text))[0]
    assert -lp.mean() / LN2 == pytest.approx(bits_per_char(engine, text), abs=1e-5)


@pytest.mark.parametrize("value", ["mean", "zero", "0.7"])
def test_a_cell_with_no_outgoing_weights_changes_nothing(random_run, small_text, value):
    """The last layer's h reaches the output only through its Dense row and its own recurrent row."""
    w = runfolder.load_weights_npz(random_run / "best.npz")
    last = sum(1 for k in w if k.endswith("_recurrent")) - 1
    w["dense_kernel"][5] = 0
    w[f"lstm{last}_recurrent"][5] = 0
    runfolder.save_weights_npz(random_run / "best.npz", w, dtype=np.float32)
    engine = Engine.load(random_run)
    result = ablate(engine, small_text[:800], last, "h", 5, value)
    assert abs(result["delta"]) < 1e-6 and result["drops"] == [] and result["gains"] == []


def test_the_batched_sweep_equals_ablations_one_by_one(random_run, small_text, monkeypatch):
    import charmodel.analysis.ablate as ab

    monkeypatch.setattr(ab, "GROUP", 7)  # several batches, the last one short
    monkeypatch.setattr(ab, "CHUNK", 150)  # the carry crosses chunks
    engine = Engine.load(random_run)
    text = small_text[:600]
    for layer, kind in ((1, "h"), (0, "c")):
        swept = {d["cell"]: d["delta"] for d in sweep(engine, text, layer, kind)}
        assert len(swept) == engine.units
        for cell in (0, 6, 7, engine.units - 1):
            assert swept[cell] == pytest.approx(ablate(engine, text, layer, kind, cell)["delta"], abs=2e-5)


def test_ablation_names_the_characters_that_lose(random_run, small_text):
    engine = Engine.load(random_run)
    result = ablate(engine, small_text[:1500], 0, "c", [1, 2, 3], "zero")
    assert result["values"] == [0.0, 0.0, 0.0]
    assert all(d["change"] < 0 and d["count"] >= 5 for d in result["drops"])
    assert all(d["change"] > 0 for d in result["gains"])
    assert len(result["drops"]) + len(result["gains"]) > 0


def test_bad_ablations_are_one_line_errors(random_run, small_text):
    engine = Engine.load(random_run)
    for args, message in (((5, "h", 0), "layer 6 does not exist"), ((0, "h", 999), "cell 999 does not exist"),
                          ((0, "f", 0), "choose h or c")):
        with pytest.raises(CharModelError, match=message):
            ablate(engine, small_text[:100], *args)
    with pytest.raises(CharModelError, match="mean, zero or a number"):
        ablate(engine, small_text[:100], 0, "h", 0, "big")


def test_ablate_cli_single_and_sweep(random_run):
    out = cli("ablate", "--run", random_run, "--layer", 2, "--cell", 3, "--chars", 400, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert set(d) >= {"bpc", "bpc_ablated", "delta", "drops", "gains"}
    out = cli("ablate", "--run", random_run, "--layer", 1, "--kind", "c", "--sweep", "--chars", 300, "--json")
    rows = json.loads(out.stdout)
    assert len(rows) == 24 and rows[0]["delta"] >= rows[-1]["delta"]
    bad = cli("ablate", "--run", random_run, "--layer", 3, "--cell", 0)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "layer 3 does not exist" in bad.stderr
    both = cli("ablate", "--run", random_run, "--layer", 1, "--cell", 0, "--sweep")
    assert both.returncode == 2


def test_linear_cka_is_one_for_a_rotation_and_lower_for_noise():
    from charmodel.analysis.compare import linear_cka

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12))
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert linear_cka(x, 3 * x @ q) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, rng.normal(size=(400, 12))) < 0.2


def test_compare_cli_two_checkpoints(tmp_path, alice_text):
    from charmodel.analysis import atlas

    from .conftest import make_random_run

    run = make_random_run(tmp_path / "r", alice_text[:5000], layers=1, units=8)
    w = runfolder.load_weights_npz(run / "best.npz")
    runfolder.save_weights_npz(run / "latest.npz", {k: v * 0.9 for k, v in w.items()})
    out = cli("compare", "--run", run, "--with", "latest", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert [s["layer"] for s in d["similarity"]] == [1, 1] and all(0 < s["cka"] <= 1 for s in d["similarity"])
    assert d["cells"] is None  # no atlases yet
    atlas.build_for_run(run, "best")
    atlas.build_for_run(run, "latest")
    d = json.loads(cli("compare", "--run", run, "--with", "latest", "--json", "--top", 3).stdout)
    assert len(d["cells"]) == 3 and {"before", "after", "change"} <= set(d["cells"][0])


def test_a_sweep_with_more_blas_threads_gives_the_same_answer_and_gives_the_threads_back(random_run, small_text):
    from threadpoolctl import threadpool_info

    engine = Engine.load(random_run)
    one = sweep(engine, small_text[:300], 1, "h")
    two = sweep(engine, small_text[:300], 1, "h", blas_threads=2)
    by_cell = {d["cell"]: d["delta"] for d in two}
    assert len(by_cell) == len(one) and max(abs(d["delta"] - by_cell[d["cell"]]) for d in one) < 1e-5
    assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}
