"""textgenrnn's model files (the `textgenrnn` package), recognised so that `import` says in one line
what it cannot do with them, instead of failing on the layer it does not know.

textgenrnn writes three files per model: `NAME_weights.hdf5` (weights only, layers `embedding`,
`rnn_1`..., `rnn_concat`, `attention`, `output`), `NAME_vocab.json` and `NAME_config.json`; its
pretrained model ships as `textgenrnn_weights.hdf5` and `textgenrnn_vocab.json`, with no config
(its defaults: 2 x 128, window 40, embedding 100). Its head, an attention-weighted average of
[embedding, every LSTM layer] over the window, is not in the engine, so no textgenrnn model imports
yet; word-level and bidirectional ones would be refused even then. Reads names and JSON; runs nothing.
"""

import json
from pathlib import Path

from charmodel.errors import CharModelError

MAX_CONFIG_BYTES = 1 << 20  # a textgenrnn config is a few hundred bytes


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


def refusal(path, config_path=None) -> str:
    """Why this textgenrnn model does not import, in one line (its config read as JSON when there is
    one: `config_path`, or NAME_config.json beside the weights)."""
    path = Path(path)
    config_path = Path(config_path) if config_path else companions(path)[1]
    config = {}
    if config_path.is_file():
        if config_path.stat().st_size > MAX_CONFIG_BYTES:
            raise CharModelError(f"{config_path.name} is too large for a textgenrnn config; refused.")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CharModelError(f"{config_path.name} is not a textgenrnn config ({e.__class__.__name__}).") from None
        if not isinstance(config, dict):
            raise CharModelError(f"{config_path.name} is not a textgenrnn config (not a JSON object).")
    if config.get("word_level"):
        return f"{path.name} is a word-level textgenrnn model ({config_path.name}); only character models import."
    if config.get("rnn_bidirectional"):
        return (f"{path.name} is a bidirectional textgenrnn model ({config_path.name}): it reads each window both "
                "ways, which a character model that generates left to right cannot; only one-way models import.")
    return (f"{path.name} is a textgenrnn model: its head, an attention-weighted average over the window of the "
            "embedding and every LSTM layer, is not in charmodel's engine yet, so it does not import; nothing "
            "was written.")
