"""Bits per character of a run, beside what standard compressors pay for the same text.

A compressor's conditional cost for text `val` after `train` is
    (|C(train + val)| - |C(train)|) * 8 / |val|   bits per character,
which is what it pays for the new text once it has seen the training text, the same situation the
model is in. A character n-gram model (engine.ngram, interpolated Witten-Bell) counted on the
training text and read after its tail is the other baseline: what a model that only counts
short contexts pays.
"""

import bz2
import gzip
import json
import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charmodel.engine.inspection import bits_per_char, inspect
from charmodel.engine.lstm import Engine, check_window
from charmodel.engine.ngram import NGram
from charmodel.errors import CharModelError
from charmodel.run import folder as runfolder
from charmodel.run.corpus import clean, read_text
from charmodel.run.handle import Run

MIN_BASELINE_CHARS = 2000  # below this, a compressor's header and block overhead dwarf the text
NGRAM_ORDERS = (3, 5)  # the n-gram baselines evaluate reports, named "3-gram" and "5-gram"
BEST_OF = ("bz2", "5-gram")  # the baselines best_baseline chooses between

COMPRESSORS = {
    "gzip": lambda b: gzip.compress(b, compresslevel=9, mtime=0),
    "bz2": lambda b: bz2.compress(b, compresslevel=9),
    "lzma": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
}


def compressor_bpc(train: str, val: str, names=tuple(COMPRESSORS)) -> dict[str, float]:
    """Conditional bits per character of each named compressor (gzip, bz2, lzma) for `val` after `train`."""
    a, ab = train.encode("utf-8"), (train + val).encode("utf-8")
    return {name: (len(COMPRESSORS[name](ab)) - len(COMPRESSORS[name](a))) * 8 / len(val) for name in names}


def ngram_bpc(train: str, val: str, orders=NGRAM_ORDERS) -> dict[str, float]:
    """Bits per character of an n-gram model of each order, counted on `train`, for `val` after it."""
    return {f"{n}-gram": NGram.fit(train, n).bpc(val, context=train) for n in orders}


def best_baseline(baselines: dict[str, float]) -> tuple[str, float] | None:
    """The lower of bz2 and the 5-gram, as (name, bpc); None when neither was measured."""
    found = [(name, baselines[name]) for name in BEST_OF if name in baselines]
    return min(found, key=lambda pair: pair[1]) if found else None


@dataclass(frozen=True)
class Savings:
    """Where the model beats counting: the bits each character of a text costs under the model and
    under an n-gram model counted on the training text, both reading the text from its start."""

    model_bits: np.ndarray  # (T,) -log2 p(text[t] | text[:t]) under the model; NaN where it made no guess
    ngram_bits: np.ndarray  # (T,) the same under the n-gram model; NaN where the model's is
    order: int  # the n-gram's order: it reads the last order - 1 characters

    @property
    def saved(self) -> np.ndarray:
        """(T,) bits the model saves at each character: positive where it pays less than the count."""
        return self.ngram_bits - self.model_bits

    @property
    def scored(self) -> int:
        return int(np.sum(~np.isnan(self.saved)))

    @property
    def total(self) -> float:
        """Bits saved over the whole text (negative: the count did better)."""
        return float(np.nansum(self.saved))

    def after(self, start: int) -> "Savings":
        """The same from character `start` on (a prime left out)."""
        return Savings(self.model_bits[start:], self.ngram_bits[start:], self.order)

    def sentence(self) -> str:
        if not self.scored:
            return "No character here has a prediction before it to score."
        model, counted = float(np.nansum(self.model_bits)), float(np.nansum(self.ngram_bits))
        verb = "saves" if self.total >= 0 else "loses"
        return (f"Over these {self.scored:,} characters the model pays {model:,.0f} bits and a {self.order}-gram count "
                f"of the training text {counted:,.0f}: the model {verb} {abs(self.total):,.0f} bits "
                f"({abs(self.total) / self.scored:.2f} per character). Red: where the model pays less than the "
                "count, which is where context beyond the last few characters pays; blue: where it pays more.")


