"""A Keras char-LSTM file read as data: its architecture as JSON (a `.keras` file's config.json, a
legacy `.h5` file's `model_config`, or a `model.to_json()` file) and its weights as plain arrays
with h5py. Nothing in the file is run; anything but an optional Embedding, LSTM layers (Keras 3's,
Keras 2's LSTM and CuDNNLSTM), Dropout and a Dense over the characters is refused with one line.
"""

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charmodel.errors import CharModelError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
MAX_CONFIG_BYTES = 16 * 2**20  # a model's JSON config; a char-LSTM's is a few kB
MAX_WEIGHTS_BYTES = 2 * 2**30
INPUTS = ("embedding", "onehot", "scalar")
SUPPORTED = ("an optional Embedding, LSTM layers, Dropout, and a Dense (or TimeDistributed Dense) softmax or linear "
             "over the characters")


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


def cudnn_to_lstm(kernel, recurrent, bias):
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
            kernel, recurrent, bias = cudnn_to_lstm(kernel, recurrent, bias)
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
