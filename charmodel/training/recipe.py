"""A training recipe for a time budget: the size, batch and learning rate that learn the most in
the minutes a person gives, on this machine, for this text.

Speeds are measured, never assumed: a few timed batches of each shape (`time_settings`, in the
process that will train or in a child set up like it), kept per machine in speeds.json. `choose`
turns speeds, the budget and the text's length into a recipe by the rule docs/training.md
measured: the largest shape that trains on at least MIN_CHARS_PER_PARAM characters per parameter
within the budget and has at most PARAMS_PER_CHAR parameters per training character; else the
shape that comes closest (the smallest).
"""

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from charmodel.errors import CharModelError
from charmodel.run.settings import DEFAULTS

LOOP = "fused"  # which LSTM loop the speeds were timed with (fused.py): speeds of an older loop are not reused
TIMED_BATCHES = 3  # timed after one untimed batch (which builds the graph)
EFFICIENCY = 1.0  # a run's characters per budget second over the timed speed: 0.98-1.07 in 4 ten-minute runs (docs/training.md)
MIN_CHARS_PER_PARAM = 3  # characters trained on per parameter: 0.6 lost, 8.5 and more won (docs/training.md)
PARAMS_PER_CHAR = 8  # 2 x 256 at 6.8 per character still won; keeps 2 x 512 from texts under ~410,000 characters


@dataclass(frozen=True)
class Shape:
    layers: int
    units: int
    batch_size: int
    lr: float  # Adam's starting rate under the budget's linear decay (docs/training.md: how it was chosen)
    dropout: float
    clip_norm: float = 1.0  # gradients scaled to at most this global norm: what lets the rate be this high
    seq_len: int = 50  # half the default chunk: twice the updates for the same characters, which won (issue 37)

    @property
    def name(self) -> str:
        return f"{self.layers} × {self.units}"

    def settings(self) -> dict:
        return {"layers": self.layers, "units": self.units, "batch_size": self.batch_size, "lr": self.lr,
                "dropout": self.dropout, "clip_norm": self.clip_norm, "seq_len": self.seq_len}


SHAPES = (  # smallest first; the rates of issue 37's measurements (docs/training.md), each with clipping
    Shape(2, 128, 64, 0.04, 0.0),
    Shape(2, 256, 64, 0.025, 0.1),
    Shape(2, 512, 64, 0.0125, 0.2),
)


def parameters(layers: int, units: int, embedding: int, vocab_size: int) -> int:
    """Trainable parameters of model.build's model."""
    n, inputs = vocab_size * embedding, embedding
    for _ in range(layers):
        n += 4 * units * (inputs + units + 1)
        inputs = units
    return n + units * vocab_size + vocab_size


# ---------------------------------------------------------------- speeds on this machine

def training_threads() -> int:
    """TensorFlow's threads when training: every core, from the command line and in the app's
    training child alike (the child runs at a lower priority, so the app still answers first)."""
    from charmodel.engine import cores

    return cores()


def speed_key(settings: dict, threads: int) -> str:
    """What sets training speed: size, embedding, batch, chunk length, recurrent dropout, XLA, threads, the loop."""
    s = {**DEFAULTS, **settings}
    return (f"{s['layers']}x{s['units']} e{s['embedding']} b{s['batch_size']} s{s['seq_len']}"
            f"{' rd' if s['recurrent_dropout'] else ''}{' jit' if s['jit_compile'] else ''} t{threads} {LOOP}")


def cache_path() -> Path:
    """speeds.json: $CHARMODEL_CACHE, else ~/.cache/charmodel (a fact about this machine, not a run)."""
    root = os.environ.get("CHARMODEL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "charmodel"
    return Path(root) / "speeds.json"


def known_speeds() -> dict[str, float]:
    """chars/s by speed_key, as timed on this machine (a damaged file counts as empty)."""
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        return {k: float(v) for k, v in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def record_speeds(speeds: dict[str, float]) -> None:
    from charmodel.run.folder import atomic_write_json

    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**known_speeds(), **speeds})