def savings(engine: Engine, ngram: NGram, text: str, model_bits: np.ndarray | None = None,
            context: str = "") -> Savings:
    """Savings over `ngram` at each character of `text`. model_bits: the model's own costs when the
    caller has them (a generated text's, after its prime `context`); else the model reads `text`
    from a zero state, and the n-gram reads it from its start too."""
    if model_bits is None:
        model_bits = inspect(engine, text, record=(), top_k=1).surprisal_bits  # NaN at t = 0
    counted = ngram.bits(text, context)
    counted = np.where(np.isnan(model_bits), np.nan, counted)
    return Savings(np.asarray(model_bits, float), counted, ngram.order)


BASELINES = "baselines.json"  # a run folder's baselines on its own split, written when training starts


def write_split_baselines(run) -> dict[str, float]:
    """bz2's and the 5-gram's bits per character (BEST_OF) on the run's own validation split after
    its training split, written to the run folder, so the Train page and the model card draw the
    line to beat without computing it (about 2 s for 450 KB, when training starts)."""
    train_text, val_text = Run.open(run).split()
    found = {}
    if len(val_text) >= MIN_BASELINE_CHARS:
        found = compressor_bpc(train_text, val_text, ("bz2",)) | ngram_bpc(train_text, val_text, orders=(5,))
    sha = runfolder.read_config(run)["corpus"]["sha256"]
    runfolder.atomic_write_json(Path(run) / BASELINES, {"sha256": sha, "bpc": found})
    return found


def split_baselines(run) -> dict[str, float]:
    """What `write_split_baselines` wrote for this run's corpus; {} when it has not (an older or
    imported run) or the file is damaged."""
    try:
        data = json.loads((Path(run) / BASELINES).read_text(encoding="utf-8"))
        if data["sha256"] == runfolder.read_config(run)["corpus"]["sha256"]:
            return {str(k): float(v) for k, v in data["bpc"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, CharModelError):
        pass
    return {}


def evaluate(run, text_path=None, checkpoint: str | None = None, progress=None, drop_unknown: bool = False,
             window=None) -> dict:
    """Bits per character on the run's validation split (or a given file), plus the baselines.

    The run's own way (stateful, or windowed for a run that records a window), or windows of
    `window` characters when given (see engine.bits_per_char). A windowed run is also scored
    statefully ("stateful_bpc") so a person sees which way the model holds up.
    Baselines: gzip, bz2, lzma, 3-gram and 5-gram. For a given file they are conditioned on the
    run's training text too.
    progress: optional callable(characters done, characters in all), called as the pass advances.
    """
    config = runfolder.read_config(run)
    checkpoint = checkpoint or runfolder.default_checkpoint(run)
    engine = Engine.load(run, checkpoint)
    window = check_window(window) or engine.window
    train_text, val_text = Run.open(run).split()
    if text_path is not None:
        val_text = clean(read_text(text_path), collapse_spaces=config["corpus"]["collapse_spaces"])
        source = str(text_path)
    else:
        source = "validation split"
    if drop_unknown:
        val_text = engine.vocab.drop_unknown(val_text)
    engine.vocab.encode(val_text, f"the text to evaluate ({source})")  # names unknown characters
    both = window is not None and (config.get("imported") or config.get("window"))  # which way does it hold up?
    total = len(val_text) * (2 if both else 1)
    bpc = bits_per_char(engine.with_window(window), val_text, progress=progress and (lambda d: progress(d, total)))
    stateful = None
    if both:
        stateful = bits_per_char(engine.stateful(), val_text,
                                 progress=progress and (lambda d: progress(len(val_text) + d, total)))
    return {
        "bpc": bpc,
        "window": window,
        "padded": bool(engine.pads),  # the first windows are padded (textgenrnn's), not left out
        "stateful_bpc": stateful,
        "chars": len(val_text),
        "source": source,
        "run": str(run),
        "checkpoint": checkpoint,
        # a compressor's cost on a few characters is mostly its own overhead, not the text's
        "baselines": (compressor_bpc(train_text, val_text) | ngram_bpc(train_text, val_text)
                      if len(val_text) >= MIN_BASELINE_CHARS else {}),
    }
