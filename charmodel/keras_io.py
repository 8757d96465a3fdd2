"""Keras files both ways (issue 22): a Keras char-LSTM opened as a run, and a run handed back as
a Keras 3 `.keras` model.

Import reads a file's architecture (a `.keras` file's config.json, a legacy `.h5` file's
`model_config` attribute, or a config written by `model.to_json()`) as JSON, and its weights as
plain arrays with h5py. Nothing in the file is run: no `load_model` on a file before its config
has been checked to hold only standard layers, never `safe_mode=False`, no pickle, no Lambda.
What is supported is a chain of an optional Embedding (else one-hot or one scalar per character,
index / vocabulary size, as the post fed it), LSTM layers (Keras 3's, Keras 2's LSTM and CuDNNLSTM),
Dropout, and a Dense layer over the characters with softmax or linear output (or a separate
softmax). Anything else is refused with one line before anything is written. The weights map
onto the engine's: the input becomes its first-layer table (the embedding, an identity for one-hot,
a (vocab, 1) column of index / vocab for the scalar), Keras 2's CuDNNLSTM weights are converted as
Keras 2's own loader did (kernels per gate from cuDNN's layout, the two bias halves added).
When Keras is installed the import checks itself: the file through Keras and the new run through
the engine on a few windows, refused above IMPORT_TOLERANCE.

The exported model is the run's own architecture built from standard Keras layers only
(Embedding, LSTM, Dropout, Dense, Softmax), so `keras.saving.load_model` opens it with no custom
objects and in its default safe mode. It takes character ids (B, T) and gives the next-character
probabilities after every position (B, T, vocab), from a zero state. The characters, in index
order, go beside it as NAME.chars.json: a Keras file holds no vocabulary.

Reading imports no TensorFlow; the self-check and the export import Keras when they run.
"""

import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import runfolder
from .corpus import Vocab, clean, read_text, sha256, split
from .errors import CharModelError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
MAX_CONFIG_BYTES = 16 * 2**20  # a model's JSON config; a char-LSTM's is a few kB
MAX_WEIGHTS_BYTES = 2 * 2**30
IMPORT_TOLERANCE = 1e-4  # largest difference in next-character probability the self-check accepts
INPUTS = ("embedding", "onehot", "scalar")
SUPPORTED = ("an optional Embedding, LSTM layers, Dropout, and a Dense (or TimeDistributed Dense) softmax or linear "
             "over the characters")


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
    arch, chars = config["architecture"], runfolder.vocab_of(config).chars

    import keras

    from . import model as kmodel

    inner = kmodel.build(len(chars), arch["layers"], arch["units"], arch["dropout"], arch["embedding"])
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


# ---------------------------------------------------------------- import: what the file is

def sniff(path) -> str | None:
    """'keras' (a Keras 3 zip), 'h5' (HDF5: a legacy model or weights file), 'archive' (any other
    zip: a run archive), or None; told apart by content, not by the name."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise CharModelError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise CharModelError(f"{path} is a folder, not a model file.") from None
    return _kind(head, lambda: zipfile.ZipFile(path))


def sniff_bytes(data: bytes) -> str | None:
    """sniff() for an upload held in memory."""
    return _kind(data[:8], lambda: zipfile.ZipFile(io.BytesIO(data)))


def _kind(head: bytes, open_zip) -> str | None:
    if head == HDF5_MAGIC:
        return "h5"
    if head[:4] != ZIP_MAGIC:
        return None
    try:
        with open_zip() as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return "archive"  # the archive import names the damage
    return "keras" if {"config.json", "model.weights.h5"} <= names else "archive"


@dataclass
class Spec:
    """A chain of layers read from a config: (class name, layer name, its config), in order."""

    layers: list
    source: str  # what the config came from, for messages
    input_shape: list | None = None  # (batch, time, features) as declared, if declared


def _load_json(data: bytes, what: str) -> dict:
    if len(data) > MAX_CONFIG_BYTES:
        raise CharModelError(f"{what} is {len(data) / 2**20:.0f} MB, too large for a model config.")
    try:
        out = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CharModelError(f"{what} is not valid JSON ({e.__class__.__name__}).") from None
    if not isinstance(out, dict):
        raise CharModelError(f"{what} is not a Keras model config (a JSON object with class_name and config).")
    return out


def _inbound(layer: dict) -> list[str]:
    """The names of the layers whose outputs a functional layer reads (Keras 3's and Keras 2's forms)."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            history = x.get("config", {}).get("keras_history") if x.get("class_name") == "__keras_tensor__" else None
            if history:
                found.append(history[0])
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int):  # Keras 2: [name, node, tensor, {}]
                found.append(x[0])
                return
            for v in x:
                walk(v)

    walk(layer.get("inbound_nodes", []))
    return found


