"""The atlas: explanations generated and scored honestly, streamed statistics, the file, the CLI."""

import contextlib
import io
import json
import re
import zipfile

import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.analysis import atlas, background, candidates, explain, predicates, stats
from charmodel.analysis.cells import batched_activations, inside_quotation, line_position, word_start
from charmodel.engine import Engine
from charmodel.run import folder as runfolder
from charmodel.run.handle import Run

from .conftest import make_random_run
from .test_cli import cli


def exact_auc(x, y):
    return ((x[y][:, None] > x[~y]).sum() + 0.5 * (x[y][:, None] == x[~y]).sum()) / (y.sum() * (~y).sum())


# ---------------------------------------------------------------- scoring


def test_scores_match_exact_auc_and_pearson():
    rng = np.random.default_rng(0)
    n = 1500
    y = np.stack([rng.random(n) < 0.2, rng.random(n) < 0.6], axis=1)
    v = rng.normal(size=n)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    x[:, 1] += 1.5 * y[:, 0]
    x[:, 2] = np.round(x[:, 2])  # exact ties
    x[:, 3] = -2 * v + rng.normal(size=n)
    x[:, 4] = 0.5  # constant
    signals = np.column_stack([y, v]).astype(np.float32)
    got = stats.scores(x, signals, np.array(["auc", "auc", "r"]))
    for j in range(6):
        for c in range(2):
            assert got[c, j] == pytest.approx(exact_auc(x[:, j], y[:, c]), abs=5e-4)
        expected = 0.0 if j == 4 else np.corrcoef(x[:, j], v)[0, 1]
        assert got[2, j] == pytest.approx(expected, abs=1e-5)


def test_correlations_and_the_phrase_score_match_numpy_corrcoef(alice_text):
    text = alice_text[:12000]
    rng = np.random.default_rng(7)
    x = planted(text, rng)
    vocab = "".join(sorted(set(text)))
    cands = candidates.library(text[:9000], vocab)
    signals = candidates.signal_matrix(cands, text, vocab, np.arange(len(text)))
    r = stats.correlations(x, signals)
    for j in (0, 5, len(cands) - 1):
        for cell in range(x.shape[1]):
            expected = np.corrcoef(signals[:, j], x[:, cell])[0, 1] if signals[:, j].std() > 0 else 0.0
            assert r[j, cell] == pytest.approx(expected, abs=1e-5)
    cands, chosen = choose_on(text, x, 9000)
    for cell in range(x.shape[1]):
        predicted = explain.predict(cands, chosen["terms"][cell], chosen["weights"][cell], chosen["intercept"][cell],
                                    text, vocab)
        assert chosen["phrase_r"][cell] == pytest.approx(np.corrcoef(predicted[9000:], x[9000:, cell])[0, 1], abs=1e-4)
        assert chosen["fit_r"][cell] == pytest.approx(np.corrcoef(predicted[:9000], x[:9000, cell])[0, 1], abs=1e-4)


def planted(text, rng, noise=0.6):
    """Cells that are known predicates of `text` plus noise, and one cell of pure noise."""
    T = len(text)
    quote = inside_quotation(text).astype(np.float32)
    starts = word_start(text).astype(np.float32)
    line = line_position(text).astype(np.float32)
    return np.stack([quote + rng.normal(0, noise, T), -starts + rng.normal(0, noise, T),
                     line / 40 + rng.normal(0, 0.3, T), rng.normal(size=T)], axis=1).astype(np.float32)


def choose_on(text, x, split):
    """explain.choose on text[:split] (fit) and text[split:] (held out), as the atlas calls it."""
    vocab = "".join(sorted(set(text)))
    cands = candidates.library(text[:split], vocab)
    fit, held = np.arange(split), np.arange(split, len(text))
    fit_signals, held_signals = candidates.signal_matrix(cands, text, vocab, fit, held)
    ids = np.array([vocab.index(ch) for ch in text])
    codes = background.context_codes(ids, len(vocab))
    return cands, explain.choose(x[fit], fit_signals, x[held], held_signals, cands, ids[fit], ids[held], len(vocab),
                                 codes[fit], codes[held])


