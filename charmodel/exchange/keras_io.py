"""Keras files both ways: a Keras char-LSTM opened as a run (read by keras_file.py, checked
against Keras itself), and a run handed back as a Keras 3 `.keras` model of standard layers only,
with its characters beside it as NAME.chars.json. Reading imports no TensorFlow; the self-check and
the export import Keras when they run. docs/keras.md has the details.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from charmodel.errors import CharModelError
from charmodel.exchange.imported import IMPORT_TOLERANCE, check_corpus, write_imported  # noqa: F401
from charmodel.exchange.keras_file import (INPUTS, SUPPORTED, KerasModel, Spec, engine_weights,  # noqa: F401
                                           read_model, sniff, sniff_bytes)
from charmodel.run import folder as runfolder
from charmodel.run.corpus import Vocab, clean, read_text, sha256, split
from charmodel.run.handle import Architecture, Corpus, RunConfig



def chars_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".chars.json")


def export_keras(run, out, checkpoint: str | None = None) -> tuple[Path, Path]:
    """Write the run's checkpoint as a .keras file and its characters beside it; both appear
    whole or not at all (written to temporary names, then renamed)."""
    out = Path(out)
    if out.suffix != ".keras":
        raise CharModelError(f"--out must end in .keras (Keras 3's format), not {out.name!r}.")
    if not out.parent.is_dir():
        raise CharModelError(f"the folder {out.parent} does not exist.")
    config = runfolder.read_config(run)
    checkpoint = checkpoint or runfolder.default_checkpoint(run)
    weights = runfolder.load_weights_npz(runfolder.checkpoint_path(run, checkpoint))
    arch, chars = config["architecture"], Vocab(config["vocab"]).chars
    if arch.get("head") == "attention":
        raise CharModelError(f"{Path(run).name} has textgenrnn's attention head, which the export does not write yet; "
                             "its own textgenrnn files still hold it.")

    import keras

    from charmodel.training import model as kmodel

    inner = kmodel.build(len(chars), arch["layers"], arch["units"], arch["dropout"], arch["embedding"], portable=True)
    kmodel.import_weights(inner, weights)
    probabilities = keras.layers.Softmax(name="probabilities")(inner.outputs[0])
    exported = keras.Model(inner.inputs, probabilities, name=f"charmodel_{Path(run).name}")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=".keras", dir=out.parent)
    os.close(fd)
    tmp_chars = Path(tmp).with_suffix(".json")
    try:
        exported.save(tmp)
        tmp_chars.write_text(json.dumps(list(chars), ensure_ascii=False), encoding="utf-8")
        runfolder.fsync_file(tmp)
        os.replace(tmp, out)
        os.replace(tmp_chars, chars_path(out))
    except BaseException:
        for p in (Path(tmp), tmp_chars):
            p.unlink(missing_ok=True)
        raise
    return out, chars_path(out)


# ---------------------------------------------------------------- import: the run

def _post_text(path, lowercase: bool) -> str:
    """A text as the post's code read it: open().read() (newlines made \n), then .lower() if asked."""
    text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    return text.lower() if lowercase else text


