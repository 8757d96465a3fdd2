"""import of Keras files: the post's shape and other char-LSTMs open as runs, read without running code."""

import json
import math

import h5py
import numpy as np
import pytest

from charmodel.engine import Engine, softmax
from charmodel.engine.scoring import evaluate
from charmodel.exchange.keras_io import import_keras
from charmodel.run import folder as runfolder
from charmodel.run.handle import Run

from .conftest import POST_WINDOW as W
from .conftest import ROOT
from .conftest import post_text as _text
from .test_cli import cli

pytestmark = pytest.mark.slow  # Keras round trips


def _windows_bpc(model, ids, V):
    """What Keras says: character t predicted from the W characters before it, t >= W."""
    x = np.stack([ids[t - W : t] for t in range(W, len(ids))]) / V
    p = np.asarray(model.predict(x.astype("float32")[..., None], verbose=0, batch_size=256), np.float64)
    return float(-np.log2(p[np.arange(len(p)), ids[W:]]).mean())


@pytest.mark.parametrize("suffix", ["keras", "h5"])
def test_the_posts_shape_imports_both_ways_and_scores_as_keras_does(post_files, suffix, tmp_path):
    root, model, chars = post_files
    said = []
    run = import_keras(root / f"post.{suffix}", tmp_path, "post", vocab_from=root / "post.txt", report=said.append)
    config = runfolder.read_config(run)
    assert config["window"] == W and config["architecture"]["input"] == "scalar"
    assert config["imported"]["file"] == f"post.{suffix}" and config["vocab"] == "".join(chars)
    assert "checked against Keras" in said[0] and "the file opened by Keras" in said[0]
    result = evaluate(run, window=None)  # the run's own window
    val = Run.open(run).split()[1]
    ids = Engine.load(run).vocab.encode(val)
    assert result["window"] == W and abs(result["bpc"] - _windows_bpc(model, ids, len(chars))) < 2e-3
    assert result["stateful_bpc"] is not None and math.isfinite(result["stateful_bpc"])


def test_an_imported_run_exports_back_to_the_same_probabilities(post_files, tmp_path):
    import keras

    root, model, chars = post_files
    run = import_keras(root / "post.keras", tmp_path, "post", vocab_from=root / "post.txt", report=lambda s: None)
    out = cli("export", "--run", run, "--format", "keras", "--out", tmp_path / "again.keras")
    assert out.returncode == 0, out.stderr
    again = keras.saving.load_model(tmp_path / "again.keras")
    ids = np.array([chars.index(c) for c in _text()[1000 : 1000 + 4 * W]]).reshape(4, W)
    theirs = np.asarray(model.predict((ids / len(chars)).astype("float32")[..., None], verbose=0))  # (4, V)
    ours = np.asarray(again.predict(ids, verbose=0))[:, -1]  # the last step of each window, from a zero state
    assert np.abs(theirs - ours).max() < 1e-4


def test_a_run_trained_here_round_trips_through_keras_with_the_same_bpc(trained_run, tmp_path):
    out = cli("export", "--run", trained_run, "--format", "keras", "--out", tmp_path / "ours.keras")
    assert out.returncode == 0, out.stderr
    back = cli("import", tmp_path / "ours.keras", "--name", "back", "--chars", tmp_path / "ours.chars.json",
               "--corpus", trained_run / "corpus.txt", "--into", tmp_path / "w")
    assert back.returncode == 0, back.stderr
    assert "stateful" in back.stdout and "checked against Keras" in back.stdout
    assert runfolder.read_config(tmp_path / "w" / "back")["window"] is None  # ids of any length: stateful
    val = tmp_path / "val.txt"  # the trained run's validation text, cleaned its way (it collapses spaces)
    val.write_text(Run.open(trained_run).split()[1], encoding="utf-8")
    before, after = evaluate(trained_run, val), evaluate(tmp_path / "w" / "back", val)
    assert abs(before["bpc"] - after["bpc"]) < 1e-4


