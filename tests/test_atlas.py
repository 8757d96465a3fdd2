"""The atlas: explanations generated and scored honestly, streamed statistics, the file, the CLI."""

import io
import json
import zipfile

import numpy as np
import pytest

from charmodel import CharModelError, atlas, explain, runfolder
from charmodel.cells import batched_activations, inside_quotation, line_position, word_start
from charmodel.engine import Engine

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
    got = explain.scores(x, signals, np.array(["auc", "auc", "r"]))
    for j in range(6):
        for c in range(2):
            assert got[c, j] == pytest.approx(exact_auc(x[:, j], y[:, c]), abs=5e-4)
        expected = 0.0 if j == 4 else np.corrcoef(x[:, j], v)[0, 1]
        assert got[2, j] == pytest.approx(expected, abs=1e-5)


def planted(text, rng, noise=0.6):
    """Cells that are known predicates of `text` plus noise, and one cell of pure noise."""
    T = len(text)
    quote = inside_quotation(text).astype(np.float32)
    starts = word_start(text).astype(np.float32)
    line = line_position(text).astype(np.float32)
    return np.stack([quote + rng.normal(0, noise, T), -starts + rng.normal(0, noise, T),
                     line / 40 + rng.normal(0, 0.3, T), rng.normal(size=T)], axis=1).astype(np.float32)


def choose_on(text, x, split):
    vocab = "".join(sorted(set(text)))
    cands = explain.library(text[:split], vocab)
    fit, held = np.arange(split), np.arange(split, len(text))
    chosen = explain.choose(x[fit], explain.signal_matrix(cands, text, vocab, fit), x[held],
                            explain.signal_matrix(cands, text, vocab, held), cands)
    return cands, chosen


def test_planted_cells_are_explained_by_their_predicate_and_noise_by_nothing(alice_text):
    text = alice_text[:24000]
    x = planted(text, np.random.default_rng(1))
    cands, chosen = choose_on(text, x, 18000)
    best = [cands[i] for i in chosen["index"][:, 0]]
    assert best[0].name == "named:quote" and chosen["direction"][0, 0] == 1
    assert best[1].name == "named:word_start" and chosen["direction"][1, 0] == -1  # low at word starts
    assert best[2].name == "named:line_position" and best[2].metric == "r"
    for cell in range(3):
        assert explain.explained(chosen["held"][cell, 0], best[cell].metric), (cell, chosen["held"][cell, 0])
    assert not any(explain.explained(h, cands[i].metric) for i, h in zip(chosen["index"][3], chosen["held"][3]))


def test_a_named_hypothesis_wins_a_near_tie_with_a_mechanical_one(alice_text):
    """First character of a word and 'the previous character is a space' almost coincide; the named
    idea is the explanation a reader wants."""
    text = alice_text[:24000]
    x = planted(text, np.random.default_rng(2), noise=0.05)
    cands, chosen = choose_on(text, x, 18000)
    names = [cands[i].name for i in chosen["index"][1]]
    assert names[0] == "named:word_start"
    assert any(n.startswith("prev") for n in names[1:]) or "after: :2" in names  # the mechanical rival was close


def test_choice_ignores_the_held_out_part(alice_text):
    text = alice_text[:24000]
    x = planted(text, np.random.default_rng(3))
    cands, before = choose_on(text, x, 18000)
    shuffled = x.copy()
    shuffled[18000:] = np.random.default_rng(4).permutation(shuffled[18000:])  # held-out values scrambled
    changed_text = text[:18000] + "".join(np.random.default_rng(5).permutation(list(text[18000:])))
    _, after = choose_on(changed_text, shuffled, 18000)
    assert (after["index"] == before["index"]).all() and (after["direction"] == before["direction"]).all()
    assert not np.allclose(np.nan_to_num(after["held"]), np.nan_to_num(before["held"]))  # only the scores moved


def test_rare_predicates_are_not_eligible():
    signals = np.zeros((1000, 3), np.float32)
    signals[:20, 0] = 1  # 20 positives: too few
    signals[:300, 1] = 1
    signals[:, 2] = np.arange(1000)
    ok = explain.eligible(signals, np.array(["auc", "auc", "r"]), held_n=1000)
    assert ok.tolist() == [False, True, True]
    assert not explain.eligible(signals[:, 1:2], np.array(["auc"]), held_n=50)[0]  # 300/1000 of 50 is 15 expected


def test_signals_of_the_grammar(alice_text):
    text = "`Well!' thought Alice (to herself) HELLO, and the\n\n  end"
    vocab = "".join(sorted(set(text)))
    ids = explain.masks(text, vocab)
    sig = lambda name: explain.signal(explain.Candidate(name, name, "long", "auc"), text, ids)
    as_text = lambda a: "".join("1" if v else "0" for v in a)
    assert as_text(sig("pair:()")) == as_text([22 <= t < 33 for t in range(len(text))])
    assert as_text(sig("capsword")) == as_text([35 <= t < 40 for t in range(len(text))])
    assert as_text(sig("after:,:2")) == as_text([t in (41, 42) for t in range(len(text))])
    assert as_text(sig("afterquote:4")) == as_text([7 <= t < 11 for t in range(len(text))])
    assert sig("indent")[-1] == 2 and sig("indent")[0] == 0
    assert sig("pos:word")[1:5].tolist() == [1, 2, 3, 4]


# ---------------------------------------------------------------- streaming


def test_streamed_statistics_equal_the_in_memory_computation(random_run, monkeypatch):
    monkeypatch.setattr(atlas, "PIECE", 150)
    monkeypatch.setattr(atlas, "GROUP", 2)  # stretches of 300 characters: fragments cross them
    engine = Engine.load(random_run)
    train, val = runfolder.split_text(random_run)
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
    saved = path.read_bytes()
    try:
        with np.load(io.BytesIO(saved)) as f:
            arrays = {k: f[k] for k in f.files}
        arrays["histogram"] = np.array([object()] * len(arrays["histogram"]), dtype=object)
        np.savez(path, **arrays)
        with pytest.raises(CharModelError, match="damaged"):
            atlas.load(run, "best")
    finally:
        path.write_bytes(saved)
    assert zipfile.is_zipfile(path)


# ---------------------------------------------------------------- CLI


def test_atlas_cli_builds_then_lists(tmp_path, alice_text):
    run = make_random_run(tmp_path / "r", alice_text[:6000], layers=1, units=8)
    out = cli("atlas", "--run", run, "--list")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "python -m charmodel atlas --run" in out.stderr
    out = cli("atlas", "--run", run, "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["cells"] == 16 and set(summary["by_group"]) == set(explain.GROUPS) and summary["bytes"] > 0
    rows = json.loads(cli("atlas", "--run", run, "--list", "--json").stdout)
    assert len(rows) == 16 and {r["layer"] for r in rows} == {1}  # counted from 1 on the CLI
    assert set(rows[0]) >= {"layer", "kind", "cell", "explanation", "score", "metric"}
    assert all(r["metric"] in ("auc", "r", None) for r in rows)
    kept = json.loads(cli("atlas", "--run", run, "--list", "--json", "--min-score", "0.6").stdout)
    assert all(r["score"] >= 0.6 for r in kept) and len(kept) <= len(rows)
