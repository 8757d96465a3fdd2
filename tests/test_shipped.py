"""The models the app ships with: weights/alice and weights/shakespeare."""

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from charmodel.analysis import atlas
from charmodel.engine import Engine, weight_names
from charmodel.engine.sampling import generate
from charmodel.run import folder as runfolder
from charmodel.run.handle import Run

from .conftest import ROOT

WEIGHTS = ROOT / "weights"


@pytest.mark.parametrize("name", ["alice", "shakespeare"])
def test_shipped_run_loads_and_samples(name):
    run = WEIGHTS / name
    config = runfolder.read_config(run)
    arch = config["architecture"]
    weights = runfolder.load_weights_npz(runfolder.checkpoint_path(run, "best"))
    # the config's vocabulary and the weights' shapes agree
    V, U, L = len(config["vocab"]), arch["units"], arch["layers"]
    assert arch["vocab_size"] == V and set(weights) == set(weight_names(L))
    assert weights["embedding"].shape == (V, arch["embedding"])
    assert weights["lstm0_recurrent"].shape == (U, 4 * U) and weights[f"lstm{L - 1}_bias"].shape == (4 * U,)
    assert weights["dense_kernel"].shape == (U, V)
    engine = Engine.load(run)
    text = generate(engine, "", 200, temperature=0.8, seed=7)[0]
    assert len(text) == 200 and set(text) <= set(config["vocab"])
    assert text == generate(engine, "", 200, temperature=0.8, seed=7)[0]
    assert runfolder.read_history(run) and runfolder.read_samples(run)


def test_shipped_alice_is_the_posts_architecture():
    arch = runfolder.read_config(WEIGHTS / "alice")["architecture"]
    assert (arch["layers"], arch["units"]) == (2, 512)
    shipped = [p for p in (WEIGHTS / "alice").rglob("*")
               if p.is_file() and "train_state" not in p.relative_to(WEIGHTS).as_posix()]  # resume state is not shipped
    size = sum(p.stat().st_size for p in shipped)
    assert size < 20 * 2**20


@pytest.mark.parametrize("page", ["pages/home.py", "pages/generate.py", "pages/visualise.py", "pages/train.py"])
def test_every_page_renders_with_the_shipped_model(page, monkeypatch):
    monkeypatch.delenv("CHARMODEL_WEIGHTS", raising=False)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    assert at.selectbox(key="run").value == "alice"
    at.switch_page(page).run()
    assert not at.exception and not at.error
    if page == "pages/home.py":  # the sample and the headline cell, on first open
        assert 'class="cm-' in "".join(h.proto.body for h in at.get("html"))
        assert any("layer 2 c cell 492, explained by the atlas as *inside a quotation" in m.value for m in at.markdown)
        cov = atlas.load(WEIGHTS / "alice", "best").coverage()  # the caption reports the shipped file's own figures
        assert any(c.value.startswith(f"**The atlas** explains {cov['explained']:,} of this model's 2,048 cells")
                   for c in at.caption)


@pytest.mark.parametrize("run, corpus", [("alice", "Alice's Adventures in Wonderland"), ("shakespeare", "As You Like It"),
                                         ("python", "Python's standard library")])
def test_home_is_written_for_the_selected_shipped_run(run, corpus, monkeypatch):
    from charmodel.run.corpus import opening

    monkeypatch.delenv("CHARMODEL_WEIGHTS", raising=False)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.query_params["run"] = run
    at.run()
    assert not at.exception and not at.error
    assert any(f"Run **{run}** is a" in m.value and corpus in m.value for m in at.markdown)
    assert at.code[0].value.startswith(opening(Run.open(WEIGHTS / run).split()[1]))
    stored = runfolder.read_highlights(WEIGHTS / run, "best")  # a person's pick, where the model card made one
    best = atlas.load(WEIGHTS / run, "best").headline(stored and (stored["layer"], stored["kind"], stored["cell"]))
    assert best["explained"] and best["beyond_r"] >= 0.5  # its phrase tells what three characters do not
    assert any(f"cell {best['cell']}, explained by the atlas as *{best['explanation']}*" in m.value for m in at.markdown)