def _to_cudnn(kernel, recurrent, bias, rng):
    """The inverse of Keras 2's CuDNNLSTM -> LSTM conversion: what a Keras 2 CuDNNLSTM file holds."""
    gates = lambda k, f: np.hstack([f(b) for b in np.hsplit(k, 4)])
    half = rng.normal(0, 0.1, bias.shape).astype(np.float32)
    return (gates(kernel, lambda b: b.T.reshape(b.shape)), gates(recurrent, lambda b: b.T),
            np.concatenate([bias - half, half]))


def test_a_keras_2_cudnnlstm_h5_imports_as_keras_2_converted_it(post_files, tmp_path):
    """A legacy file in Keras 2's layout (CuDNNLSTM, 8 x units biases, kernels in cuDNN's order),
    made from the Keras 3 model's weights: the imported run gives that model's probabilities."""
    root, model, chars = post_files
    V, rng = len(chars), np.random.default_rng(0)
    lstms = [l for l in model.layers if type(l).__name__ == "LSTM"]
    layers = [{"class_name": "CuDNNLSTM", "config": {"name": "cu_dnnlstm_1", "units": 12, "return_sequences": True,
                                                     "batch_input_shape": [None, W, 1]}},
              {"class_name": "Dropout", "config": {"name": "dropout_1", "rate": 0.2}},
              {"class_name": "CuDNNLSTM", "config": {"name": "cu_dnnlstm_2", "units": 12, "return_sequences": False}},
              {"class_name": "Dropout", "config": {"name": "dropout_2", "rate": 0.2}},
              {"class_name": "Dense", "config": {"name": "dense_1", "units": V, "activation": "softmax"}}]
    path = tmp_path / "keras2.h5"
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.2.4"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": layers}})
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [l["config"]["name"].encode() for l in layers]
        arrays = {"cu_dnnlstm_1": _to_cudnn(*lstms[0].get_weights(), rng),
                  "cu_dnnlstm_2": _to_cudnn(*lstms[1].get_weights(), rng),
                  "dense_1": model.layers[-1].get_weights(), "dropout_1": [], "dropout_2": []}
        for name, ws in arrays.items():
            lg = g.create_group(name)
            names = [f"{name}/{n}:0" for n in (["kernel", "recurrent_kernel", "bias"] if "lstm" in name
                                                else ["kernel", "bias"])][: len(ws)]
            lg.attrs["weight_names"] = [n.encode() for n in names]
            for n, w in zip(names, ws):
                lg.create_dataset(n, data=w)
    said = []
    run = import_keras(path, tmp_path / "w", "k2", vocab_from=root / "post.txt", report=said.append)
    assert "rebuilt from the file's config" in said[0]
    engine = Engine.load(run).stateful()
    ids = np.array([chars.index(c) for c in _text()[:3 * W]]).reshape(3, W)
    logits, _, _ = engine.forward(ids)
    theirs = np.asarray(model.predict((ids / V).astype("float32")[..., None], verbose=0))
    assert np.abs(softmax(logits[:, -1].astype(np.float64)) - theirs).max() < 1e-5


def test_a_weights_only_h5_needs_its_config_and_then_imports(post_files, tmp_path):
    root, model, chars = post_files
    model.save_weights(tmp_path / "post.weights.h5")  # Keras 3's own layout: no layer order to read
    (tmp_path / "post.json").write_text(model.to_json(), encoding="utf-8")
    bad = cli("import", tmp_path / "post.weights.h5", "--name", "p", "--vocab-from", root / "post.txt",
              "--into", tmp_path / "w")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--config" in bad.stderr
    good = cli("import", tmp_path / "post.weights.h5", "--name", "p", "--vocab-from", root / "post.txt",
               "--config", tmp_path / "post.json", "--into", tmp_path / "w")
    assert good.returncode == 0, good.stderr
    assert runfolder.read_config(tmp_path / "w" / "p")["window"] == W


