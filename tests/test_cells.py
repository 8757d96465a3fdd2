import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.analysis.cells import (FEATURES, after_quotation, auc_columns, batched_activations, feature,
                                      inside_parentheses, inside_quotation, line_position, rank_cells, regex_signal,
                                      sentence_end_coming, word_end, word_start)
from charmodel.analysis.study import (cells_on_in_span, export_lstmvis, gate_saturation, histogram, match_passages,
                                      top_contexts)
from charmodel.engine import Engine, inspect
from charmodel.engine.sampling import generate
from charmodel.run import folder as runfolder

from .conftest import ROOT


def bits(mask) -> str:
    return "".join("1" if v else "0" for v in mask)


def test_quote_hypothesis_marks_exactly_the_quoted_characters():
    text = "`don't,' said Alice"
    assert bits(inside_quotation(text)) == "1111111" + "0" * 12  # the closing mark is outside
    assert bits(after_quotation(text, k=4)) == "00000000" + "1111" + "0" * 7


def test_double_quotes_and_paragraph_breaks():
    text = 'He said "no" and `it\n\nnever closed'
    assert bits(inside_quotation(text)) == "0" * 8 + "111" + "0" * 6 + "1111" + "0" * 13


def test_word_starts_and_ends_keep_apostrophes_inside_words():
    text = "Alice's cat, don't"
    assert bits(word_start(text)) == "100000001000010000"
    assert bits(word_end(text)) == "000000100010000001"


def test_other_builtin_signals():
    assert bits(inside_parentheses("a (b c) d")) == "001111000"
    assert line_position("ab\ncd").tolist() == [1, 2, 0, 1, 2]
    assert bits(sentence_end_coming("abc. d", k=2)) == "011000"
    assert bits(feature("capital", "aBc")) == "010" and bits(feature("digit", "a1")) == "01"
    assert set(FEATURES) >= {"quote", "after_quote", "word_start", "word_end", "parens", "line_position", "capital",
                             "vowel", "whitespace", "punctuation", "digit", "sentence_end"}


def test_regex_hypothesis_and_its_errors():
    assert bits(regex_signal(r"ab+", "xabbx ab")) == "01110011"
    with pytest.raises(CharModelError, match="invalid"):
        regex_signal("([a-z", "abc")
    with pytest.raises(CharModelError, match="unknown feature"):
        feature("nonsense", "abc")


def test_a_cell_equal_to_the_quote_signal_ranks_first_with_auc_one(alice_text):
    text = alice_text[5000:9000]
    quote = inside_quotation(text)
    rng = np.random.default_rng(0)
    states = {(0, "h"): rng.normal(size=(len(text), 16)), (1, "c"): rng.normal(size=(len(text), 16))}
    states[(1, "c")][:, 9] = quote.astype(float)
    states[(0, "h")][:, 3] = -quote.astype(float) + rng.normal(0, 0.4, len(text))  # negatively tuned, noisy
    ranked = rank_cells(states, quote)
    assert ranked[0]["layer"] == 1 and ranked[0]["kind"] == "c" and ranked[0]["cell"] == 9  # counted from 0
    assert ranked[0]["score"] == pytest.approx(1.0) and ranked[0]["direction"] == 1
    assert (ranked[1]["layer"], ranked[1]["cell"], ranked[1]["direction"]) == (0, 3, -1)
    assert ranked[2]["score"] < 0.6


def test_binned_auc_matches_the_exact_pairwise_count():
    rng = np.random.default_rng(1)
    y = rng.random(2000) < 0.3
    x = rng.normal(size=(2000, 5)).astype(np.float32)
    x[:, 1] += y
    x[:, 2] = np.tanh(5 * x[:, 2])  # saturated, many near-ties
    x[:, 3] = np.round(x[:, 3])  # exact ties
    x[:, 4] = 0.25  # constant
    exact = [((x[y, j][:, None] > x[~y, j]).sum() + 0.5 * (x[y, j][:, None] == x[~y, j]).sum()) / (y.sum() * (~y).sum())
             for j in range(5)]
    assert np.abs(auc_columns(x, y) - exact).max() < 5e-4