def first_terms(cands, chosen):
    return [cands[i].name if i >= 0 else None for i in chosen["terms"][:, 0]]


def test_planted_cells_are_explained_by_their_predicate_and_noise_by_nothing(alice_text):
    text = alice_text[:24000]
    x = planted(text, np.random.default_rng(1))
    cands, chosen = choose_on(text, x, 18000)
    best = first_terms(cands, chosen)
    assert best[:3] == ["named:quote", "named:word_start", "named:line_position"]
    assert chosen["weights"][0, 0] > 0 and chosen["weights"][1, 0] < 0  # the second cell is low at word starts
    for cell in range(3):
        assert explain.explained(chosen["phrase_r"][cell]), (cell, chosen["phrase_r"][cell])
    assert not explain.explained(chosen["phrase_r"][3])
    assert np.isnan(chosen["phrase_r"][3]) or abs(chosen["phrase_r"][3]) < 0.1  # noise: nothing carries over
    assert chosen["beyond_r"][0] > 0.5 > chosen["context_r"][0]  # three characters cannot say "inside a quotation"


def test_planted_composite_cells_recover_both_terms_with_their_signs(alice_text):
    """a·X + b·Y + noise, for two predicates that no single candidate stands in for."""
    from charmodel.analysis.cells import FEATURES

    text = alice_text[:24000]
    rng = np.random.default_rng(11)
    quote = inside_quotation(text).astype(np.float32)
    vowel = FEATURES["vowel"][1](text).astype(np.float32)
    line = line_position(text).astype(np.float32)
    x = np.stack([2.0 * quote - 1.0 * vowel + rng.normal(0, 0.5, len(text)),
                  -1.5 * word_start(text) + line / 30 + rng.normal(0, 0.4, len(text))], axis=1).astype(np.float32)
    cands, chosen = choose_on(text, x, 18000)
    for cell, expected in ((0, {"named:quote": 2.0, "named:vowel": -1.0}),
                           (1, {"named:word_start": -1.5, "named:line_position": 1 / 30})):
        got = {cands[j].name: float(w) for j, w in zip(chosen["terms"][cell], chosen["weights"][cell]) if j >= 0}
        assert set(expected) <= set(got), got
        for name, w in expected.items():
            assert got[name] == pytest.approx(w, rel=0.15)  # least squares recovers the weights, signs included
        assert chosen["phrase_r"][cell] > chosen["term_r"][cell, 0] + 0.05  # the second term is worth having