def parse_config(config: dict, source: str) -> Spec:
    """The chain of layers of a Sequential or functional model config, or one line saying why not."""
    kind, inner = config.get("class_name"), config.get("config")
    if kind == "Sequential":
        layers = inner.get("layers") if isinstance(inner, dict) else inner  # Keras 2.0-2.1: a bare list
    elif kind in ("Functional", "Model"):
        layers = inner.get("layers") if isinstance(inner, dict) else None
    else:
        raise CharModelError(f"{source} describes a {kind!r}, not a Sequential or functional Keras model.")
    if not isinstance(layers, list) or not layers or not all(isinstance(l, dict) for l in layers):
        raise CharModelError(f"{source} lists no layers; it is not a Keras model config.")
    out, shape, previous = [], None, None
    for layer in layers:
        cls, conf = layer.get("class_name"), layer.get("config") or {}
        name = layer.get("name") or conf.get("name") or ""
        if kind != "Sequential" and previous is not None and _inbound(layer) != [previous]:
            raise CharModelError(f"{source}: layer {name!r} does not read only the layer before it; only a single "
                                 "chain of layers can be imported.")
        previous = name
        declared = conf.get("batch_shape") or conf.get("batch_input_shape")
        if declared and shape is None:
            shape = list(declared)
        if cls != "InputLayer":
            out.append((cls, name, conf))
    if kind != "Sequential":
        outputs = inner.get("output_layers") or []
        names = [o[0] for o in outputs if isinstance(o, list) and o] if isinstance(outputs, list) else []
        if len(names) > 1 or (names and names[0] != previous):
            raise CharModelError(f"{source}: the model's output is not its last layer; only a single chain of layers "
                                 "can be imported.")
    return Spec(out, source, shape)


# ---------------------------------------------------------------- import: the layers, checked

@dataclass
class Layer:
    kind: str  # embedding, lstm, dense, softmax
    name: str
    conf: dict
    cls: str
    weights: list = field(default_factory=list)
    softmax: bool = False  # a Dense whose output is probabilities (its own activation, or a softmax after it)


_WHY = {
    "Lambda": "holds Python code, which is never run here",
    "GRU": "is a GRU; only LSTM layers can be imported", "SimpleRNN": "is a SimpleRNN; only LSTM layers can be imported",
    "CuDNNGRU": "is a GRU; only LSTM layers can be imported",
    "Bidirectional": "reads the text both ways; the engine reads it forwards only",
    "TFSMLayer": "loads a TensorFlow SavedModel, which is code",
}


def _activation(conf: dict, key: str):
    """An activation's name: Keras 2 and 3 write a string, some configs a serialized object."""
    value = conf.get(key)
    return value if not isinstance(value, dict) else value.get("config", {}).get("name", value.get("class_name"))


