"""The character n-gram baseline: a proper distribution at every step, finite on the unseen, better
with a longer context on English, and reported by evaluate beside the compressors."""

import json

import numpy as np
import pytest

from charmodel.engine.ngram import NGram
from charmodel.engine.scoring import MIN_BASELINE_CHARS, best_baseline, compressor_bpc, evaluate, ngram_bpc
from charmodel.run.handle import Run

from .conftest import make_random_run


def witten_bell(train: str, history: str, c: str) -> float:
    """The textbook recursion, written slowly, to check the vectorised counts against."""
    lower = witten_bell(train, history[1:], c) if history else 1 / (len(set(train)) + 1)
    j = len(history)
    follows = [train[i] for i in range(j, len(train)) if train[i - j:i] == history]
    if not follows:
        return lower
    return (follows.count(c) + len(set(follows)) * lower) / (len(follows) + len(set(follows)))


def test_the_counts_match_the_textbook_recursion():
    train = "abracadabra cadabra abra"
    model = NGram.fit(train, 3)
    for history in ("", "a", "ab", "ra", "x", "bx", "zz", "cadab"):
        probs = model.next_probs(history)
        for i, c in enumerate(model.chars + ["?"]):  # an order-3 model reads the last two characters
            assert probs[i] == pytest.approx(witten_bell(train, history[-2:], c)), (history, c)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one_at_every_step(order):
    text = "the cat sat on the mat; the hat sat on the cat."
    model = NGram.fit(text, order)
    for i in range(len(text) + 1):
        probs = model.next_probs(text[:i])  # (V + 1,) the vocabulary and the unseen slot
        assert probs.sum() == pytest.approx(1.0) and (probs > 0).all()
    # bits() reads the same distributions: each character's cost is its probability there
    bits = model.bits(text[10:20], context=text[:10])
    expected = [-np.log2(model.next_probs(text[:10 + k])[model.chars.index(text[10 + k])]) for k in range(10)]
    assert bits == pytest.approx(expected)


def test_a_5gram_beats_a_3gram_on_english(alice_text):
    train, val = alice_text[:100_000], alice_text[100_000:110_000]
    three = NGram.fit(train, 3).bpc(val, context=train)
    five = NGram.fit(train, 5).bpc(val, context=train)
    assert five < three < 3.5


def test_an_unseen_character_costs_finite_bits():
    model = NGram.fit("abc abc abc", 3)
    bits = model.bits("ab\u2603c", context="abc ")  # a snowman, never seen, then a seen character after it
    assert np.isfinite(bits).all() and bits[2] > bits[0]
    assert model.next_probs("a\u2603")[-1] > 0  # an unseen character in the context backs off too


def test_a_predictable_text_costs_almost_nothing():
    train = "abcd" * 500
    assert NGram.fit(train, 3).bpc("abcd" * 50, context=train) < 0.01


def test_evaluate_reports_ngram_baselines_on_a_long_enough_text(tmp_path, alice_text):
    run = make_random_run(tmp_path / "long", alice_text[:30000])  # NumPy weights: no TensorFlow
    result = evaluate(run)
    assert result["chars"] >= MIN_BASELINE_CHARS
    assert set(result["baselines"]) == {"gzip", "bz2", "lzma", "3-gram", "5-gram"}
    assert result["baselines"]["5-gram"] < result["baselines"]["3-gram"]


def test_evaluate_leaves_every_baseline_out_on_a_tiny_text(random_run):
    assert evaluate(random_run)["baselines"] == {}


def test_ngram_bpc_names_each_order_and_the_best_baseline_is_the_lower():
    text = "Alice was beginning to get very tired of sitting by her sister on the bank. " * 20
    scores = ngram_bpc(text[:1200], text[1200:], orders=(2, 4))
    assert set(scores) == {"2-gram", "4-gram"}
    assert best_baseline({"gzip": 1.0, "bz2": 2.5, "5-gram": 2.2}) == ("5-gram", 2.2)
    assert best_baseline({"bz2": 2.1, "5-gram": 2.2}) == ("bz2", 2.1)
    assert best_baseline({}) is None


def test_a_runs_split_baselines_are_written_once_and_read_back_for_that_corpus_only(tmp_path, alice_text):
    from charmodel.engine import scoring

    run = make_random_run(tmp_path / "run", alice_text[:30000])
    assert scoring.split_baselines(run) == {}  # nothing written yet
    written = scoring.write_split_baselines(run)
    assert set(written) == {"bz2", "5-gram"} and all(1 < v < 8 for v in written.values())
    train, val = Run.open(run).split()
    assert written["bz2"] == pytest.approx(compressor_bpc(train, val)["bz2"])  # the same as evaluate's
    assert scoring.split_baselines(run) == pytest.approx(written)
    config = json.loads((run / "config.json").read_text())
    config["corpus"]["sha256"] = "0" * 64  # another text: its baselines are not these
    (run / "config.json").write_text(json.dumps(config))
    assert scoring.split_baselines(run) == {}
    (run / scoring.BASELINES).write_text("{not json")
    assert scoring.split_baselines(run) == {}


def test_savings_are_the_counts_bits_less_the_models_at_each_character(random_run, alice_text):
    from charmodel.engine import Engine, inspect, scoring

    engine = Engine.load(random_run, "best")
    counted = NGram.fit(alice_text[:20000], 5)
    text = alice_text[30000:30400]
    found = scoring.savings(engine, counted, text)
    model = inspect(engine, text, record=(), top_k=1).surprisal_bits
    assert np.isnan(found.saved[0]) and found.scored == len(text) - 1  # no guess before the first character
    np.testing.assert_allclose(found.model_bits[1:], model[1:])
    np.testing.assert_allclose(found.ngram_bits[1:], counted.bits(text)[1:])
    assert found.total == pytest.approx(float(np.sum(counted.bits(text)[1:] - model[1:])))
    assert found.total < 0 and "loses" in found.sentence()  # random weights: the count wins
    after = found.after(100)
    assert after.scored == len(text) - 100 and after.total == pytest.approx(float(np.nansum(found.saved[100:])))