def test_the_background_reaches_back_three_characters_and_the_three_scores_are_what_they_say(alice_text):
    text = alice_text[:24000]
    vocab = "".join(sorted(set(text)))
    ids = np.array([vocab.index(ch) for ch in text])
    runs = background.context_codes(ids, len(vocab))
    assert background.context_text(runs[5, 0], vocab) == text[4:6] and background.context_text(runs[5, 1], vocab) == text[3:6]
    assert runs[0].tolist() == [-1, -1] and runs[1, 1] == -1
    rng = np.random.default_rng(3)
    chars = np.array(list(text))
    the = np.concatenate([[False, False], (chars[:-2] == "t") & (chars[1:-1] == "h") & (chars[2:] == "e")])
    x = np.stack([the + rng.normal(0, 0.03, len(text)), planted(text, rng)[:, 0]], axis=1).astype(np.float32)
    cands, chosen = choose_on(text, x, 18000)
    fit, held = np.arange(18000), np.arange(18000, len(text))
    codes, counts = np.unique(runs[fit][runs[fit] >= 0], return_counts=True)
    assert list(chosen["contexts"]) == list(codes[counts >= background.MIN_CONTEXT])
    assert chosen["context_profile"].shape == (2, len(chosen["contexts"]))
    assert chosen["context_profile"].dtype == np.float32  # in int8 steps of a scale per cell, as the file keeps it
    np.testing.assert_allclose(background.dequantised(*background.quantised(chosen["context_profile"])),
                               chosen["context_profile"], rtol=0, atol=1e-6)
    assert chosen["context_r"][0] > 0.95 and chosen["context_r"][1] < 0.5  # three characters say 'the', not a quotation
    assert chosen["beyond_r"][1] > 0.5 and cands[chosen["terms"][1, 0]].name == "named:quote"
    bg = background.profile_values(chosen["profile"], text, vocab, chosen["contexts"], chosen["context_profile"])
    for cell in range(2):  # each score recomputed from its definition, on the held-out part
        phrase = explain.predict(cands, chosen["terms"][cell], chosen["weights"][cell], chosen["intercept"][cell],
                                 text, vocab)
        assert chosen["phrase_r"][cell] == pytest.approx(np.corrcoef(phrase[held], x[held, cell])[0, 1], abs=1e-4)
        assert chosen["context_r"][cell] == pytest.approx(np.corrcoef(bg[held, cell], x[held, cell])[0, 1], abs=1e-4)
    # beyond_r: what the background table leaves of the phrase, against what it leaves of the cell
    used = [j for j in chosen["terms"][1] if j >= 0]
    signals = candidates.signal_matrix([cands[j] for j in used], text, vocab, np.arange(len(text)))
    s_bg = np.stack([_background_values(signals[:, i], fit, ids, runs, text, vocab, chosen["contexts"])
                     for i in range(len(used))], axis=1)
    q = ((signals - s_bg) * chosen["both_weights"][1][: len(used)]).sum(axis=1)
    expected = np.corrcoef(q[held], (x[:, 1] - bg[:, 1])[held])[0, 1]
    assert chosen["beyond_r"][1] == pytest.approx(expected, abs=1e-3)


def _background_values(column, fit, ids, runs, text, vocab, contexts):
    """One signal's background at every character, fitted on the fit rows as a cell's is."""
    profile, _, table, _ = background.fit(column[fit][:, None].astype(np.float32), ids[fit], runs[fit], len(vocab))
    return background.profile_values(profile, text, vocab, contexts, table)[:, 0]


def test_a_further_term_joins_only_if_it_raises_the_fit_r_by_the_margin(alice_text):
    text = alice_text[:24000]
    x = planted(text, np.random.default_rng(1), noise=0.05)[:, :1]  # almost exactly "inside a quotation"
    cands, chosen = choose_on(text, x, 18000)
    assert first_terms(cands, chosen) == ["named:quote"] and (chosen["terms"][0, 1:] == -1).all()
    assert np.isfinite(chosen["auc"][0]) and chosen["auc"][0] > 0.99  # one yes/no term: the AUC column too


def test_the_first_term_too_joins_only_by_the_margin():
    """A cell no candidate moves gets no phrase: the first term passes the same test as the others."""
    r = np.array([[0.008, 0.5]])  # one candidate, two cells: it tells the first nothing worth saying
    terms, (fit_r,) = explain.forward_select([(r, np.eye(1))], ok=np.array([True]), named=np.array([False]))
    assert terms[:, 0].tolist() == [-1, 0] and fit_r[1] == pytest.approx(0.5)


def test_a_named_hypothesis_wins_a_near_tie_with_a_mechanical_one():
    """Within PREFER_NAMED of |r|, the named idea is the first term a reader wants; beyond it, the
    stronger mechanical one wins."""
    r = np.array([[0.80, 0.82], [-0.795, -0.795]])  # (candidates, cells): mechanical, named
    gram = np.array([[1.0, 0.9], [0.9, 1.0]])
    terms, _ = explain.forward_select([(r, gram)], ok=np.array([True, True]), named=np.array([False, True]))
    assert terms[:, 0].tolist() == [1, 0]


