import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY = dict(layers=1, units=16, embedding=8, seq_len=20, batch_size=8, epochs=2, dropout=0.0)


def make_random_run(path: Path, text: str, layers=2, units=24, embedding=8, seed=0) -> Path:
    """A run folder with random weights, written with NumPy only (no TensorFlow)."""
    from charmodel.run import folder as runfolder
    from charmodel.run.corpus import Vocab, split
    from charmodel.run.handle import RunConfig, write_config

    vocab = Vocab.from_text(text)
    rng = np.random.default_rng(seed)
    V = len(vocab)
    w = {"embedding": rng.normal(0, 0.5, (V, embedding))}
    n_in = embedding
    for l in range(layers):
        w[f"lstm{l}_kernel"] = rng.normal(0, 0.4, (n_in, 4 * units))
        w[f"lstm{l}_recurrent"] = rng.normal(0, 0.4, (units, 4 * units))
        w[f"lstm{l}_bias"] = rng.normal(0, 0.2, (4 * units,))
        n_in = units
    w["dense_kernel"] = rng.normal(0, 0.5, (units, V))
    w["dense_bias"] = rng.normal(0, 0.1, (V,))
    path.mkdir(parents=True)
    (path / "corpus.txt").write_text(text, encoding="utf-8")
    train, val = split(text)
    config = {
        "format": 1,
        "architecture": {"layers": layers, "units": units, "dropout": 0.0, "embedding": embedding, "vocab_size": V},
        "training": {"seq_len": 20, "batch_size": 4, "epochs": 1, "lr": 0.01, "lr_decay": 1.0, "patience": 0,
                     "seed": seed, "jit_compile": False, "keep_epochs": [1]},
        "corpus": {"path": "corpus.txt", "sha256": "", "collapse_spaces": True, "val_fraction": 0.1,
                   "chars": len(text), "train_chars": len(train), "val_chars": len(val)},
        "vocab": vocab.chars,
    }
    write_config(path, RunConfig.from_json(config, path / runfolder.CONFIG))  # the one writer of config.json
    runfolder.save_weights_npz(path / "best.npz", w)
    return path


@pytest.fixture(scope="session")
def alice_text() -> str:
    from charmodel.run.corpus import clean, read_text

    return clean(read_text(ROOT / "data" / "alice.txt"))


@pytest.fixture
def small_text(alice_text) -> str:
    return alice_text[:6000]


@pytest.fixture
def random_run(tmp_path, small_text) -> Path:
    return make_random_run(tmp_path / "random", small_text)


@pytest.fixture
def small_corpus(tmp_path, small_text) -> Path:
    p = tmp_path / "small.txt"
    p.write_text(small_text, encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A tiny real run trained for two epochs with Keras; copy it before changing it."""
    from charmodel.training.train import train

    root = tmp_path_factory.mktemp("trained")
    corpus = root / "small.txt"
    corpus.write_text((ROOT / "data" / "alice.txt").read_text(encoding="utf-8")[:8000], encoding="utf-8")
    train(root / "run", corpus, **TINY)
    return root / "run"


@pytest.fixture
def trained_copy(tmp_path, trained_run) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(trained_run, dst)
    return dst


POST_WINDOW = 20  # the tiny post-shaped model's window


def post_text() -> str:
    return (ROOT / "data" / "alice.txt").read_text(encoding="utf-8")[:6000].lower()


@pytest.fixture(scope="session")
def post_files(tmp_path_factory):
    """A model of the post's shape (scalar input, LSTM, Dropout, LSTM last step, Dropout, Dense
    softmax), trained briefly on windows, saved as .keras and legacy .h5."""
    import keras

    root = tmp_path_factory.mktemp("post")
    text = post_text()
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text])
    starts = np.arange(0, len(ids) - POST_WINDOW, 5)
    x = (np.stack([ids[s : s + POST_WINDOW] for s in starts]) / len(chars)).astype("float32")[..., None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(POST_WINDOW, 1)), keras.layers.LSTM(12, return_sequences=True),
                              keras.layers.Dropout(0.2), keras.layers.LSTM(12), keras.layers.Dropout(0.2),
                              keras.layers.Dense(len(chars), activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.fit(x, ids[starts + POST_WINDOW], epochs=1, batch_size=64, verbose=0)
    model.save(root / "post.keras")
    model.save(root / "post.h5")
    (root / "post.txt").write_text(text, encoding="utf-8")
    return root, model, chars


@pytest.fixture(scope="session", autouse=True)
def speeds_cache(tmp_path_factory):
    """Every test's speeds.json is this session's own, never the machine's."""
    path = tmp_path_factory.mktemp("speeds")
    old = os.environ.get("CHARMODEL_CACHE")
    os.environ["CHARMODEL_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CHARMODEL_CACHE", None)
    else:
        os.environ["CHARMODEL_CACHE"] = old


@pytest.fixture(scope="session")
def timed_speeds(speeds_cache):
    """The recipe's shapes and the default settings, timed here once by the app's own timing
    child, so pages that need a speed find one (and start no timing of their own)."""
    from charmodel.run.settings import DEFAULTS
    from charmodel.training import recipe
    from charmodel.training.jobs import SpeedJob

    job = SpeedJob([*recipe.shape_settings({}), DEFAULTS], vocab_size=80)
    assert job.wait(300) and job.status == "finished", job.error
    return recipe.known_speeds()