def _legacy_weights_only(post_files, path, version):
    """What Keras 2's save_weights (or a ModelCheckpoint) wrote: layer_names, then per-layer groups."""
    root, model, chars = post_files
    with h5py.File(root / "post.h5", "r") as full, h5py.File(path, "w") as out:
        for name in full["model_weights"]:
            full.copy(full["model_weights"][name], out, name)
        out.attrs["layer_names"] = full["model_weights"].attrs["layer_names"]
        out.attrs["keras_version"] = version
    return path


def test_a_legacy_weights_only_file_imports_from_its_shapes(post_files, tmp_path):
    """The post's readers have weights files without a config: the architecture comes from the
    weights' shapes, the window from --window; the check still runs (on a rebuilt model)."""
    root, model, chars = post_files
    path = _legacy_weights_only(post_files, tmp_path / "weights-improvement-01.hdf5", "2.4.0")
    out = cli("import", path, "--name", "p", "--vocab-from", root / "post.txt", "--window", W, "--into", tmp_path / "w")
    assert out.returncode == 0, out.stderr
    assert "read from their shapes (LSTM 12, LSTM 12, Dense" in out.stdout and "rebuilt" in out.stdout
    run = tmp_path / "w" / "p"
    assert runfolder.read_config(run)["imported"]["architecture_from"] == "weight shapes"
    ids = np.array([chars.index(c) for c in _text()[:3 * W]]).reshape(3, W)
    logits, _, _ = Engine.load(run).stateful().forward(ids)
    theirs = np.asarray(model.predict((ids / len(chars)).astype("float32")[..., None], verbose=0))
    assert np.abs(softmax(logits[:, -1].astype(np.float64)) - theirs).max() < 1e-5
    old = _legacy_weights_only(post_files, tmp_path / "old.hdf5", "2.1.5")  # LSTM then meant hard_sigmoid
    bad = cli("import", old, "--name", "q", "--vocab-from", root / "post.txt", "--into", tmp_path / "w")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "hard_sigmoid" in bad.stderr