def test_choice_ignores_the_held_out_part(alice_text):
    text = alice_text[:24000]
    x = planted(text, np.random.default_rng(3))
    cands, before = choose_on(text, x, 18000)
    shuffled = x.copy()
    shuffled[18000:] = np.random.default_rng(4).permutation(shuffled[18000:])  # held-out values scrambled
    changed_text = text[:18000] + "".join(np.random.default_rng(5).permutation(list(text[18000:])))
    _, after = choose_on(changed_text, shuffled, 18000)
    assert (after["terms"] == before["terms"]).all()
    assert np.allclose(after["weights"], before["weights"]) and np.allclose(after["fit_r"], before["fit_r"])
    assert not np.allclose(np.nan_to_num(after["phrase_r"]), np.nan_to_num(before["phrase_r"]))  # only the scores moved


def test_rare_predicates_are_not_eligible():
    signals = np.zeros((1000, 3), np.float32)
    signals[:20, 0] = 1  # 20 positives: too few
    signals[:300, 1] = 1
    signals[:, 2] = np.arange(1000)
    ok = stats.eligible(signals, np.array(["auc", "auc", "r"]), held_n=1000)
    assert ok.tolist() == [False, True, True]
    assert not stats.eligible(signals[:, 1:2], np.array(["auc"]), held_n=50)[0]  # 300/1000 of 50 is 15 expected


def test_signals_of_the_grammar(alice_text):
    text = "`Well!' thought Alice (to herself) HELLO, and the\n\n  end"
    vocab = "".join(sorted(set(text)))
    ids = candidates.masks(text, vocab)
    sig = lambda name: candidates.signal(candidates.Candidate(name, name, "long", "auc"), text, ids)
    as_text = lambda a: "".join("1" if v else "0" for v in a)
    assert as_text(sig("pair:()")) == as_text([22 <= t < 33 for t in range(len(text))])
    assert as_text(sig("capsword")) == as_text([36 <= t < 40 for t in range(len(text))])  # HELLO from its 2nd letter
    assert as_text(sig("after:,:2")) == as_text([t in (41, 42) for t in range(len(text))])
    assert as_text(sig("afterquote:4")) == as_text([7 <= t < 11 for t in range(len(text))])
    assert sig("indent")[-1] == 2 and sig("indent")[0] == 0
    assert sig("pos:word")[1:5].tolist() == [1, 2, 3, 4]


def test_the_grammar_for_code_is_generated_from_the_text():
    code = "".join(f"def f{i}(a, b):\n    # add 'them' [x]\n    return {{'k': (a + b) * 2}}  # done\n\n"
                   for i in range(60))
    vocab = "".join(sorted(set(code)))
    names = {c.name: c for c in candidates.library(code, vocab)}
    assert {"lead", "string:''", "linepair:()", "toeol:#", "innermost:()", "innermost:{}", "linestart:def", "linestart:return",
            "linestart:#"} <= set(names)
    assert not any(n.startswith(("string:(", "string:#", "block:")) for n in names)  # '#' is not held in pairs
    assert "string:*''" not in names  # one string mark: "any string" would repeat it
    assert names["toeol:#"].phrase == "from '#' to the end of the line" and names["lead"].group == "long"
    text = "def f(a):\n    # it's 'x'\n    return {'k': (a)}\n"
    ids = candidates.masks(text, vocab + "t")
    sig = lambda name: candidates.signal(candidates.Candidate(name, name, "long", "auc"), text, ids)
    marked = lambda name: "".join(ch if v else "_" for ch, v in zip(text, sig(name)))
    assert marked("lead") == "__________    ___________    __________________"
    assert marked("toeol:#") == "______________# it's 'x'_______________________"
    assert marked("string:''") == "_____________________'x'_____________'k'_______"  # not the apostrophe of it's
    assert marked("linepair:()") == "_____(a)__________________________________(a)__"
    assert marked("innermost:()") == "_____(a___________________________________(a___"
    assert marked("innermost:{}") == "____________________________________{'k': __)__"  # ')' leaves {} innermost again
    assert marked("linestart:return") == "___________________________________ {'k': (a)}_"  # once the word is known


# ---------------------------------------------------------------- streaming


