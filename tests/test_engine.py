import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.engine import KINDS, Engine, bits_per_char, inspect, iter_inspect, softmax
from charmodel.run import folder as runfolder


def naive_lstm(weights, ids, layers):
    """Textbook LSTM in float64, gate order i, f, g, o, with 1 / (1 + exp(-x)) sigmoids."""
    sig = lambda x: 1 / (1 + np.exp(-x))
    x = weights["embedding"].astype(np.float64)[ids]  # (T, E)
    out = {}
    for l in range(layers):
        K, R, b = (weights[f"lstm{l}_{n}"].astype(np.float64) for n in ("kernel", "recurrent", "bias"))
        U = R.shape[0]
        h, c = np.zeros(U), np.zeros(U)
        rec = {k: [] for k in KINDS}
        for t in range(len(ids)):
            z = x[t] @ K + h @ R + b
            i, f, g, o = sig(z[:U]), sig(z[U:2 * U]), np.tanh(z[2 * U:3 * U]), sig(z[3 * U:])
            c = f * c + i * g
            h = o * np.tanh(c)
            for k, v in zip(KINDS, (h, c, i, f, g, o)):
                rec[k].append(v)
        for k in KINDS:
            out[(l, k)] = np.array(rec[k])
        x = out[(l, "h")]
    logits = x @ weights["dense_kernel"] + weights["dense_bias"]
    return out, softmax(logits)


def test_numpy_engine_matches_keras_on_500_characters(random_run, small_text):
    import keras

    from charmodel.training import model as kmodel

    weights = runfolder.load_weights_npz(random_run / "best.npz")
    engine = Engine.load(random_run)
    text = small_text[:500]
    ids = engine.vocab.encode(text)
    m = kmodel.build(len(engine.vocab), layers=2, units=24, dropout=0.0, embedding=8)
    kmodel.import_weights(m, weights)
    probe = keras.Model(m.input, [m.get_layer("lstm0").output, m.get_layer("lstm1").output, m.output])
    h0, h1, logits = (np.asarray(a)[0] for a in probe(ids[None]))

    ins = inspect(engine, text, chunk_len=128)  # chunk boundaries must not matter
    assert np.abs(ins.values(0, "h") - h0).max() < 1e-4
    assert np.abs(ins.values(1, "h") - h1).max() < 1e-4
    engine_logits, _, _ = engine.forward(ids[None])
    assert np.abs(softmax(engine_logits[0]) - softmax(logits)).max() < 1e-4

    # the final cell state agrees with Keras' return_state
    lstm = keras.layers.LSTM(24, return_state=True)
    lstm.build((None, None, 24))
    lstm.set_weights([weights["lstm1_kernel"], weights["lstm1_recurrent"], weights["lstm1_bias"]])
    _, _, c_last = lstm(h0[None])
    assert np.abs(ins.values(1, "c")[-1] - np.asarray(c_last)[0]).max() < 1e-4


def test_every_state_and_gate_matches_a_textbook_lstm(random_run, small_text):
    weights = runfolder.load_weights_npz(random_run / "best.npz")
    engine = Engine.load(random_run)
    text = small_text[:300]
    ref, probs = naive_lstm(weights, engine.vocab.encode(text), layers=2)
    ins = inspect(engine, text, chunk_len=100)
    for key, want in ref.items():
        assert ins.values(*key).shape == (300, 24)
        assert np.abs(ins.values(*key) - want).max() < 1e-4, key
    # top-1 guess and surprisal come from the same probabilities
    assert np.array_equal(ins.top_ids[:, 0], probs.argmax(axis=1))
    ids = engine.vocab.encode(text)
    want_bits = -np.log2(probs[np.arange(299), ids[1:]])
    assert np.isnan(ins.surprisal_bits[0])
    assert np.abs(ins.surprisal_bits[1:] - want_bits).max() < 1e-3


def test_stateful_bpc_carries_state_across_chunks(random_run, small_text):
    engine = Engine.load(random_run)
    text = small_text[:1000]
    one_chunk = bits_per_char(engine, text, chunk_len=5000)
    many_chunks = bits_per_char(engine, text, chunk_len=97)
    assert abs(one_chunk - many_chunks) < 1e-5


def test_inspection_streams_in_bounded_chunks(random_run, small_text):
    engine = Engine.load(random_run)
    sizes = [len(part.text) for _, part in iter_inspect(engine, small_text[:1050], record=("c",), chunk_len=500)]
    assert sizes == [500, 500, 50]


def test_inspection_names_characters_outside_the_vocabulary(random_run):
    engine = Engine.load(random_run)
    with pytest.raises(CharModelError, match="'€'"):
        inspect(engine, "Alice €")


def test_damaged_checkpoint_gives_a_message(random_run):
    (random_run / "best.npz").write_bytes(b"not a zip file")
    with pytest.raises(CharModelError, match="damaged"):
        Engine.load(random_run)