def _hostile(tmp_path, post_files):
    """(file, message) pairs, each to be refused before anything is written."""
    import keras

    root, model, chars = post_files
    V = len(chars)
    made = {}
    gru = keras.Sequential([keras.Input(shape=(W, 1)), keras.layers.GRU(8), keras.layers.Dense(V, activation="softmax")])
    gru.save(tmp_path / "gru.keras")
    made["gru.keras"] = "is a GRU"
    marker = tmp_path / "RAN"
    code = f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"
    lam = keras.Sequential([keras.Input(shape=(W, 1)), keras.layers.Lambda(eval(code)), keras.layers.LSTM(8),
                            keras.layers.Dense(V, activation="softmax")])
    marker.unlink(missing_ok=True)  # building the model called the function once, here, not in the import
    lam.save(tmp_path / "lambda.h5")
    made["lambda.h5"] = "never run here"
    wrong = keras.Sequential([keras.Input(shape=(W, 1)), keras.layers.LSTM(8), keras.layers.Dense(V + 3)])
    wrong.save(tmp_path / "vocab.keras")
    made["vocab.keras"] = f"predicts {V + 3} characters but the vocabulary given has {V}"
    hard = keras.Sequential([keras.Input(shape=(W, 1)), keras.layers.LSTM(8, recurrent_activation="hard_sigmoid"),
                             keras.layers.Dense(V, activation="softmax")])
    hard.save(tmp_path / "hard.keras")
    made["hard.keras"] = "uses recurrent_activation 'hard_sigmoid'"
    both = keras.Sequential([keras.Input(shape=(W, 1)), keras.layers.Bidirectional(keras.layers.LSTM(8)),
                             keras.layers.Dense(V, activation="softmax")])
    both.save(tmp_path / "both.keras")
    made["both.keras"] = "reads the text both ways"
    conv = keras.Sequential([keras.Input(shape=(W, 1)), keras.layers.Conv1D(8, 3), keras.layers.LSTM(8),
                             keras.layers.Dense(V, activation="softmax")])
    conv.save(tmp_path / "conv.keras")
    made["conv.keras"] = "is a Conv1D"
    data = (root / "post.h5").read_bytes()
    (tmp_path / "truncated.h5").write_bytes(data[: len(data) // 2])
    made["truncated.h5"] = "damaged or truncated"
    with h5py.File(tmp_path / "unknown.h5", "w") as f:
        layers = [{"class_name": "Evil", "config": {"name": "evil"}}]
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": layers}})
    made["unknown.h5"] = "is a Evil"
    return made, marker


def test_hostile_or_unsupported_files_are_one_line_exit_2_and_write_nothing(post_files, tmp_path):
    root = post_files[0]
    made, marker = _hostile(tmp_path, post_files)
    weights = tmp_path / "w"
    for name, message in made.items():
        out = cli("import", tmp_path / name, "--name", "x", "--vocab-from", root / "post.txt", "--into", weights)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, (name, out.stderr)
        assert not weights.exists() or not any(weights.iterdir()), name
    assert not marker.exists()  # the Lambda's code never ran


def test_import_flags_are_checked_in_one_line(post_files, tmp_path, random_run):
    root = post_files[0]
    for args, message in (((), "--chars FILE"),
                          (("--vocab-from", root / "post.txt", "--input", "onehot"), "not what --input onehot gives"),
                          (("--vocab-from", root / "post.txt", "--input", "pixels"), "--input must be one of"),
                          (("--vocab-from", root / "post.txt", "--window", "1"), "--window must be"),
                          (("--vocab-from", root / "post.txt", "--corpus", ROOT / "data" / "alice.txt"),
                           "does not know")):
        out = cli("import", root / "post.keras", "--name", "p", "--into", tmp_path / "w", *args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, (args, out.stderr)
    archive = tmp_path / "run.zip"
    assert cli("export", "--run", random_run, "--out", archive).returncode == 0
    out = cli("import", archive, "--vocab-from", root / "post.txt", "--into", tmp_path / "w")
    assert out.returncode == 2 and "is for a Keras file" in out.stderr
    assert cli("import", archive, "--into", tmp_path / "w").returncode == 0  # told apart by content
    assert not (tmp_path / "w" / "p").exists()
    unnamed = cli("import", root / "post.keras", "--vocab-from", root / "post.txt", "--into", tmp_path / "w")
    assert unnamed.returncode == 2 and "pass --name" in unnamed.stderr


def test_the_app_imports_through_a_child_process_and_pages_show_the_windowed_run(post_files, tmp_path, monkeypatch,
                                                                                 alice_text):
    """The Train page's import (keras_io.import_uploads, which the page calls with the uploads'
    names and bytes: AppTest cannot upload; tests/test_browser.py uploads for real), then Home says
    what the run is, and the pages that compute values draw it with no error."""
    from charmodel.exchange.keras_io import import_in_child, import_uploads

    from .conftest import make_random_run
    from .test_app import app, no_errors

    root = post_files[0]
    weights = tmp_path / "weights"
    make_random_run(weights / "alice", alice_text[:5000], layers=1, units=12)
    said = import_uploads(weights, "post", ("post.h5", (root / "post.h5").read_bytes()),
                          text=("post.txt", (root / "post.txt").read_bytes()))
    assert "checked against Keras" in said and "windows of 20 characters" in said
    assert runfolder.read_config(weights / "post")["imported"]["file"] == "post.h5"  # the upload's own name
    try:
        import_in_child(root / "post.h5", weights, "post", vocab_from=root / "post.txt")
    except Exception as e:  # the child's one line comes back as the error
        assert "already exists" in str(e) and "\n" not in str(e)
    else:
        raise AssertionError("a second import under the same name was accepted")
    monkeypatch.setenv("CHARMODEL_WEIGHTS", str(weights))
    at = app(run="post")
    no_errors(at)
    shown = " ".join(i.value for i in at.info)
    assert "post.h5" in shown and "windows of 20 characters" in shown
    for page in ("pages/visualise.py", "pages/generate.py"):
        at.switch_page(page).run()
        no_errors(at)
        assert not at.error, [e.value for e in at.error]
        if page == "pages/visualise.py":
            assert any("reads windows of 20 characters" in c.value for c in at.caption)


def test_reading_a_keras_file_needs_no_tensorflow(post_files, tmp_path):
    """Where Keras cannot be imported, the file is still read (h5py and JSON only), and the
    import says it was not checked against Keras."""
    import subprocess
    import sys

    root = post_files[0]
    script = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
              "from charmodel.cli import main\n"
              f"sys.exit(main(['import', {str(root / 'post.keras')!r}, '--name', 'p', '--vocab-from', "
              f"{str(root / 'post.txt')!r}, '--into', {str(tmp_path / 'w')!r}]))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "not checked against Keras: Keras is not installed here." in out.stdout
    engine = Engine.load(tmp_path / "w" / "p")
    assert engine.window == W and engine.emb.shape == (len(post_files[2]), 1)


@pytest.mark.parametrize("suffix", ["keras", "h5"])
def test_a_one_hot_model_with_a_time_distributed_dense_imports_statefully(suffix, tmp_path):
    """The other common char-LSTM shape: one-hot input of any length, LSTMs returning sequences, a
    TimeDistributed Dense, a linear output and a separate softmax."""
    import keras

    text = _text()[:3000]
    chars = sorted(set(text))
    V = len(chars)
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(None, V))
    x = keras.layers.LSTM(10, return_sequences=True)(inputs)
    x = keras.layers.TimeDistributed(keras.layers.Dense(V))(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax")(x))
    model.save(tmp_path / f"onehot.{suffix}")
    (tmp_path / "chars.json").write_text(json.dumps(chars), encoding="utf-8")
    (tmp_path / "text.txt").write_text(text, encoding="utf-8")
    said = []
    run = import_keras(tmp_path / f"onehot.{suffix}", tmp_path / "w", "oh", chars_file=tmp_path / "chars.json",
                       corpus=tmp_path / "text.txt", report=said.append)
    config = runfolder.read_config(run)
    assert config["architecture"]["input"] == "onehot" and config["window"] is None
    assert "the file opened by Keras" in said[0]
    ids = np.array([chars.index(c) for c in text[:200]])[None]
    theirs = np.asarray(model.predict(np.eye(V, dtype="float32")[ids], verbose=0))[0]
    logits, _, _ = Engine.load(run).forward(ids)
    assert np.abs(softmax(logits[0].astype(np.float64)) - theirs).max() < 1e-5


def test_a_model_of_lowercased_text_is_named_and_imports_with_lowercase(post_files, tmp_path):
    root, model, chars = post_files
    mixed = tmp_path / "alice-start.txt"  # the text as it was before the post's .lower()
    mixed.write_text((ROOT / "data" / "alice.txt").read_text(encoding="utf-8")[:6000], encoding="utf-8")
    bad = cli("import", root / "post.keras", "--name", "p", "--vocab-from", mixed, "--into", tmp_path / "w")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "add --lowercase" in bad.stderr, bad.stderr
    assert f"predicts {len(chars)} characters" in bad.stderr
    good = cli("import", root / "post.keras", "--name", "p", "--vocab-from", mixed, "--lowercase",
               "--into", tmp_path / "w")
    assert good.returncode == 0, good.stderr
    run = tmp_path / "w" / "p"
    assert runfolder.read_config(run)["imported"]["lowercased"] is True
    assert Run.open(run).corpus_text() == Run.open(run).corpus_text().lower()
