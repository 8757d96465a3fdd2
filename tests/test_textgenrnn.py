"""textgenrnn's models: its pretrained one and others trained with other settings import, are
checked against Keras, generate, score and build an atlas; word-level and bidirectional ones are
refused in one line with nothing written.

Files of other settings are written here as textgenrnn writes them: the weights with h5py in Keras 2's
weights-only layout (root `layer_names`, a group per layer with `weight_names`, textgenrnn's layer
names), NAME_vocab.json and NAME_config.json. Their weights are those of a Keras model of textgenrnn's
architecture built here (the attention as standard layers), and what that Keras model predicts on
textgenrnn's own padded windows is what the imported run must give."""

import json
import shutil

import h5py
import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.engine import Engine, generate, softmax
from charmodel.engine.inspection import attention_weights
from charmodel.exchange import keras_io, textgenrnn
from charmodel.run.corpus import Vocab
from charmodel.run.handle import Run

from .conftest import ROOT
from .test_cli import cli

PRETRAINED = ROOT / "tests" / "data" / "textgenrnn"
CHARS = "abcdefghij .,'"


def write_weights(path, layers, version=b"2.1.5"):
    """A Keras 2 weights-only HDF5 file: layers = [(name, {weight name: array or shape})]."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name, _ in layers]
        f.attrs["keras_version"] = version
        f.attrs["backend"] = b"tensorflow"
        for name, weights in layers:
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{w}".encode() for w in weights]
            for w, value in weights.items():
                data = np.zeros(value, np.float32) if isinstance(value, tuple) else value
                group.create_dataset(f"{name}/{w}", data=data)
    return path


def random_weights(vocab_size, dim, units, layers, seed=0) -> dict:
    """textgenrnn-shaped weights in Keras' LSTM layout, large enough that the cells and the attention vary."""
    rng = np.random.default_rng(seed)
    n = lambda *shape, s=0.4: (rng.normal(size=shape) * s).astype(np.float32)
    out = {"embedding": n(vocab_size, dim, s=1.0)}
    for l in range(layers):
        out |= {f"lstm{l}_kernel": n(dim if l == 0 else units, 4 * units),
                f"lstm{l}_recurrent": n(units, 4 * units), f"lstm{l}_bias": n(4 * units, s=0.1)}
    width = dim + layers * units
    return out | {"attention_W": n(width, s=0.3), "dense_kernel": n(width, vocab_size), "dense_bias": n(vocab_size)}


def to_cudnn(kernel, recurrent, bias):
    """Keras' LSTM weights as Keras 2's CuDNNLSTM stored them (what keras_file.cudnn_to_lstm undoes)."""
    gates = lambda k, f: np.hstack([f(b) for b in np.hsplit(k, 4)])
    kernel = gates(kernel, lambda b: b.reshape((b.shape[1], b.shape[0]), order="F").T)
    recurrent = gates(recurrent, lambda b: b.T)
    return kernel, recurrent, np.concatenate([bias * 0.25, bias * 0.75])


def textgenrnn_files(folder, weights, name="tiny", config=None, chars=CHARS, cudnn=False):
    """NAME_weights.hdf5, NAME_vocab.json and (with config) NAME_config.json as textgenrnn writes them."""
    layers = sum(1 for k in weights if k.endswith("_recurrent"))
    spec = [("input", {}), ("embedding", {"embeddings:0": weights["embedding"]})]
    for l in range(layers):
        w = [weights[f"lstm{l}_kernel"], weights[f"lstm{l}_recurrent"], weights[f"lstm{l}_bias"]]
        w = to_cudnn(*w) if cudnn else w
        spec.append((f"rnn_{l + 1}", dict(zip(("kernel:0", "recurrent_kernel:0", "bias:0"), w))))
    spec += [("rnn_concat", {}), ("attention", {"attention_W:0": weights["attention_W"][:, None]}),
             ("output", {"kernel:0": weights["dense_kernel"], "bias:0": weights["dense_bias"]})]
    path = write_weights(folder / f"{name}_weights.hdf5", spec)
    vocab = {c: i + 1 for i, c in enumerate(chars)} | {"<s>": len(chars) + 1}
    (folder / f"{name}_vocab.json").write_text(json.dumps(vocab))
    if config is not None:
        (folder / f"{name}_config.json").write_text(json.dumps(config))
    return path