def time_settings(settings: dict, vocab_size: int = 100, batches: int = TIMED_BATCHES) -> float:
    """chars/s of these training settings here: one untimed batch, then the median of `batches`
    timed ones, on random characters (speed does not depend on the text). Imports TensorFlow."""
    import keras
    import numpy as np

    from charmodel.training import model as kmodel
    from charmodel.training.distribute import KerasSteps

    s = {**DEFAULTS, **settings}
    keras.utils.set_random_seed(0)
    model = kmodel.build(vocab_size, s["layers"], s["units"], s["dropout"], s["embedding"],
                         recurrent_dropout=s["recurrent_dropout"])
    model.compile(optimizer=keras.optimizers.Adam(s["lr"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=s["jit_compile"])
    steps = KerasSteps(model)
    rng = np.random.default_rng(0)
    x, y = (rng.integers(vocab_size, size=(s["batch_size"], s["seq_len"]), dtype=np.int32) for _ in range(2))
    steps.train(x, y)
    seconds = []
    for _ in range(batches):
        t0 = time.perf_counter()
        steps.train(x, y)
        seconds.append(time.perf_counter() - t0)
    keras.backend.clear_session()
    return x.size / float(np.median(seconds))


def time_missing(settings_list: list[dict], threads: int, vocab_size: int = 100, say=None) -> dict[str, float]:
    """Time every settings not yet in speeds.json (recording each as it is timed); every speed asked for."""
    wanted = {speed_key(s, threads): s for s in settings_list}
    speeds = known_speeds()
    for key, s in wanted.items():
        if key not in speeds:
            if say:
                say(key)
            speeds[key] = time_settings(s, vocab_size)
            record_speeds({key: speeds[key]})
    return {k: speeds[k] for k in wanted}


# ---------------------------------------------------------------- the rule

@dataclass(frozen=True)
class Recipe:
    shape: Shape
    passes: float  # over the training text, within the budget
    settings: dict  # the training settings it sets
    sentence: str  # what was chosen and why, for a person


def choose(minutes: float, train_chars: int, speeds: dict[Shape, float], vocab_size: int = 100,
           embedding: int = DEFAULTS["embedding"]) -> Recipe:
    """The recipe for `minutes` of training on `train_chars` characters, given each shape's timed chars/s."""
    if not speeds:
        raise CharModelError("no training speeds measured on this machine yet; time a few batches first.")
    size = lambda shape: parameters(shape.layers, shape.units, embedding, vocab_size)
    seen = {shape: minutes * 60 * cps * EFFICIENCY for shape, cps in speeds.items()}  # characters trained on
    passes = {shape: seen[shape] / train_chars for shape in speeds}
    too_big = lambda shape: size(shape) > PARAMS_PER_CHAR * train_chars
    fits = [shape for shape in speeds if seen[shape] >= MIN_CHARS_PER_PARAM * size(shape) and not too_big(shape)]
    chosen = max(fits, key=size) if fits else max(speeds, key=lambda shape: seen[shape] / size(shape))
    count = lambda p: f"{p:.1f}" if p < 10 else f"{p:.0f}"
    why = (f"{chosen.name}: about {count(passes[chosen])} passes over your text in {minutes:g} "
           f"minute{'' if minutes == 1 else 's'}")
    bigger = [shape for shape in speeds if size(shape) > size(chosen)]
    if not fits:
        why += (f", too little for any size to train on {MIN_CHARS_PER_PARAM:g} characters per parameter, "
                "so the one that comes closest")
    elif bigger:
        nxt = min(bigger, key=size)
        why += f"; {nxt.name} would manage {count(passes[nxt])}"
        if too_big(nxt):
            why += f", but has more than {PARAMS_PER_CHAR:g} parameters per character of your text"
        else:
            why += f", too few for its {size(nxt) / 1e6:.1f} million parameters"
    epochs = max(DEFAULTS["epochs"], math.ceil(2 * passes[chosen]))  # a cap the budget, not the epochs, reaches
    return Recipe(chosen, passes[chosen], {**chosen.settings(), "epochs": epochs, "minutes": float(minutes)},
                  why + ".")


def for_text(text_path, settings: dict, threads: int, max_bytes: int | None = None, say=None) -> tuple[dict, str]:
    """(settings, sentence): the recipe for settings["minutes"] on this text, under the settings a
    person gave (which win over the recipe's). Times the shapes this machine has not timed yet."""
    from charmodel.run.corpus import MAX_BYTES, scan

    if all(k in settings for k in SHAPES[0].settings()):
        return settings, ""  # every choice the recipe makes was given
    s = {**DEFAULTS, **settings}
    found = scan(text_path, collapse_spaces=s["collapse_spaces"], max_bytes=max_bytes or MAX_BYTES)
    train_chars = found.split_at(s["val_fraction"])
    shapes = dict(zip(SHAPES, shape_settings(settings)))
    timed = time_missing(list(shapes.values()), threads, len(found.vocab), say)
    speeds = {shape: timed[speed_key(t, threads)] for shape, t in shapes.items()}
    recipe = choose(s["minutes"], train_chars, speeds, len(found.vocab), s["embedding"])
    return {**recipe.settings, **settings}, recipe.sentence


def shape_settings(settings: dict) -> list[dict]:
    """The settings of every shape, with what a person set that the recipe leaves alone (embedding,
    recurrent dropout, XLA): what `time_missing` must time for `from_speeds`."""
    s = {**DEFAULTS, **settings}
    fixed = {k: s[k] for k in ("embedding", "recurrent_dropout", "jit_compile")}
    return [{**shape.settings(), **fixed} for shape in SHAPES]


def from_speeds(minutes: float, chars: int, vocab_size: int, settings: dict, threads: int) -> Recipe | None:
    """The recipe from the speeds already timed on this machine (speeds.json); None if a shape has
    not been timed yet. chars: the whole text's characters (validation is taken from it)."""
    known = known_speeds()
    keys = [speed_key(s, threads) for s in shape_settings(settings)]
    if not all(k in known for k in keys):
        return None
    s = {**DEFAULTS, **settings}
    return choose(minutes, int(chars * (1 - s["val_fraction"])), dict(zip(SHAPES, (known[k] for k in keys))),
                  vocab_size, s["embedding"])