def test_scalar_signals_rank_by_absolute_correlation():
    pos = line_position("abc\n" * 50 + "abcdefgh\n" * 20)
    states = {(0, "h"): np.stack([np.sin(np.arange(len(pos))), -0.5 * pos, pos ** 0.5], axis=1)}
    ranked = rank_cells(states, pos)
    assert [d["cell"] for d in ranked] == [1, 2, 0] and ranked[0]["metric"] == "r"
    assert ranked[0]["score"] == pytest.approx(1.0) and ranked[0]["direction"] == -1


def test_batched_states_match_the_exact_pass(random_run, small_text):
    engine = Engine.load(random_run)
    text = small_text[:2500]
    exact = inspect(engine, text, record=("h", "c"))
    batched = batched_activations(engine, text, piece=200, warmup=150, group=3)
    assert batched[(0, "h")].shape == (2500, 24)
    # the first row is exact; later rows converge after their warm-up
    for key in batched:
        assert np.abs(batched[key][:350] - exact.activations[key][:350]).max() < 1e-5
        assert np.abs(batched[key] - exact.activations[key]).max() < 0.05, key


def test_select_and_match_finds_cells_on_through_a_span_and_other_places():
    states = np.zeros((100, 4))
    states[10:15, 1] = 1.0  # cell 1 on exactly through 10-14
    states[10:15, 2] = 1.0
    states[9, 2] = 1.0  # cell 2 is on before the span too, so it is not selected
    states[50:55, 1] = 1.0
    states[80:90, 1] = 1.0
    cells = cells_on_in_span(states, 10, 15, 0.5)
    assert cells.tolist() == [1]
    matches = match_passages(states, cells, 0.5, span_len=5, exclude=(10, 15))
    assert [(m["start"], m["end"]) for m in matches] == [(50, 55), (80, 90)]
    assert matches[0]["score"] == 1.0 and matches[1]["score"] == 0.5
    with pytest.raises(CharModelError, match="outside the text"):
        cells_on_in_span(states, 90, 120, 0.5)


def test_top_contexts_are_spread_out_and_histogram_counts_everything():
    values = np.zeros(200)
    values[[10, 12, 100, 150]] = [5, 4, 3, 2]
    text = "".join(chr(97 + i % 26) for i in range(200))
    ctx = top_contexts(values, text, k=3, radius=20)
    assert [c["position"] for c in ctx] == [10, 100, 150]  # 12 is too close to 10
    assert ctx[0]["char"] == text[10] and ctx[0]["before"] == text[:10] and len(ctx[1]["after"]) == 20
    assert sum(b["count"] for b in histogram(values, bins=10)) == 200


def test_gate_saturation_fractions():
    gates = np.array([[0.05, 0.5], [0.95, 0.5], [0.99, 0.05], [0.5, 0.5]])
    left, right = gate_saturation(gates)
    assert left.tolist() == [0.25, 0.25] and right.tolist() == [0.5, 0.0]


def test_clamping_a_cell_changes_generation(random_run):
    engine = Engine.load(random_run)
    free = generate(engine, "Alice ", 200, 0.0, seed=1)[0]
    clamped = generate(engine, "Alice ", 200, 0.0, seed=1, clamp=(1, "h", 3, 1.0))[0]
    assert clamped != free and len(clamped) == 200
    with pytest.raises(CharModelError, match="no such cell"):
        generate(engine, "Alice ", 10, clamp=(5, "h", 3, 1.0))


def test_lstmvis_export_writes_its_four_files(tmp_path, random_run, small_text):
    engine = Engine.load(random_run)
    text = small_text[:300]
    states = batched_activations(engine, text)
    files = export_lstmvis(tmp_path / "lv", text, engine.vocab.chars, states, name="alice")
    assert [f.name for f in files] == ["states.h5", "train.h5", "words.dict", "lstm.yml"]
    with h5py.File(files[0]) as f:
        assert sorted(f) == ["output1", "output2", "states1", "states2"] and f["states2"].shape == (300, 24)
    with h5py.File(files[1]) as f:
        assert engine.vocab.decode(f["words"][:]) == text
    assert "<space>" in files[2].read_text() and "{type: state, layer: 2, path: states2}" in files[3].read_text()