def settings(**changes):
    return {"rnn_layers": 2, "rnn_size": 8, "rnn_bidirectional": False, "max_length": 12, "dim_embeddings": 6,
            "word_level": False, "single_text": False, "max_words": 10000} | changes


def corpus(tmp_path, text="abc def, ghij.\n'cab' bad fig.\nhe hid a jig.\n" * 40):
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- the engine's attention head

def small_engine(window=5, units=6, layers=2, dim=4, seed=0):
    vocab = Vocab("\x00" + CHARS + "\n")
    return Engine(random_weights(len(vocab), dim, units, layers, seed), vocab, window, padding=0,
                  start=len(vocab) - 1), vocab


def textgenrnn_window(text: str, t: int, W: int, vocab) -> np.ndarray:
    """What textgenrnn feeds its model to predict the character after text[t]: each line is a text
    that begins with <s> (here the newline), its last W ids, left-padded with id 0."""
    line = text.rfind("\n", 0, t + 1)
    ids = vocab.encode(text[max(line, 0) : t + 1])
    return np.concatenate([np.zeros(W, int), ids])[-W:]


def test_the_ring_of_padded_windows_gives_what_each_window_gives_alone():
    engine, vocab = small_engine()
    W, text = engine.window, "abc def, ghij.\nhe hid a\n\nbig fig"
    logits, rec, _ = engine.forward(vocab.encode(text)[None], record=("h", "c"))
    plain = engine.window_reader()
    for t in range(len(text)):
        window = textgenrnn_window(text, t, W, vocab)
        assert (engine.windows(vocab.encode(text), np.array([t]))[0] == window).all()
        theirs, r, _ = plain.forward(window[None], plain.blank_carry(1), record=("h", "c"))
        assert np.abs(theirs[0, -1] - logits[0, t]).max() < 1e-5, t
        assert np.abs(r[(1, "c")][0, -1] - rec[(1, "c")][0, t]).max() < 1e-5
    no_line = vocab.encode("abc")
    assert (engine.windows(no_line, np.array([1]))[0] == [0, 0, 0, no_line[0], no_line[1]]).all()
    # a stateful reading starts over at each line as well, from the padding
    plain_logits, _, _ = engine.stateful().forward(vocab.encode(text)[None], record=())
    line = text.index("\n")
    alone, _, _ = engine.stateful().forward(vocab.encode(text[line:])[None], record=())
    assert np.abs(plain_logits[0, line:] - alone[0]).max() < 1e-5


def test_the_head_is_the_attention_weighted_average_written_out():
    engine, vocab = small_engine(seed=3)
    W, text = engine.window, "hid a jig,\nhe bad"
    logits, _, _ = engine.forward(vocab.encode(text)[None], record=())
    plain = engine.window_reader()
    for position in (1, 9, 11, len(text) - 1):
        window = textgenrnn_window(text, position, W, vocab)
        _, rec, _ = plain.forward(window[None], plain.blank_carry(1), record=("h",))
        x = np.concatenate([engine.emb[window]] + [rec[(l, "h")][0] for l in range(engine.layers)], axis=1)
        e = x.astype(np.float64) @ engine.attention.w  # textgenrnn's AttentionWeightedAverage, written out
        a = np.exp(e - e.max())
        a /= a.sum() + 1e-7
        assert np.abs((a[:, None] * x).sum(axis=0) @ engine.Wd + engine.bd - logits[0, position]).max() < 1e-4
        read = attention_weights(engine, text, position)  # what Visualise shows
        pads = W - len(read["weights"])
        assert read["chars"] == text[read["start"] : position + 1] and len(read["chars"]) == len(read["weights"])
        assert np.allclose(read["weights"], a[pads:]) and np.isclose(read["padding"], a[:pads].sum())