def check_layers(spec: Spec) -> list[Layer]:
    """Layers the engine can run, in order; anything else is one line naming the layer."""
    layers = []
    for cls, name, conf in spec.layers:
        where = f"{spec.source}: layer {name!r}"
        outer = cls
        if cls == "TimeDistributed":  # a Dense applied at every step is what a Dense after LSTMs does anyway
            inner = conf.get("layer") or {}
            if inner.get("class_name") != "Dense":
                raise CharModelError(f"{where} is a TimeDistributed {inner.get('class_name')}; only TimeDistributed(Dense) "
                                     f"is supported. Supported: {SUPPORTED}.")
            cls, conf = "Dense", inner.get("config") or {}
        if cls in ("Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout"):
            continue  # training only
        if cls == "Embedding":
            if layers:
                raise CharModelError(f"{where} is an Embedding after other layers; it must come first.")
            if conf.get("mask_zero"):
                raise CharModelError(f"{where} masks character 0 (mask_zero), which skips its steps; not supported.")
            layers.append(Layer("embedding", name, conf, cls))
        elif cls in ("LSTM", "CuDNNLSTM"):
            if cls == "LSTM":
                for key, default in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
                    got = _activation(conf, key) or default
                    if got != default:
                        raise CharModelError(f"{where} uses {key} {got!r}; only {default!r} is supported (Keras' "
                                             "default since 2.3, and what cuDNN runs).")
            for key in ("go_backwards", "return_state", "time_major"):
                if conf.get(key):
                    raise CharModelError(f"{where} sets {key}; not supported.")
            if any(l.kind == "dense" for l in layers):
                raise CharModelError(f"{where} follows a Dense layer; only LSTMs, then one Dense, can be imported.")
            last = [l for l in layers if l.kind == "lstm"]
            if last and not last[-1].conf.get("return_sequences", False):
                raise CharModelError(f"{spec.source}: layer {last[-1].name!r} returns only its last step, but LSTM "
                                     f"{name!r} reads it; only the last LSTM may do that.")
            layers.append(Layer("lstm", name, conf, cls))
        elif cls == "Dense":
            act = _activation(conf, "activation") or "linear"
            if act not in ("softmax", "linear"):
                raise CharModelError(f"{where} has activation {act!r}; the output Dense must be softmax or linear.")
            if not any(l.kind == "lstm" for l in layers) or any(l.kind == "dense" for l in layers):
                raise CharModelError(f"{where} is not the one Dense after the LSTMs; expected {SUPPORTED}.")
            layers.append(Layer("dense", name, conf, outer, softmax=act == "softmax"))
        elif cls in ("Activation", "Softmax"):
            act = "softmax" if cls == "Softmax" else _activation(conf, "activation")
            if act not in ("softmax", "linear") or not layers or layers[-1].kind != "dense":
                raise CharModelError(f"{where} is a {act!r} activation; only a softmax right after the Dense is "
                                     "supported.")
            layers[-1].softmax = layers[-1].softmax or act == "softmax"
        else:
            why = _WHY.get(cls, "is not a layer this engine can run")
            raise CharModelError(f"{where} is a {cls}: it {why}. Supported: {SUPPORTED}.")
    lstms = [l for l in layers if l.kind == "lstm"]
    if not lstms or not layers or layers[-1].kind != "dense":
        raise CharModelError(f"{spec.source} is not {SUPPORTED}: "
                             f"{'it has no LSTM' if not lstms else 'its last weighted layer is not a Dense'}.")
    units = sorted({int(l.conf.get("units", 0)) for l in lstms})
    if len(units) > 1:
        raise CharModelError(f"{spec.source}: its LSTMs have {' and '.join(map(str, units))} units; the engine needs "
                             "one size for every layer.")
    return layers


# ---------------------------------------------------------------- import: the weights

def _names(attr) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in attr]


def infer_config(f, source: str, version) -> dict:
    """A Sequential config for a legacy weights-only file (`model.save_weights` or a
    ModelCheckpoint, which is what the post's readers have), read from its layers' weight shapes:
    a 2-D table first is an Embedding, (in, 4u) (u, 4u) (4u or 8u) an LSTM (8u: a CuDNNLSTM), (u, v)
    (v) the Dense, no weights a Dropout. Activations are assumed to be the defaults (tanh,
    sigmoid); a Keras 2 before 2.3, whose LSTM defaulted to hard_sigmoid, needs --config."""
    layers = []
    for name in _names(f.attrs["layer_names"]):
        shapes = [f[name][w].shape for w in _names(f[name].attrs.get("weight_names", []))] if name in f else []
        if not shapes:
            continue
        if len(shapes) == 1 and len(shapes[0]) == 2 and not layers:
            layers.append({"class_name": "Embedding", "config": {"name": name}})
        elif len(shapes) == 3 and len(shapes[1]) == 2 and shapes[1][1] == 4 * shapes[1][0]:
            units = shapes[1][0]
            cudnn = shapes[2] == (8 * units,)
            if not cudnn and version and re.match(r"^2\.[0-2]\.", str(version)):
                raise CharModelError(f"{source} holds weights only, written by Keras {version}, whose LSTM defaulted to "
                                     "hard_sigmoid; pass the model's architecture as --config FILE (model.to_json()).")
            layers.append({"class_name": "CuDNNLSTM" if cudnn else "LSTM",
                           "config": {"name": name, "units": units, "return_sequences": True}})
        elif len(shapes) == 2 and len(shapes[0]) == 2 and shapes[1] == (shapes[0][1],):
            layers.append({"class_name": "Dense", "config": {"name": name, "units": shapes[0][1], "activation": "linear"}})
        else:
            raise CharModelError(f"{source} holds weights only, and layer {name!r}'s weights {shapes} are not an "
                                 f"Embedding, an LSTM or a Dense; pass the model's architecture as --config FILE.")
    return {"class_name": "Sequential", "config": {"name": "inferred", "layers": layers}}


