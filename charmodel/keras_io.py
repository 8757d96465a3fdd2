"""Keras files: a run handed back as a Keras 3 `.keras` model (issue 22, export).

The exported model is the run's own architecture built from standard Keras layers only
(Embedding, LSTM, Dropout, Dense, Softmax), so `keras.saving.load_model` opens it with no custom
objects and in its default safe mode. It takes character ids (B, T) and gives the next-character
probabilities after every position (B, T, vocab), from a zero state. The characters, in index
order, go beside it as NAME.chars.json: a Keras file holds no vocabulary.

Imports TensorFlow: only the export command uses this module.
"""

import json
import os
import tempfile
from pathlib import Path

from . import runfolder
from .errors import CharModelError


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
