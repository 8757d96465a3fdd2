"""The recipe for a time budget: speeds timed on this machine, and the rule that turns them into a choice."""

import json

import pytest

from charmodel import CharModelError
from charmodel.training import recipe
from charmodel.training.recipe import SHAPES, Shape, choose, parameters


def speeds(small, middle, large):
    return dict(zip(SHAPES, (small, middle, large)))


def test_parameters_counts_what_keras_builds():
    from charmodel.training.model import build

    model = build(70, layers=2, units=32, embedding=8)
    assert parameters(2, 32, 8, 70) == model.count_params()


def test_a_budget_chooses_the_largest_shape_that_trains_on_enough_characters_per_parameter():
    # 10 minutes at the timed speed (EFFICIENCY 1.0): 2 x 256 at 12,000 chars/s trains on 7.2 million
    # characters, 8.1 per parameter; 2 x 512 at 3,500 on 2.1 million, 0.6 per parameter
    r = choose(10, 500_000, speeds(30_000, 12_000, 3_500), vocab_size=90)
    assert r.shape == SHAPES[1] and r.passes == pytest.approx(14.4)
    assert r.sentence == ("2 × 256: about 14 passes over your text in 10 minutes; 2 × 512 would manage 4.2, too few "
                          "for its 3.3 million parameters.")
    assert r.settings["units"] == 256 and r.settings["minutes"] == 10 and r.settings["epochs"] == 30
    slower = choose(10, 500_000, speeds(30_000, 4_000, 1_000), vocab_size=90)  # 2 x 256: 2.7 per parameter
    assert slower.shape == SHAPES[0] and "2 × 256 would manage 4.8, too few for its 0.9 million" in slower.sentence


def test_more_time_buys_a_larger_shape_and_too_little_the_one_that_comes_closest():
    assert choose(60, 500_000, speeds(30_000, 12_000, 5_000), vocab_size=90).shape == SHAPES[2]
    short = choose(0.2, 4_000_000, speeds(30_000, 12_000, 3_500), vocab_size=90)
    assert short.shape == SHAPES[0] and short.sentence == (
        "2 × 128: about 0.1 passes over your text in 0.2 minutes, too little for any size to train on 3 characters "
        "per parameter, so the one that comes closest.")


def test_a_short_text_is_not_given_more_parameters_than_it_can_teach():
    # every shape makes hundreds of passes over 60,000 characters; only the smallest has few enough parameters
    r = choose(30, 60_000, speeds(30_000, 12_000, 3_500), vocab_size=60)
    assert r.shape == SHAPES[0] and "parameters per character" in r.sentence


def test_no_speeds_is_a_clear_error():
    with pytest.raises(CharModelError, match="no training speeds measured"):
        choose(10, 1000, {})


def test_speeds_are_timed_once_per_machine_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARMODEL_CACHE", str(tmp_path))
    tiny = [{"layers": 1, "units": 8, "embedding": 4, "batch_size": 4, "seq_len": 10}]
    timed = []
    first = recipe.time_missing(tiny, threads=1, say=timed.append)
    key = recipe.speed_key(tiny[0], 1)
    assert list(first) == [key] and first[key] > 0 and timed == [key]
    assert json.loads((tmp_path / "speeds.json").read_text()) == first
    assert recipe.time_missing(tiny, threads=1, say=timed.append) == first and timed == [key]  # not timed again
    (tmp_path / "speeds.json").write_text("{not json")
    assert recipe.known_speeds() == {}  # a damaged file is timed again, not a crash


def test_the_recipe_for_a_text_keeps_what_the_person_set(tmp_path, monkeypatch, small_corpus):
    monkeypatch.setenv("CHARMODEL_CACHE", str(tmp_path))
    monkeypatch.setattr(recipe, "SHAPES", (Shape(1, 8, 4, 0.01, 0.0), Shape(1, 16, 4, 0.005, 0.0)))
    settings, sentence = recipe.for_text(small_corpus, {"minutes": 1.0, "embedding": 4, "seq_len": 10, "lr": 0.02},
                                         threads=1)
    assert sentence.startswith(("1 × 8:", "1 × 16:")) and "passes over your text in 1 minute." in sentence
    assert settings["lr"] == 0.02 and settings["embedding"] == 4 and settings["units"] in (8, 16)
    given = {"minutes": 1.0, "layers": 1, "units": 8, "batch_size": 4, "lr": 0.01, "dropout": 0.0, "clip_norm": 1.0,
             "seq_len": 10}
    assert recipe.for_text(small_corpus, given, threads=1) == (given, "")  # nothing left to choose