def _snake(name: str) -> str:  # Keras' own naming of a layer's folder in a .weights.h5 file
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _arrays(group, what: str) -> list:
    try:
        return [np.asarray(group[k][()], dtype=np.float32) for k in sorted(group, key=int)]
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise CharModelError(f"{what}'s weights are damaged or missing ({e.__class__.__name__}).") from None


def read_weights(f, layers: list[Layer], source: str) -> None:
    """Fill each layer's weights from an open h5py file or group, in either of Keras' layouts:
    Keras 3's (layers/<class name, counted>/[cell/]vars/N) or the legacy one (a group per layer
    name, its `weight_names` attribute giving the order)."""
    import h5py

    if "layer_names" in f.attrs:  # legacy: a full model's model_weights, or a weights-only file
        for layer in layers:
            if layer.name not in f:
                raise CharModelError(f"{source} has no weights for layer {layer.name!r}; the file is incomplete.")
            g = f[layer.name]
            names = _names(g.attrs.get("weight_names", []))
            try:
                layer.weights = [np.asarray(g[n][()], dtype=np.float32) for n in names]
            except (KeyError, ValueError, TypeError, OSError) as e:
                raise CharModelError(f"{source}: layer {layer.name!r}'s weights are damaged ({e.__class__.__name__}).") from None
        return
    if "layers" not in f or not isinstance(f["layers"], h5py.Group):
        raise CharModelError(f"{source} holds no Keras weights (neither layout Keras writes).")
    counters: dict[str, int] = {}
    folder = {}
    for layer in layers:  # the folder of the k-th layer of a class is <snake>, <snake>_1, ...
        base = _snake(layer.cls)
        k = counters.get(base, 0)
        counters[base] = k + 1
        folder[layer.name] = base if k == 0 else f"{base}_{k}"
    for layer in layers:
        path = f"layers/{folder[layer.name]}"
        inside = {"lstm": "/cell", "dense": "/layer" if layer.cls == "TimeDistributed" else ""}.get(layer.kind, "")
        vars_path = f"{path}{inside}/vars"
        if vars_path not in f:
            raise CharModelError(f"{source} has no weights for layer {layer.name!r}; the file is incomplete.")
        layer.weights = _arrays(f[vars_path], f"{source}: layer {layer.name!r}")


