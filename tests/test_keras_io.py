"""export --format keras: a Keras 3 file that Keras opens in safe mode, giving the engine's probabilities."""

import json

import numpy as np
import pytest

from charmodel.engine import Engine, softmax
from charmodel.run import folder as runfolder

from .test_cli import cli

pytestmark = pytest.mark.slow  # Keras round trips


def test_export_keras_opens_in_keras_and_matches_the_engine(random_run, small_text, tmp_path):
    import keras

    out = cli("export", "--run", random_run, "--format", "keras", "--out", tmp_path / "tiny.keras")
    assert out.returncode == 0, out.stderr
    chars = json.loads((tmp_path / "tiny.chars.json").read_text(encoding="utf-8"))
    engine = Engine.load(random_run, "best")
    assert "".join(chars) == engine.vocab.chars
    model = keras.saving.load_model(tmp_path / "tiny.keras")  # safe mode, no custom objects
    assert {type(l).__name__ for l in model.layers} <= {"InputLayer", "Embedding", "LSTM", "Dropout", "Dense", "Softmax"}
    ids = engine.vocab.encode(small_text[:300])[None, :]
    theirs = np.asarray(model.predict(ids, verbose=0))[0]
    logits, _, _ = engine.forward(ids)
    ours = softmax(logits[0].astype(np.float64))
    assert theirs.shape == ours.shape and np.abs(theirs - ours).max() < 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random", "tiny.chars.json", "tiny.keras"]  # no leftovers


def test_export_keras_bad_flags_are_one_line_and_write_nothing(random_run, tmp_path):
    for args, message in ((("--out", tmp_path / "model.zip"), "must end in .keras"),
                          (("--out", tmp_path / "missing" / "m.keras"), "does not exist"),
                          (("--out", tmp_path / "m.keras", "--with-checkpoints"), "belongs to the archive format"),
                          (("--out", tmp_path / "m.keras", "--checkpoint", "99"), "")):
        bad = cli("export", "--run", random_run, "--format", "keras", *args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random"]
    assert runfolder.available_checkpoints(random_run)  # the run itself untouched