def test_generation_starts_after_the_start_token_and_never_samples_the_padding():
    engine, vocab = small_engine()
    engine.bd[0] = 30.0  # the padding would be almost every choice if it could be chosen
    texts = generate(engine, "he", length=200, temperature=1.0, seed=1, samples=3)
    assert all(len(t) == 200 and "\x00" not in t for t in texts)
    assert generate(engine, "he", length=50, seed=2) == generate(engine, "\nhe", length=50, seed=2)  # <s> put first
    assert generate(engine, "", length=50, seed=2) == generate(engine, "\n", length=50, seed=2)


# ---------------------------------------------------------------- refused, in one line

@pytest.mark.parametrize("config, said", [
    (settings(word_level=True), "is a word-level textgenrnn model (tiny_config.json); only character models import."),
    (settings(rnn_bidirectional=True), "is a bidirectional textgenrnn model (tiny_config.json)"),
])
def test_word_level_and_bidirectional_models_are_refused_in_one_line_and_nothing_is_written(tmp_path, config, said):
    weights = textgenrnn_files(tmp_path, random_weights(len(CHARS) + 2, 6, 8, 2), config=config)
    into = tmp_path / "runs"
    for flags in ([], ["--name", "t", "--corpus", str(corpus(tmp_path))]):  # before --name is asked for, and with it
        done = cli("import", weights, "--into", into, *flags)
        assert done.returncode == 2, done.stderr
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not into.exists()


@pytest.mark.parametrize("change, said", [
    (lambda folder: (folder / "tiny_vocab.json").unlink(), "needs its vocabulary: tiny_vocab.json is not beside it"),
    (lambda folder: (folder / "tiny_config.json").write_text(json.dumps(settings(rnn_layers=3))),
     "has 2 LSTM layers but tiny_config.json says 3"),
    (lambda folder: (folder / "tiny_config.json").write_text("{not json"), "tiny_config.json is not a textgenrnn config"),
    (lambda folder: (folder / "tiny_vocab.json").write_text(json.dumps({"a": 1, "b": 3, "<s>": 4})),
     "indices must be the whole numbers 1 to 3"),
    (lambda folder: (folder / "tiny_vocab.json").write_text(json.dumps({"a": 1, "the": 2, "<s>": 3})),
     "a word-level vocabulary; only character models import"),
    (lambda folder: (folder / "corpus.txt").write_text("abc XYZ\n" * 50), "has 3 character(s) the model does not know"),
])
def test_bad_companions_and_corpora_get_one_line_and_nothing_is_written(tmp_path, change, said):
    weights = textgenrnn_files(tmp_path, random_weights(len(CHARS) + 2, 6, 8, 2), config=settings())
    text = corpus(tmp_path)
    change(tmp_path)
    done = cli("import", weights, "--name", "t", "--corpus", text, "--into", tmp_path / "runs")
    assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "runs" / "t").exists()


def test_keras_flags_are_refused_for_a_textgenrnn_model_and_textgenrnn_flags_for_others(tmp_path):
    weights = textgenrnn_files(tmp_path, random_weights(len(CHARS) + 2, 6, 8, 2), config=settings())
    done = cli("import", weights, "--name", "t", "--corpus", corpus(tmp_path), "--window", "40", "--into", tmp_path)
    assert done.returncode == 2 and "--window is for a Keras char-LSTM" in done.stderr, done.stderr
    other = write_weights(tmp_path / "plain.h5", [("lstm", {"kernel:0": (3, 8), "recurrent_kernel:0": (2, 8),
                                                            "bias:0": (8,)})])
    done = cli("import", other, "--name", "p", "--textgenrnn-vocab", tmp_path / "tiny_vocab.json", "--into", tmp_path)
    assert done.returncode == 2 and "--textgenrnn-vocab is for a textgenrnn model" in done.stderr, done.stderr


