"""textgenrnn's files: recognised by their layers and refused in one line, with nothing written.

The weights files are written here with h5py in the layout Keras 2's `save_weights` gives them
(root attributes `layer_names`, one group per layer with `weight_names`), as textgenrnn writes
them; the shapes are textgenrnn's, made small."""

import json

import h5py
import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.exchange import keras_io, textgenrnn

from .test_cli import cli


def write_weights(path, layers):
    """A Keras 2 weights-only HDF5 file: layers = [(name, {weight name: shape})]."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name, _ in layers]
        f.attrs["keras_version"] = b"2.1.5"
        f.attrs["backend"] = b"tensorflow"
        for name, weights in layers:
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{w}".encode() for w in weights]
            for w, shape in weights.items():
                group.create_dataset(f"{name}/{w}", data=np.zeros(shape, np.float32))
    return path


def textgenrnn_files(folder, name="tiny", config=None, vocab="abc \n", units=8, dim=6, layers=2):
    """NAME_weights.hdf5, NAME_vocab.json and (with config) NAME_config.json as textgenrnn writes them."""
    classes = len(vocab) + 2  # index 0 is padding, the last the meta token <s>
    spec = [("input", {}), ("embedding", {"embeddings:0": (classes, dim)})]
    n_in = dim
    for i in range(1, layers + 1):
        spec.append((f"rnn_{i}", {"kernel:0": (n_in, 4 * units), "recurrent_kernel:0": (units, 4 * units),
                                  "bias:0": (4 * units,)}))
        n_in = units
    concat = dim + layers * units
    spec += [("rnn_concat", {}), ("attention", {"attention_W:0": (concat, 1)}),
             ("output", {"kernel:0": (concat, classes), "bias:0": (classes,)})]
    weights = write_weights(folder / f"{name}_weights.hdf5", spec)
    (folder / f"{name}_vocab.json").write_text(json.dumps({c: i + 1 for i, c in enumerate(vocab)} | {"<s>": classes - 1}))
    if config is not None:
        (folder / f"{name}_config.json").write_text(json.dumps(config))
    return weights


DEFAULTS = {"rnn_layers": 2, "rnn_size": 8, "rnn_bidirectional": False, "max_length": 40, "dim_embeddings": 6,
            "word_level": False}


@pytest.mark.parametrize("config, said", [
    ({**DEFAULTS, "word_level": True}, "is a word-level textgenrnn model (tiny_config.json); only character models import."),
    ({**DEFAULTS, "rnn_bidirectional": True}, "is a bidirectional textgenrnn model (tiny_config.json)"),
    (DEFAULTS, "is a textgenrnn model: its head, an attention-weighted average over the window"),
    (None, "is a textgenrnn model: its head, an attention-weighted average over the window"),  # no config, as shipped
])
def test_a_textgenrnn_model_is_refused_in_one_line_and_nothing_is_written(tmp_path, config, said):
    weights = textgenrnn_files(tmp_path, config=config)
    into = tmp_path / "runs"
    for flags in ([], ["--name", "t", "--corpus", str(weights)]):  # before --name is asked for, and with it
        done = cli("import", weights, "--into", into, *flags)
        assert done.returncode == 2, done.stderr
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not into.exists()


def test_the_pretrained_file_name_and_the_apps_path_are_refused_the_same_way(tmp_path):
    weights = textgenrnn_files(tmp_path, name="textgenrnn", layers=2)
    assert weights.name == "textgenrnn_weights.hdf5"
    assert textgenrnn.companions(weights) == (tmp_path / "textgenrnn_vocab.json", tmp_path / "textgenrnn_config.json")
    with pytest.raises(CharModelError, match="textgenrnn_weights.hdf5 is a textgenrnn model"):
        keras_io.import_keras(weights, tmp_path / "runs", "t", corpus=weights)  # what the Train page's upload calls
    assert not (tmp_path / "runs").exists()


def test_other_keras_files_are_not_taken_for_textgenrnn_and_a_bad_config_is_one_line(tmp_path):
    post = write_weights(tmp_path / "post.h5", [("lstm_1", {"kernel:0": (1, 8)}), ("dense_1", {"kernel:0": (2, 3)})])
    assert not textgenrnn.is_textgenrnn(post)
    assert not textgenrnn.is_textgenrnn(tmp_path / "missing.h5")
    weights = textgenrnn_files(tmp_path)
    (tmp_path / "tiny_config.json").write_text("{not json")
    done = cli("import", weights, "--into", tmp_path / "runs")
    assert done.returncode == 2 and "tiny_config.json is not a textgenrnn config (JSONDecodeError)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