def test_checkpoint_with_pickled_objects_is_refused(random_run):
    # an object array needs pickle to load; allow_pickle=False must refuse it, never run it
    np.savez(random_run / "best.npz", embedding=np.array([object()], dtype=object))
    with pytest.raises(CharModelError, match="damaged"):
        Engine.load(random_run)


def test_weights_and_config_vocab_must_agree(random_run):
    import json

    cfg = json.loads((random_run / "config.json").read_text())
    cfg["vocab"] = cfg["vocab"][:-1]
    (random_run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CharModelError, match="inconsistent"):
        Engine.load(random_run)


def _blas_threads() -> set:
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_every_engine_loop_runs_with_one_blas_thread(random_run, monkeypatch):
    """Sampling, clamping, inspection, bpc, batched activations and ranking all step through an
    Engine; a spy on np.tanh (called once per step) reads BLAS's thread count inside the loops,
    here in another thread than the one that built the engine, as in two app sessions."""
    import threading

    from threadpoolctl import threadpool_limits

    from charmodel.analysis.cells import batched_activations, feature, rank_cells
    from charmodel.engine.sampling import generate

    threadpool_limits(2, "blas")  # as NumPy starts on a 2-core machine
    if _blas_threads() != {2}:
        pytest.skip("no BLAS library that threadpoolctl can set")
    engine = Engine.load(random_run)
    assert _blas_threads() == {1}
    seen = []
    real_tanh = np.tanh

    def spy(*args, **kwargs):
        if len(seen) < 200:  # threadpool_info is slow; a sample of steps is enough
            seen.append(_blas_threads())
        return real_tanh(*args, **kwargs)

    text = "Alice was beginning to get very tired of sitting by her sister on the bank"
    parts = {
        "generate": lambda: generate(engine, "Alice ", 20, 0.8, seed=1),
        "clamp": lambda: generate(engine, "Alice ", 20, 0.8, seed=1, clamp=(0, "c", 3, 1.0)),
        "inspect": lambda: inspect(engine, text),
        "bits_per_char": lambda: bits_per_char(engine, text),
        "rank": lambda: rank_cells(batched_activations(engine, text * 20, piece=100, warmup=50),
                                   feature("word_start", text * 20)),
    }
    found = {}

    def session():
        for name, part in parts.items():
            seen.clear()
            part()
            found[name] = set().union(*seen)

    monkeypatch.setattr(np, "tanh", spy)
    t = threading.Thread(target=session)
    t.start()
    t.join()
    monkeypatch.undo()
    assert found == {name: {1} for name in parts}


def test_a_pass_without_logits_stops_at_the_highest_layer_asked_for(random_run, small_text):
    engine = Engine.load(random_run)
    ids = engine.vocab.encode(small_text[:300])[None]
    full_logits, full, full_carry = engine.forward(ids, record=("h", "c"))
    logits, part, carry = engine.forward(ids, record=("h", "c"), layers=[0], logits=False)
    assert logits is None and set(part) == {(0, "h"), (0, "c")}
    np.testing.assert_array_equal(part[(0, "c")], full[(0, "c")])
    np.testing.assert_array_equal(carry.h[0], full_carry.h[0])
    # layer 2 was not run: its carry is the zero carry the pass started from
    assert not carry.h[1].any() and not carry.c[1].any() and full_carry.c[1].any()
    assert full_logits.shape == (1, 300, len(engine.vocab))


def test_threads_from_the_flag_or_the_environment_and_one_line_when_wrong(random_run, monkeypatch):
    from threadpoolctl import ThreadpoolController

    from charmodel.engine import threads as engine_module

    from .test_cli import cli

    blas = lambda: {m["num_threads"] for m in ThreadpoolController().select(user_api="blas").info()}
    want = min(2, engine_module.cores())
    monkeypatch.setattr(engine_module, "_threads", None)  # as in a fresh process (the app's pages set 1)
    try:
        monkeypatch.setenv("CHARMODEL_THREADS", str(want))
        Engine.load(random_run, "best")
        assert blas() == {want}  # the environment, when nothing set it
        engine_module.set_threads(1)
        assert blas() == {1} and engine_module.blas_threads() == 1  # set_threads wins over the environment
        with pytest.raises(CharModelError, match="--threads must be a whole number of threads from 1 to"):
            engine_module.set_threads("two")
    finally:
        engine_module._threads = None
        monkeypatch.delenv("CHARMODEL_THREADS")
        engine_module.pin_blas()
    assert blas() == {1}  # the default (monkeypatch then restores what an earlier test had set)
    for args, env in ((("--threads", "0"), {}), ((), {"CHARMODEL_THREADS": "lots"})):
        out = cli("generate", "--run", random_run, "--length", 5, *args, env=env)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "threads from 1 to" in out.stderr, out.stderr
    out = cli("generate", "--run", random_run, "--length", 5, "--threads", want)
    assert out.returncode == 0, out.stderr