def _cudnn_to_lstm(kernel, recurrent, bias):
    """Keras 2's CuDNNLSTM weights as an LSTM's, as Keras 2's loader converted them: each gate's
    kernel block from cuDNN's layout, each gate's recurrent block transposed, the input and
    recurrent bias halves added."""
    gates = lambda k, f: np.hstack([f(b) for b in np.hsplit(k, 4)])
    kernel = gates(kernel, lambda b: b.T.reshape(b.shape, order="F"))
    recurrent = gates(recurrent, lambda b: b.T)
    return kernel, recurrent, bias[: len(bias) // 2] + bias[len(bias) // 2 :]


def engine_weights(layers: list[Layer], vocab_size: int, input_kind: str | None, source: str) -> tuple[dict, str]:
    """The engine's named arrays from the checked layers, and the input kind used."""
    V = vocab_size
    first = layers[0]
    lstms = [l for l in layers if l.kind == "lstm"]
    dense = layers[-1]
    units = int(lstms[0].conf.get("units") or lstms[0].weights[1].shape[0])
    out = {}
    if first.kind == "embedding":
        if input_kind not in (None, "embedding"):
            raise CharModelError(f"{source} starts with an Embedding, so its input is character ids, not --input "
                                 f"{input_kind}.")
        (table,) = first.weights or [None]
        if table is None or table.ndim != 2 or table.shape[0] < V:
            raise CharModelError(f"{source}: the Embedding has {0 if table is None else table.shape[0]} rows for "
                                 f"{V} characters; the vocabulary does not fit the model.")
        out["embedding"], input_kind = table[:V], "embedding"
    for l, layer in enumerate(lstms):
        w = layer.weights
        if len(w) == 2 and layer.conf.get("use_bias") is False:
            w = [*w, np.zeros(w[1].shape[1], np.float32)]
        if len(w) != 3 or w[1].shape != (units, 4 * units) or w[0].shape[1:] != (4 * units,):
            raise CharModelError(f"{source}: layer {layer.name!r} has weights of shapes "
                                 f"{[tuple(x.shape) for x in w]}, not an LSTM of {units} units.")
        kernel, recurrent, bias = w
        if len(bias) == 8 * units:  # Keras 2 CuDNNLSTM (or its weights loaded into an LSTM)
            kernel, recurrent, bias = _cudnn_to_lstm(kernel, recurrent, bias)
        elif len(bias) != 4 * units:
            raise CharModelError(f"{source}: layer {layer.name!r} has a bias of {len(bias)}, not {4 * units} "
                                 f"(LSTM) or {8 * units} (CuDNNLSTM).")
        out[f"lstm{l}_kernel"], out[f"lstm{l}_recurrent"], out[f"lstm{l}_bias"] = kernel, recurrent, bias
    reads = out["lstm0_kernel"].shape[0]
    if first.kind != "embedding":
        if input_kind is None:
            input_kind = "scalar" if reads == 1 and V > 1 else "onehot" if reads == V else None
        need = {"scalar": 1, "onehot": V}.get(input_kind)
        if input_kind == "embedding" or need is None or reads != need:
            raise CharModelError(
                f"{source}: the first LSTM reads {reads} number(s) per character, which is "
                + (f"not what --input {input_kind} gives ({need})." if input_kind in ("scalar", "onehot") else
                   f"neither one scalar nor a one-hot of the {V} characters; check --chars or --vocab-from."))
        out["embedding"] = (np.eye(V, dtype=np.float32) if input_kind == "onehot"
                            else (np.arange(V, dtype=np.float32) / V)[:, None])
    kernel, *rest = dense.weights or [None]
    if kernel is None or kernel.ndim != 2 or kernel.shape[0] != units:
        raise CharModelError(f"{source}: the Dense layer's weights do not read the LSTM's {units} units.")
    if kernel.shape[1] != V:
        raise CharModelError(f"the model predicts {kernel.shape[1]} characters but the vocabulary given has {V}; "
                             "they must be the same characters in the same order.")
    out["dense_kernel"] = kernel
    out["dense_bias"] = rest[0] if rest else np.zeros(V, np.float32)
    return out, input_kind


@dataclass
class KerasModel:
    layers: list
    spec: Spec
    kind: str  # keras or h5
    keras_version: str | None
    input_kind: str | None = None  # embedding, onehot or scalar, once engine_weights has decided
    inferred: bool = False  # the architecture was read from the weights' shapes (a weights-only legacy file)


def read_model(path, config_path=None) -> KerasModel:
    """A Keras model file's architecture and weights, read as JSON and arrays; runs nothing."""
    import h5py

    path = Path(path)
    kind = sniff(path)
    source = path.name
    if kind not in ("keras", "h5"):
        raise CharModelError(f"{source} is neither a Keras .keras file nor an HDF5 .h5 file.")
    extra, inferred = None, False
    if config_path is not None:
        try:
            extra = _load_json(Path(config_path).read_bytes(), str(config_path))
        except FileNotFoundError:
            raise CharModelError(f"config file {config_path} does not exist.") from None
    try:
        if kind == "keras":
            with zipfile.ZipFile(path) as z:
                info = {i.filename: i for i in z.infolist()}
                if info["config.json"].file_size > MAX_CONFIG_BYTES or info["model.weights.h5"].file_size > MAX_WEIGHTS_BYTES:
                    raise CharModelError(f"{source} declares members too large for a char-LSTM; refused.")
                config = extra or _load_json(z.read("config.json"), f"{source}'s config.json")
                meta = {}
                if "metadata.json" in info and info["metadata.json"].file_size < MAX_CONFIG_BYTES:
                    try:
                        meta = json.loads(z.read("metadata.json"))
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        meta = {}
                weights = io.BytesIO(z.read("model.weights.h5"))
            spec = parse_config(config, source)
            layers = check_layers(spec)
            with h5py.File(weights, "r") as f:
                read_weights(f, layers, source)
            version = meta.get("keras_version") if isinstance(meta, dict) else None
        else:
            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                version = f.attrs.get("keras_version")
                version = version.decode() if isinstance(version, bytes) else version
                inferred = extra is None and raw is None
                if inferred and "layer_names" not in f.attrs:
                    raise CharModelError(f"{source} holds weights only; pass the model's architecture as --config "
                                         "FILE (what model.to_json() writes).")
                config = extra or (infer_config(f, source, version) if inferred else
                                   _load_json(raw.encode() if isinstance(raw, str) else bytes(raw),
                                              f"{source}'s model_config"))
                spec = parse_config(config, source)
                layers = check_layers(spec)
                read_weights(f["model_weights"] if "model_weights" in f else f, layers, source)
    except CharModelError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError) as e:
        raise CharModelError(f"{source} is damaged or truncated ({e.__class__.__name__}); nothing was imported.") from None
    return KerasModel(layers, spec, kind, version, inferred=kind == "h5" and inferred)


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


