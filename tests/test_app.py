"""Page logic with Streamlit's AppTest, on runs with random weights in a scratch weights folder."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from charmodel import CharModelError
from charmodel.run import folder as runfolder
from charmodel.run.handle import Run
from charmodel.training.jobs import JobManager, corpus_facts_of, training_policy

from .conftest import ROOT, make_random_run

APP = str(ROOT / "streamlit_app.py")


pytestmark = pytest.mark.slow  # every page run by AppTest, several with real background jobs


@pytest.fixture
def weights(tmp_path, monkeypatch, alice_text, timed_speeds):
    root = tmp_path / "weights"
    root.mkdir()
    make_random_run(root / "alice", alice_text[:20000], layers=2, units=24)
    make_random_run(root / "small", alice_text[:5000], layers=1, units=12, seed=1)
    broken = make_random_run(root / "broken", alice_text[:5000], layers=1, units=12)
    (broken / "best.npz").write_bytes(b"\x00garbage")
    monkeypatch.setenv("CHARMODEL_WEIGHTS", str(root))
    return root


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def no_errors(at: AppTest):
    assert not at.exception, [e.value for e in at.exception]


def htmls(at: AppTest) -> str:
    return "".join(h.proto.body for h in at.get("html"))


@pytest.mark.parametrize("page", ["pages/generate.py", "pages/visualise.py", "pages/cells.py", "pages/train.py"])
def test_every_page_renders(weights, page):
    at = app()
    no_errors(at)
    at.switch_page(page).run()
    no_errors(at)
    assert not at.error


def test_sidebar_lists_runs_defaults_to_alice_and_follows_the_url(weights):
    at = app()
    assert at.selectbox(key="run").value == "alice"
    assert at.selectbox(key="run").options == ["alice", "broken", "small"]
    at = app(run="small", temperature="0.5", seed="3")
    assert at.selectbox(key="run").value == "small"
    assert at.slider(key="temperature").value == 0.5 and at.number_input(key="seed").value == 3


def test_home_without_an_atlas_says_so_offers_it_and_then_opens_on_its_headline_cell(weights):
    from charmodel.analysis import atlas
    from charmodel.run.corpus import opening
    from pages.shared.background import atlas_job

    at = app(temperature="0.3", seed="5")
    no_errors(at)
    prime = opening(Run.open(weights / "alice").split()[1])
    assert prime and at.code[0].value.startswith(prime)  # primed from the run's own validation text
    assert any("temperature 0.3, seed 5" in m.value for m in at.markdown)  # the sidebar's values
    assert any("Run **alice** is a 2 × 24 LSTM" in m.value for m in at.markdown)
    assert any("not explained yet" in m.value and "has no atlas" in m.value for m in at.markdown)
    assert 'class="cm-' not in htmls(at)  # nothing ranked without an atlas
    at.button(key="home_build_atlas").click().run()
    job = atlas_job("alice", "best")
    assert job is not None and job.wait(120) and job.status == "finished", job.error
    at.run()
    no_errors(at)
    book = atlas.load(weights / "alice", "best")
    best = book.headline()
    assert best["explained"] and best["beyond_r"] == max(r["beyond_r"] for r in book.cells()
                                                         if r["explained"] and r["beyond_r"] is not None)
    assert any(f"layer {best['layer'] + 1} {best['kind']} cell {best['cell']}, explained by the atlas as "
               f"*{best['explanation']}* (phrase r {best['phrase_r']:.2f}" in m.value for m in at.markdown)
    assert 'class="cm-' in htmls(at)


def test_a_cell_a_person_picked_gives_way_when_its_phrase_says_nothing_beyond_three_characters(weights):
    """The stored pick heads Home only when its phrase tells what the last three characters do not
    (atlas_file's headline; the other branch: tests/test_atlas.py); else the atlas's own choice."""
    from charmodel.analysis import atlas

    run = weights / "alice"
    atlas.build_for_run(run, "best")
    book = atlas.load(run, "best")
    refused = [r for r in book.cells() if r["explained"] and (r["beyond_r"] is None or r["beyond_r"] < 0.5)]
    picked, best = refused[0], book.headline()
    assert (picked["layer"], picked["kind"], picked["cell"]) != (best["layer"], best["kind"], best["cell"])
    runfolder.write_highlights(run, "best", {"layer": picked["layer"], "kind": picked["kind"], "cell": picked["cell"],
                                             "score": 0.9, "direction": 1, "metric": "auc", "feature": "quote",
                                             "description": "inside a quotation"})
    at = app()
    no_errors(at)
    assert any(f"layer {best['layer'] + 1} {best['kind']} cell {best['cell']}, explained by the atlas" in m.value
               for m in at.markdown)
    at.switch_page("pages/visualise.py").run()
    assert at.number_input(key="cell").value == best["cell"]  # Visualise opens on it too


def test_generate_follows_seed_and_temperature(weights):
    at = app()
    at.switch_page("pages/generate.py").run()
    first = at.code[0].value
    assert first.startswith("Alice ") and len(first) == 6 + 500
    # AppTest leaves the entry script's sidebar out of a switched page's tree, so set its state
    at.session_state["seed"] = 8
    at.run()
    assert at.code[0].value != first
    at.session_state["temperature"] = 0.0
    at.run()
    greedy = at.code[0].value
    at.session_state["seed"] = 9
    at.run()
    assert at.code[0].value == greedy  # greedy ignores the seed


def test_generate_compares_temperatures_and_colours_by_probability(weights):
    at = app()
    at.switch_page("pages/generate.py").run()
    at.multiselect(key="compare").set_value([0.2, 1.0]).run()
    assert [s.value for s in at.subheader] == ["temperature 0.2", "temperature 1"]
    at.radio(key="colour").set_value("probability").run()
    no_errors(at)
    assert htmls(at).count('class="cm-text"') == 2


def test_generate_and_visualise_colour_a_text_by_the_bits_saved_over_a_5gram(weights):
    at = app()
    at.switch_page("pages/generate.py").run()
    at.radio(key="colour").set_value("bits saved over a 5-gram").run()
    no_errors(at)
    said = [c.value for c in at.caption if "5-gram count of the training text" in c.value]
    assert len(said) == 1 and "bits saved over a 5-gram count" in htmls(at)
    at.switch_page("pages/visualise.py").run()
    at.toggle(key="show_savings").set_value(True).run()
    no_errors(at)
    said = [c.value for c in at.caption if "5-gram count of the training text" in c.value]
    assert len(said) == 1 and "999 characters" in said[0]  # a 1,000-character passage: the first has no guess


def test_generate_names_unknown_prime_characters_and_offers_to_drop_them(weights):
    at = app()
    at.switch_page("pages/generate.py").run()
    at.text_area(key="prime").set_value("Alice €✓ ").run()
    assert "'€' '✓'" in at.warning[0].value
    assert not at.code
    at.checkbox(key="drop_prime").check().run()
    assert at.code[0].value.startswith("Alice  ")


def test_visualise_switching_cells_reuses_cached_activations(weights, monkeypatch):
    import pages.shared.data as common

    calls = []
    real = common.inspect
    monkeypatch.setattr(common, "inspect", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = app(layer="2", cell="0", kind="h")
    calls.clear()  # Home drew its own passage
    at.switch_page("pages/visualise.py").run()
    no_errors(at)
    page = htmls(at)
    assert "layer 2 cell 0 h" in page and page.count("data-tip=") >= 1000
    at.button(key="next_cell").click().run()
    assert at.number_input(key="cell").value == 1
    assert htmls(at) != page and "layer 2 cell 1 h" in htmls(at)
    at.radio(key="scale").set_value("sigmoid").run()
    at.radio(key="kind").set_value("f").run()
    assert "scale" not in [r.key for r in at.radio]  # the post's sigmoid is offered for h and c only
    at.button(key="prev_cell").click().run()
    no_errors(at)
    assert at.number_input(key="cell").value == 0
    assert len(calls) == 1  # computed once for this (run, checkpoint, text)


def test_visualise_url_opens_layer_and_cell(weights):
    at = app(layer="1", cell="7", kind="c")
    at.switch_page("pages/visualise.py").run()
    assert at.selectbox(key="layer").value == 1 and at.number_input(key="cell").value == 7
    assert "layer 1 cell 7 c" in htmls(at)


def test_visualise_own_text_with_unknown_characters(weights):
    at = app()
    at.switch_page("pages/visualise.py").run()
    at.radio(key="source").set_value("Your text").run()
    at.text_area(key="own_text").set_value("Alice ☃ said").run()
    assert "'☃'" in at.warning[0].value
    at.checkbox(key="drop_own").check().run()
    no_errors(at)
    assert "☃" not in htmls(at) and 'data-tip="#7 s' in htmls(at)  # the snowman is gone; "s" moved up


def test_a_broken_run_gets_an_error_card_and_others_keep_working(weights):
    at = app(run="broken")
    at.switch_page("pages/generate.py").run()
    no_errors(at)
    assert "Run **broken** cannot be used" in at.error[0].value and "damaged" in at.error[0].value
    at.session_state["run"] = "small"
    at.run()
    no_errors(at)
    assert not at.error and at.code[0].value


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/b", ".hidden"])
def test_train_refuses_run_names_that_escape_weights(weights, name):
    at = app()
    at.switch_page("pages/train.py").run()
    at.text_input(key="train_run").set_value(name).run()
    at.button(key="train_start").click().run()
    assert "not allowed" in at.error[0].value or "escapes" in at.error[0].value
    assert not (weights.parent / "x").exists()


@pytest.mark.parametrize("data, message", [
    (b"", "is empty"),
    (b"\x00\x01binary", "binary"),
    (b"caf\xe9 au lait", "not UTF-8"),
])
def test_train_refuses_bad_uploads(weights, data, message):
    at = app()
    at.switch_page("pages/train.py").run()
    at.radio(key="train_source").set_value("Upload a .txt file").run()
    at.file_uploader(key="train_upload").set_value(("book.txt", data, "text/plain")).run()
    at.button(key="train_start").click().run()
    assert message in at.error[0].value and "book.txt" in at.error[0].value


def test_train_page_states_the_upload_limit_and_a_hosted_switch(weights, monkeypatch):
    at = app()
    at.switch_page("pages/train.py").run()
    at.radio(key="train_source").set_value("Upload a .txt file").run()
    assert "up to 10 MB" in at.file_uploader(key="train_upload").label
    monkeypatch.setenv("CHARMODEL_TRAINING", "off")
    at = app()
    at.switch_page("pages/train.py").run()
    assert "switched off" in at.info[0].value
    assert at.button(key="train_start").disabled


def test_train_a_tiny_model_for_one_epoch_from_the_page(weights):
    at = app()
    at.switch_page("pages/train.py").run()
    at.toggle(key="train_auto").set_value(False).run()  # the size is the person's to set
    at.text_input(key="train_run").set_value("tiny").run()
    for key, value in [("train_layers", 1), ("train_units", 8), ("train_embedding", 4), ("train_seq_len", 50),
                       ("train_batch_size", 256), ("train_epochs", 1), ("train_weight_decay", 0.05),
                       ("train_recurrent_dropout", 0.1)]:
        at.number_input(key=key).set_value(value)
    at.checkbox(key="train_lr_plateau").check()  # "Halve the learning rate when validation stalls"
    at.checkbox(key="train_collapse_spaces").check()  # "Keep runs of spaces"
    at.button(key="train_start").click().run()
    assert not at.error
    deadline = time.time() + 120
    while not (weights / "tiny" / "train_state.json").exists():
        assert time.time() < deadline
        time.sleep(0.5)
    from pages.shared.background import job_manager  # the same cached manager the page used

    assert job_manager().job.wait(60)
    at.run()
    no_errors(at)
    assert any("finished" in s.value for s in at.subheader)
    assert at.dataframe[0].value["epoch"].tolist() == [1]
    assert "tiny" in app().selectbox(key="run").options
    config = runfolder.read_config(weights / "tiny")
    assert config["training"]["lr_plateau"] == 0.5 and config["corpus"]["collapse_spaces"] is False
    assert config["training"]["weight_decay"] == 0.05 and config["architecture"]["recurrent_dropout"] == 0.1


def test_train_refuses_to_start_from_a_run_that_does_not_fit(weights):
    at = app()
    at.switch_page("pages/train.py").run()
    at.toggle(key="train_auto").set_value(False).run()  # the size is the person's to set
    at.text_input(key="train_run").set_value("warm").run()
    at.number_input(key="train_units").set_value(8)
    at.selectbox(key="train_init_from").set_value("small")
    at.button(key="train_start").click().run()
    assert "was trained on a different vocabulary" in at.error[0].value  # checked before the job starts
    assert not (weights / "warm").exists()


def test_only_one_training_job_runs_at_a_time(tmp_path, small_corpus):
    manager = JobManager()
    first = manager.start(tmp_path / "a", small_corpus, settings=dict(layers=1, units=8, embedding=4, seq_len=20,
                                                                      batch_size=8, epochs=50))
    try:
        with pytest.raises(CharModelError, match="already running"):
            manager.start(tmp_path / "b", small_corpus, settings=dict(epochs=1))
    finally:
        manager.stop()
        first.wait(120)
    assert first.snapshot().status in ("stopped", "finished")
    assert not (tmp_path / "b").exists()


def test_training_policy_reads_switch_and_cap():
    assert training_policy({}) == (True, None, "")
    assert training_policy({"CHARMODEL_TRAINING": "off"})[0] is False
    assert training_policy({"CHARMODEL_MAX_EPOCHS": "3"})[:2] == (True, 3)
    with pytest.raises(CharModelError, match="not a whole number"):
        training_policy({"CHARMODEL_MAX_EPOCHS": "lots"})


def test_cells_page_ranks_studies_and_exports(weights):
    at = app()
    at.switch_page("pages/cells.py").run()
    no_errors(at)
    table = at.table[0].value
    assert len(table) == 5 and table["AUC"].is_monotonic_decreasing and table["AUC"].min() >= 0.5
    chosen = table.iloc[1]
    at.button(key="study_1").click().run()
    assert (at.session_state["study_layer"], at.session_state["study_kind"], at.session_state["study_cell"]) == \
        (chosen["layer"], chosen["kind"], chosen["cell"])
    assert f"Layer {chosen['layer']} {chosen['kind']} cell {chosen['cell']}" in [s.value for s in at.subheader]
    open_tab(at, "Rank cells")
    at.radio(key="cells_mode").set_value("regular expression").run()
    at.text_input(key="cells_regex").set_value("([a-z").run()
    assert "invalid" in at.error[0].value
    open_tab(at, "Export")
    at.button(key="export_prepare").click().run()
    no_errors(at)
    assert at.get("download_button")[0].proto.label == "Download lstmvis.zip"
    assert any("MB before compression" in c.value for c in at.caption)  # the size, before the download
    assert any("lstmvis.zip is ready" in c.value for c in at.caption)


def open_tab(at: AppTest, label: str) -> AppTest:
    """The Cells page runs only its open tab; AppTest opens one through the tabs' session state."""
    at.session_state["cells_tab"] = label
    return at.run()


def test_cells_page_runs_only_the_open_tab(weights, monkeypatch):
    import pages.shared.data as common

    calls = []
    real = common.inspect
    monkeypatch.setattr(common, "inspect", lambda *a, **k: calls.append(k.get("record")) or real(*a, **k))
    at = app()
    calls.clear()  # Home drew its own passage
    at.switch_page("pages/cells.py").run()
    no_errors(at)
    assert at.table and calls == []  # the ranking (batched h and c) only: no gates, no checkpoints
    open_tab(at, "Gate saturation")
    no_errors(at)
    assert calls == [("f",), ("i",), ("o",)]  # one layer's gates, on demand


def test_cells_page_select_and_match_and_clamp(weights):
    at = app()
    at.switch_page("pages/cells.py").run()
    open_tab(at, "Select and match")
    at.slider(key="match_threshold").set_value(-1.0).run()  # every cell is on: nothing is "off around" the span
    assert any("No cell is on" in i.value for i in at.info)
    at.slider(key="match_threshold").set_value(0.0).run()
    no_errors(at)
    open_tab(at, "Intervene")
    codes = [c.value for c in at.code]
    assert len(codes) == 2 and codes[0] != codes[1]  # free vs clamped generation


def test_visualise_follows_a_switch_to_a_run_with_fewer_layers(weights):
    at = app()
    at.switch_page("pages/visualise.py").run()
    at.selectbox(key="layer").set_value(2).run()
    assert at.selectbox(key="layer").value == 2
    at.session_state["run"] = "small"  # one layer, 12 cells
    at.run()
    no_errors(at)
    cell, kind = at.number_input(key="cell").value, at.radio(key="kind").value
    assert at.selectbox(key="layer").value == 1 and cell < 12 and f"layer 1 cell {cell} {kind}" in htmls(at)


def test_the_train_form_keeps_its_values_across_pages(weights):
    at = app()
    at.switch_page("pages/train.py").run()
    at.toggle(key="train_auto").set_value(False).run()  # the size is the person's to set
    at.text_input(key="train_run").set_value("kept").run()
    at.number_input(key="train_units").set_value(64).run()
    at.switch_page("pages/generate.py").run()
    at.switch_page("pages/train.py").run()
    assert at.text_input(key="train_run").value == "kept" and at.number_input(key="train_units").value == 64


def test_train_page_asks_for_a_budget_first_and_fills_in_the_recipe_for_it(weights, timed_speeds):
    from charmodel.training import recipe

    at = app()
    at.switch_page("pages/train.py").run()
    no_errors(at)
    assert at.radio[0].key == "train_budget" and at.radio[0].value == "10 minutes"  # the first choice
    assert at.toggle(key="train_auto").value
    chars, vocab = corpus_facts_of(ROOT / "data" / "alice.txt")
    expected = recipe.from_speeds(10, chars, vocab, {}, recipe.training_threads())
    assert any(i.value == expected.sentence for i in at.info)
    units = at.number_input(key="train_units")
    assert units.disabled and units.value == expected.shape.units
    assert at.number_input(key="train_lr").value == expected.shape.lr
    at.radio(key="train_budget").set_value("1 hour").run()
    longer = recipe.from_speeds(60, chars, vocab, {}, recipe.training_threads())
    assert any(i.value == longer.sentence for i in at.info) and "in 60 minutes" in longer.sentence
    at.toggle(key="train_auto").set_value(False).run()  # everything stays the person's to change
    assert not at.number_input(key="train_units").disabled
    assert at.number_input(key="train_units").value == longer.shape.units
    at.number_input(key="train_units").set_value(32).run()  # a size nothing here has timed
    assert any("Timing a few batches on this machine" in c.value for c in at.caption)
    settle_timing(at)
    assert any("2x32 at batch" in c.value and "timed on this machine" in c.value for c in at.caption)


def settle_timing(at: AppTest):
    """Wait for the Train page's timing child(ren), then draw the page again."""
    from pages.shared.background import job_manager

    for _ in range(3):
        job = job_manager().speeds
        assert job is not None and job.wait(180) and job.status == "finished", job.error
        at.run()
        if not any("Timing a few batches" in c.value for c in at.caption):
            return
    raise AssertionError("the page is still timing")


def test_train_page_estimates_the_default_settings_on_a_fresh_machine_and_from_a_run_of_the_same_size(weights):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["train_budget"] = "Until the epochs are done"  # no recipe: the settings' own defaults
    at.run()
    at.switch_page("pages/train.py").run()
    chars = corpus_facts_of(ROOT / "data" / "alice.txt")[0]
    assert any(c.value.startswith(":material/schedule: About ") and f"for 30 epochs of 2x512 at batch 64 without "
               f"recurrent dropout on {chars:,} characters" in c.value and "timed on this machine" in c.value
               for c in at.caption)
    runfolder.write_history(weights / "alice", [dict(epoch=1, train_loss=2.0, val_loss=2.0, val_bpc=2.9, wall_s=10,
                                                 chars_per_s=1000.0, lr=0.002)])
    at.number_input(key="train_units").set_value(24).run()
    at.number_input(key="train_epochs").set_value(3).run()
    at.number_input(key="train_batch_size").set_value(4).run()  # the batch size alice's config records
    minutes = round(3 * chars * 0.9 / 1000 / 60)
    assert any(f"About {minutes} minutes for 3 epochs of 2x24 at batch 4 without recurrent dropout" in c.value
               and "run alice" in c.value for c in at.caption)
    # settings nothing here has trained or timed: a few batches are timed in a child process, then the page says
    at.number_input(key="train_batch_size").set_value(5).run()
    assert any("Timing a few batches on this machine" in c.value for c in at.caption)
    settle_timing(at)
    assert any("for 3 epochs of 2x24 at batch 5 without recurrent dropout" in c.value and "timed on this machine"
               in c.value for c in at.caption)


def test_resume_errors_name_no_server_path(weights):
    from pages.shared.background import job_manager

    job_manager.clear()  # no job of an earlier test to resume
    at = app()
    at.switch_page("pages/train.py").run()
    at.text_input(key="train_run").set_value("nothing-here").run()
    at.button(key="train_resume").click().run()
    assert "no run named 'nothing-here'" in at.error[0].value
    assert str(weights) not in at.error[0].value and "/" not in at.error[0].value


def test_a_deep_link_with_bad_values_says_what_it_ignored(weights):
    at = app(run="../../etc")
    assert at.selectbox(key="run").value == "alice"
    assert any("run='../../etc'" in t.value for t in at.toast)
    at = app(layer="7", cell="99999")
    at.switch_page("pages/visualise.py").run()
    no_errors(at)
    notice = " ".join(c.value for c in at.caption)
    assert "layer=7" in notice and "cell=99999" in notice


def test_atlas_page_offers_to_build_then_shows_the_table_and_a_dossier(weights):
    at = app()
    at.switch_page("pages/atlas.py").run()
    no_errors(at)
    assert any("has no atlas" in i.value for i in at.info)
    assert any("python -m charmodel atlas --run weights/alice --checkpoint best" in c.value for c in at.code)
    at.button(key="atlas_build").click().run()
    from pages.shared.background import atlas_job

    job = atlas_job("alice", "best")
    assert job is not None and job.wait(120) and job.status == "finished", job.error
    at.run()
    no_errors(at)
    assert at.metric[0].value.endswith("of 96")  # 2 layers x h, c x 24 cells
    table = at.dataframe[0].value
    assert "auc" not in table.columns  # a composite explanation has none: the column showed "None" for most rows
    assert list(table.columns) == ["layer", "kind", "cell", "explanation", "phrase_r", "beyond_r", "context_r",
                                   "recovered", "ablation_bits", "group", "spread"]
    assert table["beyond_r"].fillna(-2).is_monotonic_decreasing  # what says most beyond three characters first
    assert table["ablation_bits"].notna().all()  # every cell held at its mean, stored in the atlas
    said = [m.value for m in at.markdown] + [i.value for i in at.info] + [c.value for c in at.caption]
    assert any("of what single cells carry" in v for v in said)
    assert any("win back **" in v and "beyond three characters" in v or "costs the model nothing" in v
               for v in said)  # the model-wide replacement, at the top
    at.session_state["atlas_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    no_errors(at)
    assert at.subheader[0].value.startswith("Layer ") and "cell" in at.subheader[0].value
    assert 'class="cm-' in htmls(at)  # contexts coloured by the cell
    assert any(c.value.startswith("The background (not the explanation): reaching back up to three characters")
               for c in at.caption)
    assert any("phrase r **" in m.value and "context r" in m.value and "beyond r" in m.value or
               m.value.startswith("No phrase") for m in at.markdown)  # the dossier opens with the phrase's scores
    assert any(m.value.startswith("Over the first ") and "held at its mean it costs the model" in m.value
               for m in at.markdown)  # from the atlas
    at.button(key="atlas_ablate").click().run()
    no_errors(at)
    assert any(m.value.startswith("bpc without this cell") for m in at.markdown)
    w = runfolder.load_weights_npz(weights / "alice" / "best.npz")
    runfolder.save_weights_npz(weights / "alice" / "latest.npz", {k: v * 0.9 for k, v in w.items()})
    at.run()  # the page now offers the new checkpoint
    at.toggle(key="atlas_compare").set_value(True).run()
    no_errors(at)
    assert any("Layer similarity" in m.value for m in at.markdown)
    assert any("once both checkpoints have an atlas" in c.value for c in at.caption)


def test_atlas_page_names_a_damaged_atlas_and_offers_a_rebuild(weights):
    (weights / "alice" / "atlas-best.npz").write_bytes(b"garbage")
    at = app()
    at.switch_page("pages/atlas.py").run()
    no_errors(at)
    assert any("damaged" in i.value and "rebuild" in i.value for i in at.info)
    assert at.button(key="atlas_build")


def test_cells_ablation_tab_sweeps_a_layer_and_studies_the_top_cell(weights):
    at = app()
    at.switch_page("pages/cells.py").run()
    at.session_state["cells_tab"] = "Ablation"
    at.run()
    no_errors(at)
    assert any("--sweep" in c.value for c in at.caption)  # nothing computed before the click
    at.button(key="sweep_run").click().run()
    no_errors(at)
    assert len(at.get("vega_lite_chart")) == 1
    top = next(c.value for c in at.caption if c.value.startswith("Largest loss"))
    at.button(key="sweep_study").click().run()
    assert at.session_state["cells_tab"] == "One cell" and f"cell {at.session_state['study_cell']}," in top


def test_visualise_and_generate_show_attribution_strips(weights):
    at = app()
    at.switch_page("pages/visualise.py").run()
    at.toggle(key="show_attribution").set_value(True).run()
    no_errors(at)
    assert "attribution to layer" in htmls(at) and any("raised it" in c.value for c in at.caption)
    at.radio(key="attribution_method").set_value("gxi").run()
    no_errors(at)
    at.switch_page("pages/generate.py").run()
    at.slider(key="length").set_value(60).run()
    at.toggle(key="show_why").set_value(True).run()
    no_errors(at)
    assert "attribution to log p(" in htmls(at) and any("more likely" in c.value for c in at.caption)


def test_a_brushed_span_lists_the_cells_that_mark_it_and_matches_them(weights):
    at = app()
    at.switch_page("pages/visualise.py").run()
    # AppTest cannot brush a chart; its selection state is set the way the browser would send it
    at.session_state["trace"] = {"selection": {"brush": {"position": [100, 110]}}}
    at.run()
    no_errors(at)
    assert any("differ most inside characters 100–110" in m.value for m in at.markdown)
    at.button(key="span_match").click().run()
    no_errors(at)
    assert any("are on together" in c.value for c in at.caption)
    at.button(key="span_dossier").click().run()
    no_errors(at)
    assert at.session_state["studied"]["kind"] in ("h", "c")


def test_cells_probe_tab_plots_auc_against_cells(weights):
    at = app()
    at.switch_page("pages/cells.py").run()
    at.session_state["cells_tab"] = "Probe"
    at.run()
    no_errors(at)
    at.button(key="probe_run").click().run()
    no_errors(at)
    assert len(at.get("vega_lite_chart")) == 1
    assert any(c.value.startswith("Best single cell") for c in at.caption) and at.table


def test_train_page_downloads_a_run_and_imports_an_archive(weights, tmp_path):
    from charmodel.exchange.archive import export_run

    archive_path = export_run(weights / "small", tmp_path / "small.zip")
    at = app()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_archive_run").set_value("small").run()
    at.button(key="train_archive_prepare").click().run()
    no_errors(at)
    assert at.get("download_button")
    # AppTest has no file upload; the page's import path is the same function the CLI test drives
    from charmodel.exchange.archive import import_run

    import_run(archive_path, weights, "moved")
    at.run()
    assert "moved" in at.selectbox(key="train_archive_run").options