def test_a_windowed_engine_gives_each_characters_own_zero_state_window(random_run):
    """Every value, logits and the carry continued across calls, and a held cell, against a
    separate zero-state pass over the W characters ending there."""
    stateful = Engine.load(random_run, "best")
    windowed = Engine.load(random_run, "best")
    windowed.window = W = 7
    ids = stateful.vocab.encode("Alice was beginning to get very tired")[None].repeat(2, axis=0)
    ids[1] = ids[1][::-1]
    logits, rec, _ = windowed.forward(ids, record=KINDS)
    _, part, carry = windowed.forward(ids[:, :10], record=("c",))
    later, rest, _ = windowed.forward(ids[:, 10:], carry, record=("c",))
    held, _, _ = windowed.forward(ids, record=(), clamp=(1, "c", [[3], [5]], [[0.5], [-0.2]]))
    for b in range(2):
        for t in range(ids.shape[1]):
            s = max(0, t - W + 1)
            want, wrec, _ = stateful.forward(ids[b : b + 1, s : t + 1], record=KINDS)
            assert np.abs(want[0, -1] - logits[b, t]).max() < 1e-5
            assert all(np.abs(wrec[k][0, -1] - rec[k][b, t]).max() < 1e-5 for k in wrec)
            cell = [[3], [5]][b]
            clamp = (1, "c", [cell], [[[0.5], [-0.2]][b]])
            assert np.abs(stateful.forward(ids[b : b + 1, s : t + 1], record=(), clamp=clamp)[0][0, -1]
                          - held[b, t]).max() < 1e-5
    assert np.abs(np.concatenate([part[(1, "c")], rest[(1, "c")]], axis=1) - rec[(1, "c")]).max() < 1e-6
    assert np.abs(later - logits[:, 10:]).max() < 1e-6
    carry = windowed.zero_carry(2)  # step(), as generation uses it
    steps = np.stack([windowed.step(ids[:, t], carry) for t in range(ids.shape[1])], axis=1)
    assert np.abs(steps - logits).max() < 1e-5


def test_a_clamp_that_changes_with_the_step_is_a_replacement(random_run):
    """Values (rows, T, k): at step t each row's cells are held at values[:, t]. The same as T
    one-character passes, each holding that step's values, the carry passed on; stateful and
    windowed; a per-step clamp with the same value at every step is the constant clamp."""
    engine = Engine.load(random_run, "best")
    rng = np.random.default_rng(3)
    ids = rng.integers(0, len(engine.vocab), size=(2, 30))
    cells = np.array([[3, 7], [5, 7]])  # each row its own cells
    values = rng.normal(0, 0.5, size=(2, 30, 2)).astype(np.float32)
    for eng in (engine, engine.with_window(6)):
        for kind in ("h", "c"):
            logits, records, _ = eng.forward(ids, record=("h", "c"), clamp=(1, kind, cells, values))
            carry = None
            for t in range(ids.shape[1]):
                one, rec, carry = eng.forward(ids[:, t : t + 1], carry, record=("h", "c"),
                                              clamp=(1, kind, cells, values[:, t]))
                assert np.allclose(one[:, 0], logits[:, t], atol=1e-5)
                assert np.allclose(rec[(1, kind)][:, 0], records[(1, kind)][:, t], atol=1e-6)
            held = records[(1, kind)][np.arange(2)[:, None, None], np.arange(30)[None, :, None], cells[:, None, :]]
            assert np.allclose(held, values)  # the recorded cells are what was held
        constant = np.broadcast_to(values[:, :1], values.shape)
        assert np.allclose(eng.forward(ids, record=(), clamp=(0, "c", cells, constant))[0],
                           eng.forward(ids, record=(), clamp=(0, "c", cells, values[:, 0]))[0], atol=1e-6)
    with pytest.raises(ValueError):
        engine.forward(ids, record=(), clamp=(1, "c", cells, values[:, :10]))  # values for 10 steps, not 30


def test_several_layers_and_kinds_are_held_at_once(random_run):
    engine = Engine.load(random_run, "best")
    ids = np.random.default_rng(4).integers(0, len(engine.vocab), size=(1, 40))
    per_step = np.linspace(-0.5, 0.5, 40, dtype=np.float32)[None, :, None]
    for eng in (engine, engine.with_window(5)):
        both = [(0, "c", [[2]], [[0.3]]), (1, "h", [[4]], per_step)]
        _, records, _ = eng.forward(ids, record=("h", "c"), clamp=both)
        assert np.allclose(records[(0, "c")][0, :, 2], 0.3) and np.allclose(records[(1, "h")][0, :, 4], per_step[0, :, 0])
        one = eng.forward(ids, record=(), clamp=both[:1])[0]
        assert not np.allclose(one, eng.forward(ids, record=(), clamp=both)[0])  # the second clamp did something