# ---------------------------------------------------------------- imported, and checked against Keras

@pytest.mark.slow
@pytest.mark.parametrize("layers, units, window, dim, cudnn", [(3, 64, 20, 32, False), (2, 12, 9, 6, True)])
def test_a_model_of_other_settings_imports_and_predicts_as_keras_does(tmp_path, layers, units, window, dim, cudnn):
    import keras

    V = len(CHARS) + 2
    weights = random_weights(V, dim, units, layers, seed=layers)
    path = textgenrnn_files(tmp_path, weights, config=settings(rnn_layers=layers, rnn_size=units, max_length=window,
                                                               dim_embeddings=dim), cudnn=cudnn)
    said = []
    run = keras_io.import_keras(path, tmp_path / "runs", "t", corpus=corpus(tmp_path), report=said.append)
    assert "checked against Keras" in said[0], said
    engine = Engine.load(run)
    assert (engine.layers, engine.units, engine.window) == (layers, units, window)
    # what the Keras model of textgenrnn's architecture gives on textgenrnn's windows (left-padded with 0)
    model = textgenrnn.rebuilt(keras, weights, window)
    text = "he hid a jig, 'cab' bad fig.\nabc def"
    ids = engine.vocab.encode(text)
    theirs = np.asarray(model(np.stack([textgenrnn_window(text, t, window, engine.vocab) for t in range(len(ids))])),
                        np.float64)
    logits, _, _ = engine.forward(ids[None], record=())
    assert np.abs(softmax(logits[0].astype(np.float64)) - theirs).max() < 1e-4