def test_streamed_statistics_equal_the_in_memory_computation(random_run, monkeypatch):
    monkeypatch.setattr(atlas, "PIECE", 150)
    monkeypatch.setattr(atlas, "GROUP", 2)  # stretches of 300 characters: fragments cross them
    engine = Engine.load(random_run)
    train, val = Run.open(random_run).split()
    text = train + val
    got = atlas.build(engine, text, len(train))
    full = batched_activations(engine, text, piece=150, warmup=atlas.WARMUP, group=2)
    x = np.concatenate([full[key] for key in atlas.cell_keys(engine.layers)], axis=1)  # (T, N)
    assert np.allclose(got["mean"], x.mean(0), atol=1e-5) and np.allclose(got["std"], x.std(0), atol=1e-4)
    assert (got["min"] == x.min(0)).all() and (got["max"] == x.max(0)).all()
    T, F = len(text), atlas.FRAGMENT
    for i in (0, 7, x.shape[1] - 1):
        frags = [(x[a : a + F, i].max(), a + int(x[a : a + F, i].argmax())) for a in range(0, T, F)]
        top = sorted(frags, key=lambda p: (-p[0], p[1]))[: atlas.TOP]
        assert got["top_position"][i].tolist() == [p for _, p in top]
        lows = [(x[a : a + F, i].min(), a + int(x[a : a + F, i].argmin())) for a in range(0, T, F)]
        bottom = sorted(lows, key=lambda p: (p[0], p[1]))[: atlas.TOP]
        assert got["bottom_position"][i].tolist() == [p for _, p in bottom]
        ids = engine.vocab.encode(text)
        for ch in (0, 5):
            assert got["char_mean"][i, ch] == pytest.approx(x[ids == ch, i].mean(), abs=1e-5)
    fit, held, spread = atlas.sample_positions(len(train), T)
    positions = np.concatenate([fit, held[spread]])
    sample = x[positions]
    for i in (0, 7):
        hist, _ = np.histogram(sample[:, i], atlas.HISTOGRAM_BINS, (x[:, i].min(), x[:, i].max()))
        assert got["histogram"][i].tolist() == hist.tolist()
        assert (got["quantile_value"][i] == x[got["quantile_position"][i], i]).all()  # positions and values agree
        order = np.sort(sample[:, i])
        bounds = np.linspace(0, len(order), atlas.QUANTILES + 1).round().astype(int)
        for q in range(atlas.QUANTILES):  # each quantile bin's samples lie in that tenth of the values
            assert (got["quantile_value"][i, q] >= order[bounds[q]]).all()
            assert (got["quantile_value"][i, q] <= order[bounds[q + 1] - 1]).all()


def test_positions_are_a_uniform_sample_split_into_fit_and_held_out():
    fit, held, spread = atlas.sample_positions(100_000, 111_000)
    assert len(fit) == atlas.FIT_POSITIONS and fit.max() < 100_000 and held.min() >= 100_000
    assert len(spread) == round(len(fit) / 100_000 * 11_000)  # validation at the training text's rate


# ---------------------------------------------------------------- the file


@pytest.fixture(scope="module")
def built(tmp_path_factory, alice_text):
    run = make_random_run(tmp_path_factory.mktemp("atlas") / "r", alice_text[:8000], layers=2, units=12)
    return run, atlas.build_for_run(run, "best")


