"""textgenrnn's models (the `textgenrnn` package) opened as runs, read as data: nothing in the files runs.

textgenrnn writes three files per model: `NAME_weights.hdf5` (Keras 2 weights only: layers `embedding`,
`rnn_1`..., `rnn_concat`, `attention`, `output`), `NAME_vocab.json` ({character: index}, from 1) and
`NAME_config.json`; its pretrained model ships as `textgenrnn_weights.hdf5` and
`textgenrnn_vocab.json`, with no config (its defaults: 2 x 128, window 40, embedding 100).

Its model reads windows of `max_length` ids, left-padded with id 0 (which has its own embedding row
and runs through the LSTMs), through an Embedding and LSTMs that return every step, then an
attention-weighted average over the window of [embedding, every LSTM layer] (engine.Attention), then
a Dense softmax over the vocabulary. As a run:
  * index 0, the padding, is the character U+0000, which a cleaned text never holds: every text is
    read after W - 1 of it (engine.zero_carry), as textgenrnn pads its first windows; it is never
    sampled (textgenrnn takes its second choice instead);
  * the meta token `<s>`, which textgenrnn puts around every text (each line of a file), is the
    newline, so a text of many lines reads as textgenrnn's texts do, one after another: at each one
    the windows start over from the padding (engine.windows); generation puts it before the prime
    as textgenrnn does. A vocabulary that holds a newline already keeps `<s>` as U+001E (record
    separator) instead;
  * Keras 2's CuDNNLSTM weights (a GPU-trained model's, bias 8 x units) are converted as Keras 2's
    loader converted them.
Word-level and bidirectional models are refused in one line.
"""

import json
from pathlib import Path

import numpy as np

from charmodel.errors import CharModelError

MAX_JSON_BYTES = 1 << 20  # a textgenrnn config is a few hundred bytes; a character vocabulary a few kB
META_TOKEN = "<s>"
PADDING_CHAR = "\x00"
START_CHARS = ("\n", "\x1e")  # <s> as a newline, or as the record separator when the vocabulary has a newline
DEFAULTS = {"rnn_layers": 2, "rnn_size": 128, "rnn_bidirectional": False, "max_length": 40, "dim_embeddings": 100,
            "word_level": False, "single_text": False}  # textgenrnn's own, for its pretrained model


def companions(path) -> tuple[Path, Path]:
    """(vocab, config) paths textgenrnn writes beside `NAME_weights.hdf5`: NAME_vocab.json and
    NAME_config.json (for any other name, the name without its suffix)."""
    path = Path(path)
    stem = path.name.removesuffix(".hdf5").removesuffix(".h5").removesuffix("_weights")
    return path.with_name(f"{stem}_vocab.json"), path.with_name(f"{stem}_config.json")


def layer_names(path) -> list[str]:
    """The layer names an HDF5 Keras file lists (weights-only, or a whole model's model_weights)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            return [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("layer_names", [])]
    except (OSError, KeyError):
        return []


def is_textgenrnn(path) -> bool:
    """An HDF5 file whose layers are textgenrnn's: an `attention` layer after `rnn_1`."""
    names = layer_names(path)
    return "attention" in names and "rnn_1" in names