def test_ranking_from_float16_activations_matches_float32_on_the_shipped_model():
    """The app caches activations as float16. Over 5,000 characters of Alice's validation text,
    no cell's AUC moves by more than 0.005 (saturated cells, whose values near +-1 round to
    few float16 levels, move most) and the ten best cells keep their order."""
    from charmodel.analysis.cells import batched_activations, feature, rank_cells

    run = WEIGHTS / "alice"
    text = Run.open(run).split()[1][:5000]
    states = batched_activations(Engine.load(run), text)
    signal = feature("quote", text)
    full = rank_cells(states, signal)
    half = rank_cells({k: v.astype(np.float16) for k, v in states.items()}, signal)
    key = lambda d: (d["layer"], d["kind"], d["cell"])
    by_cell = {key(d): d["score"] for d in full}
    assert max(abs(by_cell[key(d)] - d["score"]) for d in half) < 0.005
    assert [key(d) for d in half[:10]] == [key(d) for d in full[:10]]


def test_cells_page_opens_on_the_shipped_model(monkeypatch):
    monkeypatch.delenv("CHARMODEL_WEIGHTS", raising=False)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("pages/cells.py").run()
    assert not at.exception and not at.error
    table = at.table[0].value
    assert (table.iloc[0]["layer"], table.iloc[0]["kind"], table.iloc[0]["cell"]) == (2, "c", 492)  # the card's cell
    at.session_state["cells_tab"] = "Select and match"
    at.run()
    assert not at.exception and not at.info  # the default span and threshold find a pattern...
    assert any("matching passage" in m.value and not m.value.startswith("0 ") for m in at.markdown)  # ...and matches


def test_atlas_page_renders_the_shipped_atlas_and_opens_a_dossier(monkeypatch):
    monkeypatch.delenv("CHARMODEL_WEIGHTS", raising=False)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("pages/atlas.py").run()
    assert not at.exception and not at.error
    cov = atlas.load(WEIGHTS / "alice", "best").coverage()  # the page reports the shipped file's own figures
    assert [i.value for i in at.info] == [i.value for i in at.info if "Replaced all at once" in i.value]
    assert f"win back **{cov['replacement']['model']['beyond_context']:.0%}**" in at.info[0].value
    assert any(f"holding **{cov['weighted_coverage']:.0%}** of what single cells carry" in m.value for m in at.markdown)
    assert at.metric[0].value.endswith("of 2,048")
    assert at.subheader[0].value == "Layer 2 c cell 492"  # the headline cell, until a row is picked
    at.text_input(key="atlas_search").input("after a quotation closes").run()
    at.session_state["atlas_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert any(m.value.startswith("**") and "after a quotation closes" in m.value and "phrase r **" in m.value
               for m in at.markdown)
    cell = at.subheader[0].value.split()  # Layer L kind cell K
    link = at.get("page_link")[0].proto
    assert link.page == "visualise"
    assert link.query_string == f"run=alice&checkpoint=best&layer={cell[1]}&cell={cell[4]}&kind={cell[2]}"


def test_the_shipped_atlas_finds_the_posts_three_cells_unprompted():
    """Quotation, after a quotation and word start, each the first term of some cell its phrase explains."""
    rows = atlas.load(WEIGHTS / "alice", "best").cells()
    for idea in (lambda n: n == "named:quote", lambda n: n == "named:after_quote" or n.startswith("afterquote:"),
                 lambda n: n == "named:word_start"):
        hits = [r for r in rows if r["explained"] and idea(r["terms"][0]["name"])]
        assert hits and max(r["phrase_r"] for r in hits) >= 0.6


@pytest.mark.parametrize("name", ["alice", "shakespeare", "python"])
def test_each_model_card_reports_what_its_shipped_atlas_measured(name):
    """The card's paragraph on what the model uses is the atlas file's own figures (tools/model_card.py)."""
    from tools.model_card import what_the_model_uses

    found = atlas.load(WEIGHTS / name, "best")
    cov = found.coverage()
    assert cov["weighted_coverage"] is not None and cov["replacement"]["model"]["beyond_context"] is not None
    assert what_the_model_uses(found, cov) in (WEIGHTS / name / "MODEL_CARD.md").read_text(encoding="utf-8")