def cli(*args):
    return subprocess.run([sys.executable, "-m", "charmodel", "cells", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


def test_cells_cli_lists_features_and_ranks_as_json(random_run):
    out = cli("--run", random_run, "--feature", "list")
    assert out.returncode == 0 and "quote" in out.stdout and "line_position" in out.stdout
    out = cli("--run", random_run, "--hypothesis", "word_start", "--top", 3, "--json")
    assert out.returncode == 0, out.stderr
    ranked = json.loads(out.stdout)
    assert len(ranked) == 3 and set(ranked[0]) == {"layer", "kind", "cell", "score", "direction"}
    assert {d["direction"] for d in ranked} <= {1, -1}
    assert ranked[0]["score"] >= ranked[1]["score"] >= ranked[2]["score"] >= 0.5
    out = cli("--run", random_run, "--regex", "([a-z")
    assert out.returncode == 2 and "invalid" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_intervention_summary_names_where_and_how_the_texts_differ():
    from charmodel.analysis.cells import compare_texts, first_difference

    assert first_difference("abc", "abd") == 2 and first_difference("abc", "abc") is None
    assert first_difference("ab", "abc") == 2
    rows = compare_texts("`", "said the cat' and", "said the cat and so")  # a quotation the prime opened
    quote = next(d for d in rows if d["feature"] == "quote")
    # the closing apostrophe follows a letter: inside until the space shows it closed (causal)
    assert quote["a"] == pytest.approx(13 / 17) and quote["b"] == 1.0
    assert rows[0]["feature"] == "quote"  # the largest difference first


def test_passages_start_at_a_paragraph():
    from charmodel.run.corpus import paragraph_start

    text = "end of one.\n\nA new one starts here.\nstill it.\n\nThird."
    assert paragraph_start(text, text.index("still")) == text.index("A new")
    assert paragraph_start(text, 3) == 0 and paragraph_start(text, len(text) - 1) == text.index("Third")


def test_clamping_a_cell_state_holds_c_and_changes_the_text(random_run):
    engine = Engine.load(random_run)
    free = generate(engine, "Alice ", 200, 0.0, seed=1)[0]
    held = generate(engine, "Alice ", 200, 0.0, seed=1, clamp=(0, "c", 3, 5.0))[0]
    assert held != free
    carry = engine.zero_carry(1)
    for ch in "Alice was":
        engine.step(engine.vocab.encode(ch)[:1], carry, clamp=(0, "c", 3, 5.0))
        assert carry.c[0][0, 3] == 5.0 and carry.h[0][0, 3] != 0


def test_layers_are_counted_from_0_inside_and_from_1_at_every_surface(random_run, small_text):
    from charmodel.engine import layer_index, layer_number

    assert layer_number(0) == 1 and layer_index(1) == 0
    engine = Engine.load(random_run)
    ranked = rank_cells(batched_activations(engine, small_text), feature("word_start", small_text), 1)
    assert ranked[0]["layer"] in range(engine.layers)  # Python: an index, usable as it is
    generate(engine, "Alice ", 5, clamp=(ranked[0]["layer"], "c", ranked[0]["cell"], 1.0))
    out = cli("--run", random_run, "--hypothesis", "word_start", "--top", 1, "--json")
    assert json.loads(out.stdout)[0]["layer"] == ranked[0]["layer"] + 1  # the CLI's JSON counts from 1
    runfolder.write_highlights(random_run, "best", {**ranked[0], "feature": "word_start"})
    stored = json.loads((random_run / "highlights.json").read_text())["headline"]
    assert stored["layer"] == ranked[0]["layer"] + 1 and runfolder.read_highlights(random_run, "best") == {
        **ranked[0], "feature": "word_start"}


def test_span_cells_finds_the_cells_that_mark_a_span():
    from charmodel.analysis.study import span_cells

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 20))
    x[200:230, 7] += 3  # higher inside
    x[200:230, 12] -= 2  # lower inside
    found = span_cells(x, 200, 230, top=3)
    assert [d["cell"] for d in found[:2]] == [7, 12] and found[0]["d"] > 2 and found[1]["d"] < -1.5
    with pytest.raises(CharModelError, match="must lie inside"):
        span_cells(x, 0, 500)