def test_atlas_file_round_trips_and_lists_every_cell(built):
    run, path = built
    found = atlas.load(run, "best")
    assert path.name == "atlas-best.npz" and found.meta["checkpoint"] == "best"
    rows = found.cells()
    assert len(rows) == 2 * 2 * 12 and {r["kind"] for r in rows} == {"h", "c"}
    d = found.dossier(1, "h", 3)  # the last layer's h: with the output effect
    assert len(d["top"]) == atlas.TOP and len(d["quantiles"]) == atlas.QUANTILES and d["effect"]
    assert sum(b["count"] for b in d["histogram"]) == found.meta["sample_positions"]
    assert found.dossier(0, "c", 3)["effect"] is None
    with np.load(path) as f:  # the runs' table is stored as int8 steps and read back as float32
        assert f["context_profile"].dtype == np.int8 and f["context_scale"].shape == (48,)
    assert found.arrays["context_profile"].dtype == np.float32
    # the runs the profile reaches back through: each named with what it and its shorter runs add
    correction = dict(zip((background.context_text(c, found.meta["vocab"]) for c in found.meta["contexts"]),
                          found.arrays["context_profile"][found.index(1, "h", 3)].astype(float)))
    above, below = d["runs"]["above"], d["runs"]["below"]
    assert above and below and len(above) <= atlas.RUNS_SHOWN and len(below) <= atlas.RUNS_SHOWN
    assert [v for _, v in above] == sorted((v for _, v in above), reverse=True) and all(v > 0 for _, v in above)
    assert [v for _, v in below] == sorted(v for _, v in below) and all(v < 0 for _, v in below)
    for run_text, value in above + below:
        assert 2 <= len(run_text) <= background.CONTEXT_CHARS and run_text in found_text(run)
        assert value == pytest.approx(sum(correction.get(run_text[-m:], 0.0) for m in range(2, len(run_text) + 1)),
                                      abs=1e-3)