def vocab_from_args(chars_file=None, vocab_from=None, lowercase: bool = False) -> Vocab:
    """--chars FILE (a JSON list of characters, or a string, in index order) or --vocab-from TEXT
    (the sorted set of the text's characters, read as Python's open().read() reads it, and
    lowercased with --lowercase, as the post did)."""
    if (chars_file is None) == (vocab_from is None):
        raise CharModelError("give the model's characters: --chars FILE (a JSON list in index order) or --vocab-from "
                             "TEXT (the text the model was trained on), one of the two.")
    if chars_file is not None:
        try:
            data = json.loads(Path(chars_file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CharModelError(f"characters file {chars_file} does not exist.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CharModelError(f"{chars_file} is not a JSON list of characters ({e.__class__.__name__}).") from None
        if isinstance(data, str):
            data = list(data)
        if not isinstance(data, list) or not data or not all(isinstance(c, str) and len(c) == 1 for c in data):
            raise CharModelError(f"{chars_file} must be a JSON list of single characters, in the model's index order.")
        if len(set(data)) != len(data):
            raise CharModelError(f"{chars_file} lists a character twice; each index needs its own character.")
        return Vocab("".join(data))
    return Vocab.from_text(_post_text(vocab_from, lowercase))


def _fixed_length(spec: Spec) -> int | None:
    shape = spec.input_shape
    return int(shape[1]) if shape and len(shape) >= 2 and isinstance(shape[1], int) and shape[1] > 1 else None


def is_textgenrnn(model_path) -> bool:
    """A textgenrnn model's weights (exchange/textgenrnn.py imports them)."""
    from charmodel.exchange import textgenrnn

    return sniff(model_path) == "h5" and textgenrnn.is_textgenrnn(model_path)


def refuse_foreign(model_path, config_path=None) -> None:
    """A model of another package that looks like a Keras char-RNN but cannot import, refused in
    its own words before anything else is asked or read: a word-level or bidirectional textgenrnn one."""
    from charmodel.exchange import textgenrnn

    if is_textgenrnn(model_path):
        why = textgenrnn.refusal(model_path, config_path)
        if why:
            raise CharModelError(why)


def import_keras(model_path, root, name: str, chars_file=None, vocab_from=None, corpus=None,
                 input_kind: str | None = None, window=None, config_path=None, check: bool = True,
                 report=print, lowercase: bool = False) -> Path:
    """Make run folder root/NAME from a Keras file, all or nothing; returns its path. lowercase:
    the model saw its text lowercased (the post did): the vocabulary's text and the corpus are
    lowercased as they are read. A textgenrnn model's weights go to exchange/textgenrnn.py, with
    `chars_file` as its vocabulary (NAME_vocab.json) and `config_path` as its NAME_config.json."""
    from charmodel.engine import check_window

    refuse_foreign(model_path, config_path)
    if is_textgenrnn(model_path):
        from charmodel.exchange.textgenrnn import import_textgenrnn

        return import_textgenrnn(model_path, root, name, corpus or vocab_from, chars_file, config_path, check, report)
    if input_kind is not None and input_kind not in INPUTS:
        raise CharModelError(f"--input must be one of {', '.join(INPUTS)}, not {input_kind!r}.")
    window = check_window(window)
    target = runfolder.run_in(root, name)
    if target.exists():
        raise CharModelError(f"a run named {target.name!r} already exists; import under another --name.")
    vocab = vocab_from_args(chars_file, vocab_from, lowercase)
    text_path = corpus or vocab_from
    if text_path is None:
        raise CharModelError("pass --corpus TEXT: the text the run shows and explains (the atlas needs one).")
    raw = read_text(text_path).lower() if lowercase else read_text(text_path)
    text = clean(raw, collapse_spaces=False)
    check_corpus(vocab, text, text_path)
    model = read_model(model_path, config_path)
    predicts = model.layers[-1].weights[0].shape[-1] if model.layers[-1].weights else None
    if vocab_from is not None and not lowercase and predicts is not None and predicts != len(vocab) \
            and len(Vocab.from_text(_post_text(vocab_from, True))) == predicts:
        raise CharModelError(f"the model predicts {predicts} characters but {Path(vocab_from).name} has {len(vocab)}; "
                             f"lowercased it has {predicts}, as the post lowercased its text: add --lowercase.")
    if model.inferred:
        shapes = ", ".join(f"{l.cls} {l.conf.get('units', '')}".strip() for l in model.layers)
        report(f"{Path(model_path).name} holds weights only: the architecture was read from their shapes ({shapes}), "
               "with Keras' default activations" + ("" if window else "; pass --window W if it was trained on "
                                                                       "windows (the post: 100)"))
    weights, input_kind = engine_weights(model.layers, len(vocab), input_kind, Path(model_path).name)
    model.input_kind = input_kind
    window = window or _fixed_length(model.spec)
    train, val = split(text)
    lstms = [l for l in model.layers if l.kind == "lstm"]
    config = RunConfig(
        architecture=Architecture(layers=len(lstms), units=int(weights["lstm0_recurrent"].shape[0]),
                                  vocab_size=len(vocab), embedding=int(weights["embedding"].shape[1]), dropout=0.0,
                                  input=input_kind),
        training={},
        corpus=Corpus(path=Path(text_path).name, sha256=sha256(text_path), collapse_spaces=False, val_fraction=0.1,
                      chars=len(text), train_chars=len(train), val_chars=len(val)),
        vocab=vocab.chars,
        window=window,
        imported={"file": Path(model_path).name, "sha256": sha256(model_path), "format": model.kind,
                  "lowercased": lowercase, "architecture_from": "weight shapes" if model.inferred else "config",
                  "keras_version": model.keras_version,
                  "layers": [f"{l.cls}({l.conf.get('units', l.conf.get('output_dim', ''))})" for l in model.layers]})
    return write_imported(root, name, config, raw, weights,
                          (lambda engine: self_check(model_path, model, engine, text)) if check else None, report)


def self_check(model_path, model: KerasModel, engine, text: str, windows: int = 4) -> tuple[float | None, str]:
    """(largest difference in next-character probability between Keras and the engine, how it was
    checked), or (None, why not). Keras opens the file itself where it can (safe mode, after the
    config has been checked to hold only standard layers); a file it cannot open (Keras 2's
    CuDNNLSTM, weights without a config) is checked on a Keras model built from what was read."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notes are not this command's output
    try:
        import keras
    except ImportError:
        return None, "Keras is not installed here."
    from charmodel.engine import softmax

    V = len(engine.vocab)
    length = min(engine.window or 100, len(text) - 1)
    ids = engine.vocab.encode(text)
    starts = np.linspace(0, len(ids) - length, windows).astype(int)
    rows = np.stack([ids[s : s + length] for s in starts])
    how = f"on {windows} windows of {length} characters"
    try:
        theirs_model = keras.saving.load_model(model_path, compile=False)  # safe mode: the default, never off
        opened = "the file opened by Keras"
    except Exception:
        theirs_model = _rebuilt(keras, model, V)
        opened = "a Keras model rebuilt from the file's config (Keras 3 cannot open this file itself)"
    kind = model.input_kind
    x = {"embedding": rows, "onehot": np.eye(V, dtype=np.float32)[rows],
         "scalar": (rows / V).astype(np.float32)[..., None]}[kind]
    theirs = np.asarray(theirs_model(x, training=False), dtype=np.float64)
    if not model.layers[-1].softmax:  # a linear output: logits
        theirs = softmax(theirs)
    logits, _, _ = engine.stateful().forward(rows, record=())  # windows this short run from a zero state either way
    ours = softmax(logits.astype(np.float64))
    if theirs.ndim == 2:  # the last LSTM returns its last step only
        ours = ours[:, -1]
    if theirs.shape != ours.shape:
        return float("inf"), f"({opened} gives shape {theirs.shape}, the engine {ours.shape})"
    return float(np.abs(theirs - ours).max()), f"{how} ({opened})"


def _rebuilt(keras, model: KerasModel, V: int):
    """A Keras 3 model of the checked layers with the converted weights (for files Keras cannot open)."""
    lstms = [l for l in model.layers if l.kind == "lstm"]
    weights, _ = engine_weights(model.layers, V, model.input_kind, "the file")
    first = model.layers[0]
    if first.kind == "embedding":
        inputs = keras.Input(shape=(None,), dtype="int32")
        x = keras.layers.Embedding(V, weights["embedding"].shape[1])(inputs)
    else:
        inputs = keras.Input(shape=(None, weights["lstm0_kernel"].shape[0]))
        x = inputs
    built = []
    for l, layer in enumerate(lstms):
        cell = keras.layers.LSTM(weights["lstm0_recurrent"].shape[0],
                                 return_sequences=bool(layer.conf.get("return_sequences", False)) or l < len(lstms) - 1)
        x = cell(x)
        built.append(cell)
    dense = keras.layers.Dense(V, activation="softmax" if model.layers[-1].softmax else None)
    out = dense(x)
    m = keras.Model(inputs, out)
    if first.kind == "embedding":
        m.layers[1].set_weights([weights["embedding"]])
    for l, cell in enumerate(built):
        cell.set_weights([weights[f"lstm{l}_kernel"], weights[f"lstm{l}_recurrent"], weights[f"lstm{l}_bias"]])
    dense.set_weights([weights["dense_kernel"], weights["dense_bias"]])
    return m


# ---------------------------------------------------------------- import: for the app

def import_in_child(model_path, root, name: str, chars_file=None, vocab_from=None, corpus=None,
                    input_kind: str | None = None, window=None, timeout: float = 600, lowercase: bool = False) -> str:
    """Run the import command in a child process, so its self-check's Keras (600 MB of TensorFlow)
    never loads into the caller (the app server); what it printed, or its one-line error."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "charmodel", "import", str(model_path), "--name", name, "--into", str(root)]
    if is_textgenrnn(model_path):  # its characters are its NAME_vocab.json; a text is its corpus
        argv += ["--textgenrnn-vocab", str(chars_file)] if chars_file else []
        chars_file, vocab_from, corpus = None, None, corpus or vocab_from
    for flag, value in (("--chars", chars_file), ("--vocab-from", vocab_from), ("--corpus", corpus),
                        ("--input", input_kind), ("--window", window)):
        if value is not None:
            argv += [flag, str(value)]
    argv += ["--lowercase"] if lowercase else []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CHARMODEL_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        lines = [l for l in done.stderr.splitlines() if l.startswith("error: ")]
        raise CharModelError(lines[-1].removeprefix("error: ") if lines else
                             f"the import stopped (exit {done.returncode}); nothing was imported.")
    return done.stdout.strip()


def import_uploads(root, name: str, model: tuple, chars: tuple | None = None, text: tuple | None = None,
                   corpus: tuple | None = None, window=None, lowercase: bool = False) -> str:
    """import_in_child for files held in memory (an app's uploads), each (file name, bytes): written
    to a temporary folder under their own names, which the run records, and removed after."""
    with tempfile.TemporaryDirectory(prefix="charmodel-keras-") as tmp:
        paths = {}
        for key, given in (("model", model), ("chars", chars), ("text", text), ("corpus", corpus)):
            if given is not None:
                folder = Path(tmp) / key  # one folder each: two uploads may share a name
                folder.mkdir()
                paths[key] = folder / Path(given[0]).name
                paths[key].write_bytes(given[1])
        return import_in_child(paths["model"], root, name, paths.get("chars"), paths.get("text"), paths.get("corpus"),
                               window=window, lowercase=lowercase)


def imported_line(config: RunConfig) -> str | None:
    """What an imported run is, in a sentence for people (None for a run trained here)."""
    source = config.imported
    if not source:
        return None
    arch, window = config.architecture, config.window
    how = {"scalar": "one number per character (index / vocabulary size), as the post fed it",
           "onehot": "a one-hot vector per character", "embedding": "an Embedding"}.get(arch.input, "")
    version = f", Keras {source['keras_version']}" if source.get("keras_version") else ""
    if source.get("format") == "textgenrnn":
        written = f" (Keras {source['keras_version']})" if source.get("keras_version") else ""
        return (f"Imported from the textgenrnn model **{source['file']}**{written}: {arch.layers} x {arch.units} LSTM reading an Embedding, then textgenrnn's "
                f"attention head, which weighs every step of the window and averages [embedding, every layer's h] "
                f"for the Dense. Every value shown here is that of the window of {window} characters ending at its "
                "character (padded before the text, as textgenrnn pads it); Visualise shows which steps the head read.")
    reads = (f"It was trained on windows of {window} characters from a zero state, so every value shown here is that "
             f"of the window of {window} characters ending at its character, as the post computed it."
             if window else "It reads a text statefully, its state carried from character to character.")
    return (f"Imported from the Keras file **{source['file']}** ({source['format']}{version}): "
            f"{arch.layers} x {arch.units} LSTM reading {how}. {reads}")