def import_keras(model_path, root, name: str, chars_file=None, vocab_from=None, corpus=None,
                 input_kind: str | None = None, window=None, config_path=None, check: bool = True,
                 report=print, lowercase: bool = False) -> Path:
    """Make run folder root/NAME from a Keras file, all or nothing; returns its path. lowercase:
    the model saw its text lowercased (the post did): the vocabulary's text and the corpus are
    lowercased as they are read."""
    from .engine import Engine, check_window

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
    unknown = vocab.unknown(text)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise CharModelError(f"the corpus {Path(text_path).name} has {len(unknown)} character(s) the model does not "
                             f"know: {shown}; give the text prepared as the model's was (lowercased, say).")
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
    config = {
        "format": 1,
        "architecture": {"layers": len(lstms), "units": int(weights["lstm0_recurrent"].shape[0]), "dropout": 0.0,
                         "embedding": int(weights["embedding"].shape[1]), "vocab_size": len(vocab),
                         "input": input_kind},
        "training": {},
        "corpus": {"path": Path(text_path).name, "sha256": sha256(text_path), "collapse_spaces": False,
                   "val_fraction": 0.1, "chars": len(text), "train_chars": len(train), "val_chars": len(val)},
        "vocab": vocab.chars,
        "window": window,
        "imported": {"file": Path(model_path).name, "sha256": sha256(model_path), "format": model.kind,
                     "lowercased": lowercase,
                     "architecture_from": "weight shapes" if model.inferred else "config",
                     "keras_version": model.keras_version,
                     "layers": [f"{l.cls}({l.conf.get('units', l.conf.get('output_dim', ''))})" for l in model.layers]},
    }
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=root))  # hidden: not listed as a run
    try:
        runfolder.atomic_write_json(tmp / runfolder.CONFIG, config)
        runfolder.atomic_write_bytes(tmp / "corpus.txt", raw.encode("utf-8"))
        runfolder.save_weights_npz(tmp / "best.npz", weights, dtype=np.float32)  # as the file has them
        engine = Engine.load(tmp, "best")
        if check:
            difference, how = self_check(model_path, model, engine, text)
            if difference is None:
                report(f"not checked against Keras: {how}")
            elif difference > IMPORT_TOLERANCE:
                raise CharModelError(f"the engine's next-character probabilities differ from Keras' by {difference:.1e} "
                                     f"(over {IMPORT_TOLERANCE:g}) {how}; nothing was imported.")
            else:
                report(f"checked against Keras {how}: largest difference in next-character probability "
                       f"{difference:.1e} (at most {IMPORT_TOLERANCE:g} accepted)")
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


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
    from .engine import softmax

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


def imported_line(config: dict) -> str | None:
    """What an imported run is, in a sentence for people (None for a run trained here)."""
    source = config.get("imported")
    if not source:
        return None
    arch = config["architecture"]
    window = config.get("window")
    how = {"scalar": "one number per character (index / vocabulary size), as the post fed it",
           "onehot": "a one-hot vector per character", "embedding": "an Embedding"}.get(arch.get("input"), "")
    version = f", Keras {source['keras_version']}" if source.get("keras_version") else ""
    reads = (f"It was trained on windows of {window} characters from a zero state, so every value shown here is that "
             f"of the window of {window} characters ending at its character, as the post computed it."
             if window else "It reads a text statefully, its state carried from character to character.")
    return (f"Imported from the Keras file **{source['file']}** ({source['format']}{version}): "
            f"{arch['layers']} x {arch['units']} LSTM reading {how}. {reads}")