def _json(path, what: str):
    path = Path(path)
    if not path.is_file():
        raise CharModelError(f"{what} {path} does not exist.")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise CharModelError(f"{path.name} is too large for a textgenrnn {what}; refused.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CharModelError(f"{path.name} is not a textgenrnn {what} ({e.__class__.__name__}).") from None


def read_config(path, config_path=None) -> tuple[dict, Path | None]:
    """(settings, the file they came from or None): `config_path`, or NAME_config.json beside the
    weights, or textgenrnn's defaults when there is neither (its pretrained model ships none)."""
    config_path = Path(config_path) if config_path else companions(path)[1]
    if not config_path.is_file():
        if config_path != companions(path)[1]:
            raise CharModelError(f"config {config_path} does not exist.")
        return dict(DEFAULTS), None
    data = _json(config_path, "config")
    if not isinstance(data, dict):
        raise CharModelError(f"{config_path.name} is not a textgenrnn config (not a JSON object).")
    out = DEFAULTS | {k: data[k] for k in DEFAULTS if k in data}
    for key in ("rnn_layers", "rnn_size", "max_length", "dim_embeddings"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
            raise CharModelError(f"{config_path.name}: {key} must be a whole number from 1, not {value!r}.")
    if out["max_length"] < 2:
        raise CharModelError(f"{config_path.name}: max_length must be 2 or more, not {out['max_length']}.")
    return out, config_path


def refusal(path, config_path=None) -> str | None:
    """Why this textgenrnn model cannot import, in one line, or None: a word-level or bidirectional one."""
    config, where = read_config(path, config_path)
    name = where.name if where else "its config"
    if config.get("word_level"):
        return f"{Path(path).name} is a word-level textgenrnn model ({name}); only character models import."
    if config.get("rnn_bidirectional"):
        return (f"{Path(path).name} is a bidirectional textgenrnn model ({name}): it reads each window both "
                "ways, which a character model that generates left to right cannot; only one-way models import.")
    return None


def read_vocab(vocab_path) -> tuple[str, int]:
    """(the run's characters in index order, the index of <s>) from textgenrnn's {character: index}."""
    data = _json(vocab_path, "vocabulary")
    name = Path(vocab_path).name
    if not isinstance(data, dict) or not data:
        raise CharModelError(f"{name} is not a textgenrnn vocabulary (a JSON object of characters and indices).")
    indices = sorted(data.values(), key=lambda v: (not isinstance(v, int), v if isinstance(v, int) else 0))
    if any(isinstance(v, bool) or not isinstance(v, int) for v in indices) or indices != list(range(1, len(data) + 1)):
        raise CharModelError(f"{name}: the indices must be the whole numbers 1 to {len(data)}, each once.")
    if META_TOKEN not in data:
        raise CharModelError(f"{name} has no {META_TOKEN} token; it is not a textgenrnn character vocabulary.")
    words = [k for k in data if len(k) != 1 and k != META_TOKEN]
    if words:
        raise CharModelError(f"{name} lists {len(words)} entries longer than one character (such as {words[0]!r}): "
                             "a word-level vocabulary; only character models import.")
    if PADDING_CHAR in data:
        raise CharModelError(f"{name} lists the character U+0000, which stands for textgenrnn's padding here.")
    start = next(c for c in START_CHARS if c not in data)
    chars = [PADDING_CHAR] * (len(data) + 1)
    for key, index in data.items():
        chars[index] = start if key == META_TOKEN else key
    return "".join(chars), data[META_TOKEN]


def read_weights(path, config: dict, vocab_size: int, said: str = "its config") -> tuple[dict, str | None]:
    """(the engine's named arrays, the Keras version that wrote the file) from textgenrnn's weights."""
    import h5py

    from charmodel.exchange.keras_file import cudnn_to_lstm

    name = Path(path).name
    V, E, U, L = vocab_size, config["dim_embeddings"], config["rnn_size"], config["rnn_layers"]
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            version = f.attrs.get("keras_version", group.attrs.get("keras_version"))
            version = version.decode() if isinstance(version, bytes) else version
            listed = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("layer_names", [])]
            rnns = sorted((n for n in listed if n.startswith("rnn_") and n[4:].isdigit()), key=lambda n: int(n[4:]))

            def arrays(layer):
                if layer not in group:
                    raise CharModelError(f"{name} has no weights for layer {layer!r}; the file is incomplete.")
                g = group[layer]
                return [np.asarray(g[w][()], np.float32) for w in
                        (n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs.get("weight_names", []))]

            table = arrays("embedding")
            lstms = [arrays(n) for n in rnns]
            attention = arrays("attention")
            dense = arrays("output")
    except CharModelError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise CharModelError(f"{name} is damaged or truncated ({e.__class__.__name__}); nothing was imported.") from None
    if len(rnns) != L:
        raise CharModelError(f"{name} has {len(rnns)} LSTM layers but {said} says {L}; give the model's own "
                             "NAME_config.json.")
    if len(table) != 1 or table[0].shape != (V, E):
        raise CharModelError(f"{name}'s embedding is {[t.shape for t in table]}, not ({V}, {E}): {V - 1} entries in "
                             f"the vocabulary and an embedding of {E}; give the model's own vocabulary and config.")
    out = {"embedding": table[0]}
    for l, w in enumerate(lstms):
        reads = E if l == 0 else U
        if len(w) != 3 or w[0].shape != (reads, 4 * U) or w[1].shape != (U, 4 * U) or len(w[2]) not in (4 * U, 8 * U):
            raise CharModelError(f"{name}: layer rnn_{l + 1} has weights of shapes {[x.shape for x in w]}, not an LSTM "
                                 f"of {U} units reading {reads}; give the model's own NAME_config.json.")
        kernel, recurrent, bias = cudnn_to_lstm(*w) if len(w[2]) == 8 * U else w  # a GPU-trained (CuDNNLSTM) model's
        out[f"lstm{l}_kernel"], out[f"lstm{l}_recurrent"], out[f"lstm{l}_bias"] = kernel, recurrent, bias
    width = E + L * U
    if len(attention) != 1 or attention[0].size != width:
        raise CharModelError(f"{name}: the attention's weights are {[a.shape for a in attention]}, not ({width}, 1).")
    if len(dense) != 2 or dense[0].shape != (width, V) or dense[1].shape != (V,):
        raise CharModelError(f"{name}: the output layer's weights are {[d.shape for d in dense]}, not ({width}, {V}) "
                             f"and ({V},).")
    out["attention_W"] = attention[0].reshape(width)
    out["dense_kernel"], out["dense_bias"] = dense
    return out, version


def import_textgenrnn(model_path, root, name: str, corpus, vocab_path=None, config_path=None, check: bool = True,
                      report=print) -> Path:
    """Make run folder root/NAME from textgenrnn's files, all or nothing, checked against Keras."""
    from charmodel.exchange import imported
    from charmodel.run.corpus import Vocab, clean, read_text, sha256, split
    from charmodel.run.handle import Architecture, Corpus, RunConfig

    from charmodel.run import folder as runfolder

    model_path = Path(model_path)
    why = refusal(model_path, config_path)
    if why:
        raise CharModelError(why)
    if runfolder.run_in(root, name).exists():
        raise CharModelError(f"a run named {name!r} already exists; import under another --name.")
    config, config_file = read_config(model_path, config_path)
    vocab_path = Path(vocab_path) if vocab_path else companions(model_path)[0]
    if not vocab_path.is_file():
        raise CharModelError(f"{model_path.name} needs its vocabulary: {vocab_path.name} is not beside it; pass "
                             "--textgenrnn-vocab FILE.")
    chars, start = read_vocab(vocab_path)
    vocab = Vocab(chars)
    if corpus is None:
        raise CharModelError("pass --corpus TEXT: the text the run shows and explains (the atlas needs one).")
    raw = read_text(corpus)
    text = clean(raw, collapse_spaces=False)
    imported.check_corpus(vocab, text, corpus)
    weights, version = read_weights(model_path, config, len(vocab),
                                    config_file.name if config_file else "textgenrnn's defaults (no config beside it)")
    window = config["max_length"]
    train, val = split(text)
    run_config = RunConfig(
        architecture=Architecture(layers=config["rnn_layers"], units=config["rnn_size"], vocab_size=len(vocab),
                                  embedding=config["dim_embeddings"], dropout=0.0, input="embedding", head="attention",
                                  padding=0, start=None if config["single_text"] else start),
        training={},
        corpus=Corpus(path=Path(corpus).name, sha256=sha256(corpus), collapse_spaces=False, val_fraction=0.1,
                      chars=len(text), train_chars=len(train), val_chars=len(val)),
        vocab=vocab.chars,
        window=window,
        imported={"file": model_path.name, "sha256": sha256(model_path), "format": "textgenrnn",
                  "keras_version": version, "vocab_file": vocab_path.name,
                  "config_file": config_file.name if config_file else None,
                  "layers": ["Embedding", *[f"LSTM({config['rnn_size']})"] * config["rnn_layers"],
                             "AttentionWeightedAverage", "Dense"]})
    return imported.write_imported(root, name, run_config, raw, weights,
                                   (lambda engine: self_check(engine, weights, text)) if check else None, report)


def rebuilt(keras, weights: dict, window: int):
    """textgenrnn's model in Keras 3, of standard layers only (the attention as a Dense(1) score, a
    softmax over the window and a dot product), with the imported weights: what the import is checked against."""
    V, E = weights["embedding"].shape
    layers = sum(1 for k in weights if k.endswith("_recurrent"))
    inputs = keras.Input(shape=(window,), dtype="int32")
    embedding = keras.layers.Embedding(V, E)
    x = embedding(inputs)
    parts, lstms = [x], []
    for l in range(layers):
        lstm = keras.layers.LSTM(weights[f"lstm{l}_recurrent"].shape[0], return_sequences=True)
        x = lstm(x)
        parts.append(x)
        lstms.append(lstm)
    both = keras.layers.Concatenate()(parts)
    score = keras.layers.Dense(1, use_bias=False)
    share = keras.layers.Softmax()(keras.layers.Reshape((window,))(score(both)))
    dense = keras.layers.Dense(V, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Dot(axes=1)([share, both])))
    embedding.set_weights([weights["embedding"]])
    for l, lstm in enumerate(lstms):
        lstm.set_weights([weights[f"lstm{l}_kernel"], weights[f"lstm{l}_recurrent"], weights[f"lstm{l}_bias"]])
    score.set_weights([weights["attention_W"][:, None]])
    dense.set_weights([weights["dense_kernel"], weights["dense_bias"]])
    return model


def self_check(engine, weights: dict, text: str, positions: int = 8) -> tuple[float | None, str]:
    """(largest difference in next-character probability, how): the engine's ring of padded windows
    over the text's start against the Keras model rebuilt from the same weights on the windows
    textgenrnn would give it (left-padded with id 0), at positions inside the first window and after."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
    except ImportError:
        return None, "Keras is not installed here."
    from charmodel.engine import softmax

    W = engine.window
    ids = engine.vocab.encode(text[: 4 * W], "the corpus")
    at = np.unique(np.linspace(0, len(ids) - 1, positions).astype(int))
    rows = engine.windows(ids, at)
    theirs = np.asarray(rebuilt(keras, weights, W)(rows, training=False), np.float64)
    logits, _, _ = engine.forward(ids[None], record=())
    ours = softmax(logits[0, at].astype(np.float64))
    how = (f"on {len(at)} windows of {W} ids (left-padded where a text begins, as textgenrnn pads them; a Keras "
           "model rebuilt from the file's weights, the attention as standard layers)")
    return float(np.abs(theirs - ours).max()), how