@pytest.mark.slow
def test_the_pretrained_model_imports_generates_scores_and_builds_an_atlas(tmp_path):
    files = tmp_path / "textgenrnn"
    shutil.copytree(PRETRAINED, files)  # as a user has it: the two files side by side, no config
    text = corpus(tmp_path, (ROOT / "data" / "alice.txt").read_text(encoding="utf-8")[:30000])
    into = tmp_path / "runs"
    done = cli("import", files / "textgenrnn_weights.hdf5", "--name", "tg", "--corpus", text, "--into", into)
    assert done.returncode == 0, done.stderr
    assert "checked against Keras" in done.stdout and "(textgenrnn, 2x128, windows of 40 characters" in done.stdout
    config = json.loads((into / "tg" / "config.json").read_text())
    assert config["architecture"]["head"] == "attention" and config["vocab"][0] == "\x00"
    assert config["vocab"][-1] == "\n" and len(config["vocab"]) == 465  # <s> is the line break

    done = cli("generate", "--run", into / "tg", "--length", "200", "--seed", "3", "--temperature", "0.5")
    assert done.returncode == 0, done.stderr
    sample = done.stdout
    assert len(sample.strip()) > 100 and "\x00" not in sample
    words = [w for w in sample.split() if w.isalpha()]
    assert len(words) >= 15 and np.mean([len(w) for w in words]) < 9  # words, as its reddit titles have

    done = cli("evaluate", "--run", into / "tg", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["padded"] and 1.5 < result["bpc"] < 5.0  # it never read Alice: worse than its own text, not noise

    done = cli("atlas", "--run", into / "tg", "--json")
    assert done.returncode == 0, done.stderr
    assert (into / "tg" / "atlas-best.npz").is_file()
    assert json.loads(done.stdout.strip().splitlines()[-1])["cells"] == 512  # 2 layers x (h, c) x 128

    done = cli("export", "--run", into / "tg", "--format", "keras", "--out", tmp_path / "tg.keras")
    assert done.returncode == 2 and "attention head, which the export does not write yet" in done.stderr
    done = cli("train", "--run", into / "tg", "--resume", "--minutes", "1")
    assert done.returncode == 2 and "was imported from textgenrnn_weights.hdf5: it has no training state" in done.stderr


def test_the_pretrained_vocabulary_reads_as_characters_with_padding_first_and_the_start_token_last():
    chars, start = textgenrnn.read_vocab(PRETRAINED / "textgenrnn_vocab.json")
    assert len(chars) == 465 and chars[0] == textgenrnn.PADDING_CHAR and chars[start] == "\n" and start == 464
    assert chars[1:6] == "It's " and textgenrnn.read_config(PRETRAINED / "textgenrnn_weights.hdf5") == (
        textgenrnn.DEFAULTS, None)


def test_attribution_refuses_an_attention_head_in_one_line():
    from charmodel.analysis.saliency import attribute

    engine, _ = small_engine()
    with pytest.raises(CharModelError, match="attention head"):
        attribute(engine, "he hid a jig", 5, {"layer": 0, "kind": "h", "cell": 1})


@pytest.mark.slow
def test_every_page_opens_on_the_pretrained_model_and_visualise_shows_what_its_head_read(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "weights"
    text = corpus(tmp_path, (ROOT / "data" / "alice.txt").read_text(encoding="utf-8")[:20000])
    textgenrnn.import_textgenrnn(PRETRAINED / "textgenrnn_weights.hdf5", root, "tg", text, check=False, report=None)
    monkeypatch.setenv("CHARMODEL_WEIGHTS", str(root))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    for page in ("pages/generate.py", "pages/cells.py", "pages/atlas.py", "pages/visualise.py"):
        at.switch_page(page).run()
        assert not at.exception and not at.error, (page, [e.value for e in at.exception], [e.value for e in at.error])
    at.radio(key="source").set_value("Your text").run()
    at.text_area(key="own_text").set_value("Alice said hello to the Cat").run()
    at.toggle(key="show_attention").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    page = "".join(h.proto.body for h in at.get("html"))
    assert "attention weight, predicting the character after #26" in page and "#26 &#x27;t&#x27;: weight" in page
    caption = " ".join(c.value for c in at.caption)
    assert "over the window of 40 steps ending at #26" in caption
    assert "Attribution (which earlier characters drive a cell) is not available" in caption
    at.number_input(key="attention_position").set_value(3).run()
    caption = " ".join(c.value for c in at.caption)
    assert "ending at #3 ('c')" in caption and "The first 36 steps are the padding before its text begins" in caption


@pytest.mark.slow
def test_the_apps_upload_imports_the_pretrained_model_with_its_vocabulary_as_the_characters(tmp_path):
    held = lambda path: (path.name, path.read_bytes())
    text = corpus(tmp_path)
    said = keras_io.import_uploads(tmp_path / "runs", "tg", held(PRETRAINED / "textgenrnn_weights.hdf5"),
                                   chars=held(PRETRAINED / "textgenrnn_vocab.json"), corpus=held(text))
    assert "checked against Keras" in said and "(textgenrnn, 2x128" in said
    line = keras_io.imported_line(Run.open(tmp_path / "runs" / "tg").config)
    assert line.startswith("Imported from the textgenrnn model **textgenrnn_weights.hdf5** (Keras 2.1.5): 2 x 128")


def test_ablation_on_an_attention_head_sweeps_as_it_holds_one_cell_at_a_time():
    from charmodel.analysis.ablate import ablate, sweep

    engine, _ = small_engine(seed=5)
    text = "he hid a jig, 'cab' bad fig.\nabc def ghij. " * 3
    swept = {row["cell"]: row["bpc_ablated"] for row in sweep(engine, text, 1, "c")}
    for cell in (0, 3):
        alone = ablate(engine, text, 1, "c", cell)
        assert abs(alone["bpc_ablated"] - swept[cell]) < 1e-4 and alone["delta"] != 0