def test_the_headline_is_the_cell_whose_phrase_says_most_beyond_three_characters(built):
    run, _ = built
    found = atlas.load(run, "best")
    a = found.arrays
    explained = np.flatnonzero(a["phrase_r"] >= explain.EXPLAINED_R)
    assert len(explained) >= 2
    first, second = (int(i) for i in explained[:2])
    a["beyond_r"][:] = np.nan
    a["beyond_r"][first], a["beyond_r"][second] = 0.6, 0.9
    key = lambda i: (i // 24, ("h", "c")[i // 12 % 2], i % 12)  # 2 layers x (h, c) x 12 cells
    assert found.index(*key(first)) == first
    best = found.headline()
    assert found.index(best["layer"], best["kind"], best["cell"]) == second  # the highest beyond r
    picked = found.headline(key(first))  # a person's pick whose phrase says something beyond: it heads Home
    assert found.index(picked["layer"], picked["kind"], picked["cell"]) == first
    a["beyond_r"][first] = 0.3  # ...and one whose phrase says little beyond gives way
    best = found.headline(key(first))
    assert found.index(best["layer"], best["kind"], best["cell"]) == second


def found_text(run) -> str:
    train, val = Run.of(run).split()
    return train + val


def test_atlas_for_other_weights_or_damaged_is_refused_with_the_rebuild_command(built, tmp_path):
    run, path = built
    saved = path.read_bytes()
    weights = (run / "best.npz").read_bytes()
    try:
        w = runfolder.load_weights_npz(run / "best.npz")
        w["dense_bias"] = w["dense_bias"] + 1
        runfolder.save_weights_npz(run / "best.npz", w)
        with pytest.raises(CharModelError, match=r"other weights.*python -m charmodel atlas --run"):
            atlas.load(run, "best")
        (run / "best.npz").write_bytes(weights)
        for damaged in (saved[: len(saved) // 2], b"\x00not a zip"):
            path.write_bytes(damaged)
            with pytest.raises(CharModelError, match="damaged.*rebuild"):
                atlas.load(run, "best")
    finally:
        (run / "best.npz").write_bytes(weights)
        path.write_bytes(saved)


def test_loading_an_atlas_never_unpickles(built):
    """An array of Python objects (a pickle) in the file is refused, not loaded."""
    run, path = built
    with rewritten(path) as arrays:
        arrays["histogram"] = np.array([object()] * len(arrays["histogram"]), dtype=object)
        np.savez(path, **arrays)
        with pytest.raises(CharModelError, match="damaged"):
            atlas.load(run, "best")
    assert zipfile.is_zipfile(path)


@contextlib.contextmanager
def rewritten(path):
    """The atlas file's arrays, to write back changed; the file is restored afterwards."""
    saved = path.read_bytes()
    try:
        with np.load(io.BytesIO(saved)) as f:
            yield {k: f[k] for k in f.files}
    finally:
        path.write_bytes(saved)


# ---------------------------------------------------------------- CLI


def test_atlas_cli_builds_then_lists(tmp_path, alice_text):
    run = make_random_run(tmp_path / "r", alice_text[:6000], layers=1, units=8)
    out = cli("atlas", "--run", run, "--list")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "python -m charmodel atlas --run" in out.stderr
    out = cli("atlas", "--run", run, "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["cells"] == 16 and set(summary["by_group"]) == set(candidates.GROUPS) and summary["bytes"] > 0
    rows = json.loads(cli("atlas", "--run", run, "--list", "--json").stdout)
    assert len(rows) == 16 and {r["layer"] for r in rows} == {1}  # counted from 1 on the CLI
    assert set(rows[0]) >= {"layer", "kind", "cell", "explanation", "phrase_r", "context_r", "beyond_r", "auc", "terms",
                            "group"}
    for r in rows:
        assert len(r["terms"]) <= explain.MAX_TERMS and r["group"] == (r["terms"][0]["group"] if r["terms"] else None)
        assert all(set(t) >= {"explanation", "group", "sign", "weight"} for t in r["terms"])
        assert not any(t["name"] == "profile" for t in r["terms"])  # the background is never a term
        assert r["explanation"] == (" · ".join(f"{t['explanation']} ({'+' if t['sign'] > 0 else '−'})"
                                               for t in r["terms"]) or atlas.NO_PHRASE)
        assert r["auc"] is None or (len(r["terms"]) == 1 and r["terms"][0]["metric"] == "auc")
        assert r["terms"] or r["phrase_r"] is None  # no phrase, no phrase score
    kept = json.loads(cli("atlas", "--run", run, "--list", "--json", "--min-score", "0.3").stdout)
    assert all(r["phrase_r"] >= 0.3 for r in kept) and len(kept) <= len(rows)
    assert summary["explained"] == sum(r["phrase_r"] is not None and r["phrase_r"] >= explain.EXPLAINED_R for r in rows)


def test_simulate_gives_the_explanation_and_the_engine_values_for_any_text(built):
    from charmodel.engine import inspect

    run, _ = built
    text = "`Well,' said Alice, `I never!' (she said)."
    out = cli("atlas", "--run", run, "--simulate", "--layer", "2", "--kind", "c", "--cell", "3", "--text", text, "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    found = atlas.load(run, "best")
    assert got["explanation"] == found.cells()[found.index(1, "c", 3)]["explanation"]
    assert len(got["simulated"]) == len(got["actual"]) == len(text)
    engine = Engine.load(run, "best")
    assert np.allclose(got["actual"], inspect(engine, text, record=("c",), layers=[1]).values(1, "c")[:, 3], atol=1e-5)
    assert np.allclose(got["simulated"], found.simulate(1, "c", 3, text), atol=1e-5)
    assert got["r"] == pytest.approx(np.corrcoef(got["simulated"], got["actual"])[0, 1], abs=1e-3)


@pytest.mark.parametrize("args, says", [
    (["--layer", "2", "--kind", "c", "--text", "abc"], "needs --cell"),
    (["--layer", "2", "--kind", "c", "--cell", "3"], "give --text or --text-file"),
    (["--layer", "7", "--kind", "c", "--cell", "3", "--text", "abc"], "out of range"),
    (["--layer", "2", "--kind", "c", "--cell", "99", "--text", "abc"], "out of range"),
    (["--layer", "2", "--kind", "c", "--cell", "3", "--text", "Ω abc"], "not in the model's vocabulary"),
    (["--layer", "2", "--kind", "c", "--cell", "3", "--text", ""], "empty"),
    (["--layer", "2", "--kind", "c", "--cell", "3", "--text-file", "no/such/file.txt"], "no/such/file.txt"),
])
def test_simulate_on_bad_input_is_one_line_and_exit_2(built, args, says):
    run, _ = built
    out = cli("atlas", "--run", run, "--simulate", *args, "--json")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and says in out.stderr, out.stderr
    assert out.stdout == ""


def test_simulate_drops_unknown_characters_when_asked(built):
    run, _ = built
    out = cli("atlas", "--run", run, "--simulate", "--layer", "1", "--kind", "h", "--cell", "0", "--text", "Ωa b",
              "--drop-unknown", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["chars"] == list("a b")


def test_an_atlas_of_the_first_format_names_the_rebuild_command(built):
    run, path = built
    with rewritten(path) as arrays:
        meta = json.loads(str(arrays["meta"]))
        np.savez(path, meta=np.array(json.dumps({**meta, "format": 1})), explanation=arrays["terms"])
        with pytest.raises(CharModelError, match=rf"format 1, not {atlas.FORMAT}.*rebuild it with `python -m charmodel atlas"):
            atlas.load(run, "best")


def test_the_string_lexer_knows_escapes_blocks_and_the_other_mark():
    parts = [("x = ", "."), ("'a\\'b'", "1"), (" + ", "."), ('"c\'d"', "2"), (" # don't\n", "."),
             ("''", "1"), ("'doc\nstring'''", "D"), (" ", "."), ("'open", "1"), ("\ny = f(a, (b)\n) g(x)\n", ".")]
    text = "".join(p for p, _ in parts)
    state = predicates.string_state(text, "'\"")
    assert "".join(".12"[v] if v >= 0 else "D" for v in state) == "".join(k * len(p) for p, k in parts)
    brackets = "".join("X" if v else "_" for v in predicates.line_bracket(text, "(", ")"))
    assert [text[m.start():m.end()] for m in re.finditer("X+", brackets)] == ["(a, (b)", "(x)"]  # the newline closes
    lines = "".join(f"s = 'a' + \"b\"  # it's '{i}'\n" for i in range(40)) + '"""doc"""\n' * 40
    assert predicates.string_marks(lines) == "'\""  # the apostrophe of it's and the tripled marks set aside
    assert predicates.string_marks("it's `quoted' here\n" * 40) == ""  # Alice's quotation marks are not strings


def test_a_windowed_atlas_reads_only_its_sampled_positions_each_from_its_window(tmp_path, alice_text):
    text = alice_text[:4000]
    run = make_random_run(tmp_path / "w", text, layers=2, units=6)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "window": 8}))
    engine = Engine.load(run, "best")
    ids = engine.vocab.encode(text, "t")
    positions = np.array([0, 3, 6, 7, 8, 100, 1234, len(text) - 1])
    _, rec, _ = engine.forward(ids[None], record=("h", "c"))  # the ring of windows over the whole text
    whole = np.concatenate([rec[key][0] for key in atlas.cell_keys(2)], axis=1)
    assert np.allclose(atlas.window_values(engine, ids, positions), whole[positions], atol=1e-5)
    atlas.build_for_run(run, "best")
    found = atlas.load(run, "best")
    meta = found.meta
    read = meta["fit_positions"] + meta["held_positions"]
    assert meta["summary_positions"] == read <= atlas.WINDOWED_SHARE * len(text) + 1
    fit, held, _ = atlas.sample_positions(meta["train_chars"], len(text), share=atlas.WINDOWED_SHARE)
    sample = whole[np.concatenate([fit, held])]
    assert np.allclose(found.arrays["mean"], sample.mean(axis=0), atol=1e-5)  # the summary is the sample's
    assert np.allclose(found.arrays["max"], sample.max(axis=0)) and np.allclose(found.arrays["min"], sample.min(axis=0))
    top = found.arrays["top_position"][:, 0]  # each cell's largest sampled value, at its position
    assert np.allclose(whole[top, np.arange(whole.shape[1])], sample.max(axis=0), atol=1e-6)
    assert np.isfinite(found.arrays["context_r"]).any()
