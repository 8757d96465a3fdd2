"""Where a page's data comes from: every computation a page shows, cached once per app process.

Everything heavy is cached with st.cache_resource (or a SharedLRU, where a computation draws its
own progress bar), so every session shares one object: engines (one per checkpoint file version)
and activations (keyed by run, checkpoint file version, text and what was recorded). Cached arrays
are float16 and read-only: a second session reuses them without a copy, and no caller can change
them for the others. Nothing here draws a widget, except progress bars and spinners.
"""

import ctypes
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import streamlit as st

from charmodel import CharModelError
from charmodel.analysis import atlas
from charmodel.engine import KINDS, Engine, inspect, layer_number, scoring
from charmodel.engine.ngram import NGram
from charmodel.run import folder as runfolder
from charmodel.run.corpus import paragraph_start
from charmodel.run.handle import Run, RunConfig
from charmodel.view.render import next_guesses
from pages.shared.mode import run_path


def _stamp(path: Path) -> float:
    """Changes when a checkpoint file is replaced, so caches pick up new epochs."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


@st.cache_resource(max_entries=16, show_spinner=False)
def _run(run_dir: str, stamp: float) -> Run:
    return Run.open(run_dir)


def open_run(run: str) -> Run:
    """The run, opened once per version of its config.json (an import or a resumed run rewrites it)
    and shared by every session: its typed config, and its split texts read once."""
    path = run_path(run)
    return _run(str(path), _stamp(path / runfolder.CONFIG))


def run_config(run: str) -> RunConfig:
    return open_run(run).config


@st.cache_resource(max_entries=6, show_spinner=False)
def _engine(run_dir: str, checkpoint: str, stamp: float) -> Engine:
    return Engine.load(run_dir, checkpoint)


def _key(run: str, checkpoint: str) -> tuple[str, str, float]:
    path = run_path(run)
    return str(path), checkpoint, _stamp(runfolder.checkpoint_path(path, checkpoint))


def load_engine(run: str, checkpoint: str) -> Engine:
    """The run's engine for this checkpoint, shared by every session."""
    return _engine(*_key(run, checkpoint))


def _frozen(activations: dict) -> dict:
    """float16 (half the memory) and read-only (shared by every session)."""
    out = {}
    for key, v in activations.items():
        v = v.astype(np.float16, copy=False)
        v.flags.writeable = False
        out[key] = v
    return out


@st.cache_resource(max_entries=16, show_spinner="Computing activations…")
def _activations(run_dir: str, checkpoint: str, stamp: float, text: str, kinds: tuple = KINDS, layers=None):
    """The recorded kinds of the given layers (default: all) for `text`, and the model's guesses."""
    ins = inspect(_engine(run_dir, checkpoint, stamp), text, record=kinds, layers=layers, dtype=np.float16)
    ins.activations = _frozen(ins.activations)
    return ins


@st.cache_resource(max_entries=32, show_spinner=False)
def _checkpoint_values(run_dir: str, checkpoint: str, stamp: float, text: str, layer: int, kind: str) -> np.ndarray:
    engine = Engine.load(run_dir, checkpoint)  # not kept: one per kept epoch would cost 13 MB each for Alice
    activations = inspect(engine, text, record=(kind,), layers=(layer,), dtype=np.float16).activations
    return _frozen(activations)[(layer, kind)]


def checkpoint_values(run: str, checkpoint: str, text: str, layer: int, kind: str) -> np.ndarray:
    """(T, units) of one layer and kind of a short text under another checkpoint (a kept epoch),
    cached without keeping that checkpoint's engine in memory."""
    return _checkpoint_values(*_key(run, checkpoint), text, layer, kind)


def layer_values(run: str, checkpoint: str, text: str, layer: int, kind: str, only_this: bool = False) -> np.ndarray:
    """(T, units) of one layer and kind, read-only. By default every kind of every layer is computed
    once for the text (switching cells and kinds stays fast); only_this computes just this one."""
    which = dict(kinds=(kind,), layers=(layer,)) if only_this else {}
    return _activations(*_key(run, checkpoint), text, **which).values(layer, kind)


@st.cache_data(max_entries=8, show_spinner=False)
def _guesses(run_dir: str, checkpoint: str, stamp: float, text: str) -> list[str]:
    ins = _activations(run_dir, checkpoint, stamp, text)
    chars = _engine(run_dir, checkpoint, stamp).vocab.chars
    return next_guesses([[chars[i] for i in row] for row in ins.top_ids], ins.top_probs)


def guesses(run: str, checkpoint: str, text: str) -> list[str]:
    """Hover text per character: the model's top 5 next-character guesses."""
    return _guesses(*_key(run, checkpoint), text)


@st.cache_data(max_entries=8, show_spinner=False)
def _split_text(run_dir: str, stamp: float) -> tuple[str, str]:
    return _run(run_dir, stamp).split()


def split_text(run: str) -> tuple[str, str]:
    """(training, validation) text of a run, by the run's own split rule."""
    path = run_path(run)
    return _split_text(str(path), _stamp(path / runfolder.CONFIG))


class SharedLRU:
    """Values shared by every session: at most `size` of them, the least recently used dropped first.

    Unlike st.cache_resource, the computation may draw its own progress bar. One computation per
    key at a time: a second session asking for the same key waits for the first one's result.
    """

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._busy: dict = {}

    def _hit(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return True, self._items[key]
            return False, None

    def known(self, key) -> bool:
        """Stored, or being computed."""
        with self._lock:
            return key in self._items or key in self._busy

    def get(self, key, compute):
        found, value = self._hit(key)
        if found:
            return value
        with self._lock:
            busy = self._busy.setdefault(key, threading.Lock())
        with busy:
            found, value = self._hit(key)
            if found:
                return value
            value = compute()
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._busy.pop(key, None)
        return value


@st.cache_resource
def _cell_store() -> SharedLRU:
    return SharedLRU(size=4)


def _cell_activations_key(run, checkpoint, text, kinds, layers) -> tuple:
    return (*_key(run, checkpoint), text, tuple(kinds), None if layers is None else tuple(layers))


def _compute_cell_activations(key: tuple, progress=None) -> dict:
    from charmodel.analysis.cells import batched_activations

    run_dir, checkpoint, stamp, text, kinds, layers = key
    activations = _frozen(batched_activations(_engine(run_dir, checkpoint, stamp), text, kinds=kinds, layers=layers,
                                       dtype=np.float16, progress=progress))
    return_free_memory()
    return activations


def return_free_memory() -> None:
    """Give the heap's free pages back to the system after a pass that made large temporaries
    (glibc only). Each thread allocates from its own malloc arena, which otherwise keeps them; the
    pass that Home starts in the background is such a thread, and so is every session's script
    thread, which the entry script trims after each run. `python benchmarks/app_load.py`
    measured the server after every page and tab at 499 MB without this call, 384 MB with it
    (after the background pass only, before the Atlas page and the attribution strips)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def cell_activations(run: str, checkpoint: str, text: str, kinds=("h", "c"), layers=None) -> dict:
    """h and c (or `kinds`) of every layer (or `layers`, from 0) over a long text, batched, float16;
    shared by every session, per (run, checkpoint file version, text), with a progress bar."""
    key = _cell_activations_key(run, checkpoint, text, kinds, layers)

    def compute():
        bar = st.progress(0.0)

        def progress(done: float):
            bar.progress(min(done, 1.0), text=f"Computing the activations of every cell over {len(text):,} "
                                              f"characters: {done:.0%}")

        activations = _compute_cell_activations(key, progress)
        bar.empty()
        return activations

    return _cell_store().get(key, compute)


def prefetch_cell_activations(run: str, checkpoint: str, text: str) -> None:
    """Start computing cell_activations(run, checkpoint, text) in a background thread, unless it is
    stored or under way. Home calls it for the validation text, so that Cells, which ranks over it,
    opens without the wait; a page that asks meanwhile waits for this computation, never repeats it."""
    key = _cell_activations_key(run, checkpoint, text, ("h", "c"), None)
    store = _cell_store()
    if not store.known(key):
        threading.Thread(target=store.get, args=(key, lambda: _compute_cell_activations(key)), daemon=True,
                         name=f"prefetch-{run}").start()


@st.cache_data(max_entries=16, show_spinner=False)
def _ranking(run_dir: str, checkpoint: str, stamp: float, text: str, feature: str | None, regex: str | None,
             _arrays: dict) -> list[dict]:
    from charmodel.analysis.cells import rank_cells, signal_for

    return rank_cells(_arrays, signal_for(text, feature, regex))


def ranking(run: str, checkpoint: str, text: str, feature: str | None, regex: str | None, activations: dict) -> list[dict]:
    """Every cell ranked against a hypothesis, best first; cached, so another session (or a rerun)
    does not rank again. `activations` must be `cell_activations(run, checkpoint, text)`."""
    return _ranking(*_key(run, checkpoint), text, feature, regex, _arrays=activations)


@st.cache_data(max_entries=8, show_spinner=False)
def _measured_headline(run_dir: str, checkpoint: str, stamp: float, text: str, _arrays: dict) -> dict:
    from charmodel.analysis.cells import headline

    return headline(_engine(run_dir, checkpoint, stamp), text, activations=_arrays)


WINDOWED_HEADLINE_CHARS = 2000  # a windowed run's headline is ranked over this much of its validation text


def headline(run: str, checkpoint: str) -> dict:
    """The run's headline cell for this checkpoint: the atlas's (atlas_headline) when the run has
    an atlas; else read from the run's highlights.json when the model card stored it; else
    measured once on the validation text (cells.headline; its first WINDOWED_HEADLINE_CHARS
    characters for a windowed run, whose every value costs a window)."""
    found = atlas_headline(run, checkpoint)
    if found is not None:
        return found
    stored = runfolder.read_highlights(run_path(run), checkpoint)
    if stored is not None:
        return stored
    text = split_text(run)[1]
    if load_engine(run, checkpoint).window:  # W steps per character: rank over the start of it
        text = text[:WINDOWED_HEADLINE_CHARS]
    return _measured_headline(*_key(run, checkpoint), text, _arrays=cell_activations(run, checkpoint, text))


def headline_text(run: str, checkpoint: str) -> str:
    """The text headline() ranks over, in words."""
    if runfolder.read_highlights(run_path(run), checkpoint) is not None or not load_engine(run, checkpoint).window:
        return "the validation text"
    return f"the first {WINDOWED_HEADLINE_CHARS:,} characters of the validation text"


@st.cache_data(max_entries=32, show_spinner=False)
def _generated(run_dir: str, checkpoint: str, stamp: float, prime: str, length: int, temperature: float, seed: int):
    from charmodel.engine.sampling import generate

    (text,), probs = generate(_engine(run_dir, checkpoint, stamp), prime, length, temperature, seed, return_probs=True)
    return text, probs[0]


def generated(run: str, checkpoint: str, prime: str, length: int, temperature: float, seed: int):
    """(new text, probability of each chosen character): cached, so a page that shows several
    samples, or changes only how they are coloured, samples each one once."""
    return _generated(*_key(run, checkpoint), prime, length, float(temperature), int(seed))


@st.cache_resource(max_entries=4, show_spinner="Counting the training text's 5-grams…")
def _ngram(run_dir: str, stamp: float) -> NGram:
    return NGram.fit(_split_text(run_dir, stamp)[0], 5)


def savings_over_counting(run: str, checkpoint: str, text: str, model_bits=None, context: str = "") -> scoring.Savings:
    """The bits the model saves over a 5-gram count of the run's training text at each character
    of `text` (see scoring.savings); the model's own costs come from the activation cache unless
    given (a generated text's, after its prime `context`)."""
    key = _key(run, checkpoint)
    if model_bits is None:
        model_bits = _activations(*key, text).surprisal_bits
    path = run_path(run)
    return scoring.savings(_engine(*key), _ngram(str(path), _stamp(path / runfolder.CONFIG)), text, model_bits, context)


@st.cache_resource(max_entries=8, show_spinner=False)
def _atlas(run_dir: str, checkpoint: str, stamp: float, file_stamp: float) -> atlas.Atlas:
    return atlas.load(run_dir, checkpoint)  # a CharModelError is raised again each time, never cached


def load_atlas(run: str, checkpoint: str) -> atlas.Atlas:
    """The run's atlas for this checkpoint, shared by every session; CharModelError if it has none
    (or a damaged or stale one)."""
    return _atlas(*_key(run, checkpoint), _stamp(atlas.atlas_path(run_path(run), checkpoint)))


@st.cache_data(max_entries=16, show_spinner=False)
def _atlas_headline(run_dir: str, checkpoint: str, stamp: float, file_stamp: float, chosen: tuple | None):
    return _atlas(run_dir, checkpoint, stamp, file_stamp).headline(chosen)


def atlas_headline(run: str, checkpoint: str) -> dict | None:
    """The cell the run's pages open on, read from its atlas (Atlas.headline, a person's pick in
    highlights.json first); None when the run has no usable atlas or no cell qualifies."""
    try:
        load_atlas(run, checkpoint)
    except CharModelError:
        return None
    stored = runfolder.read_highlights(run_path(run), checkpoint)
    chosen = None if stored is None else (stored["layer"], stored["kind"], stored["cell"])
    return _atlas_headline(*_key(run, checkpoint), _stamp(atlas.atlas_path(run_path(run), checkpoint)), chosen)


def headline_passage(run: str, checkpoint: str, best: dict, length: int) -> str:
    """`length` characters of the validation text from the start of a paragraph where the headline
    cell is at its most telling: one of the atlas's top contexts (bottom ones, for a cell that is
    low where its explanation holds) that lies in the validation text; else its first paragraph."""
    book = load_atlas(run, checkpoint)
    val = split_text(run)[1]
    train_chars = book.meta["train_chars"]
    side = "top" if best["direction"] > 0 else "bottom"
    places = [p - train_chars for p, _ in book.dossier(best["layer"], best["kind"], best["cell"])[side]
              if p >= train_chars]
    at = paragraph_start(val, places[0]) if places else paragraph_start(val, val.find("\n\n") + 2)
    return val[at : at + length]


@st.cache_data(max_entries=8, show_spinner=False)
def _atlas_table(run_dir: str, checkpoint: str, stamp: float, file_stamp: float):
    import pandas as pd

    rows = _atlas(run_dir, checkpoint, stamp, file_stamp).cells()
    frame = pd.DataFrame([{**r, "layer": layer_number(r["layer"])} for r in rows])
    return frame.astype({"phrase_r": float, "context_r": float, "beyond_r": float, "auc": float, "ablation_bits": float,
                         "recovered": float})  # None as NaN: a blank cell


def atlas_table(run: str, checkpoint: str):
    """Every cell's best explanation as a frame (layers counted from 1)."""
    return _atlas_table(*_key(run, checkpoint), _stamp(atlas.atlas_path(run_path(run), checkpoint)))


@st.cache_data(max_entries=64, show_spinner="Colouring the contexts…")
def _context_values(run_dir: str, checkpoint: str, stamp: float, positions: tuple, layer: int, kind: str, cell: int):
    train, val = _split_text(run_dir, _stamp(Path(run_dir) / runfolder.CONFIG))
    return atlas.context_values(_engine(run_dir, checkpoint, stamp), train + val, list(positions), layer, kind, cell)


def context_values(run: str, checkpoint: str, positions: list[int], layer: int, kind: str, cell: int) -> list:
    """One cell's values over the ±atlas.CONTEXT characters around each corpus position, in one batch."""
    return _context_values(*_key(run, checkpoint), tuple(positions), layer, kind, cell)

ABLATION_CHARS = 2000  # validation characters an ablation runs over (the CLI's default too)


@st.cache_data(max_entries=64, show_spinner="Running the model without this cell…")
def _ablation(run_dir: str, checkpoint: str, stamp: float, layer: int, kind: str, cell: int) -> dict:
    from charmodel.analysis.ablate import ablate

    val = _split_text(run_dir, _stamp(Path(run_dir) / runfolder.CONFIG))[1]
    return ablate(_engine(run_dir, checkpoint, stamp), val[:ABLATION_CHARS], layer, kind, cell)


def ablation(run: str, checkpoint: str, layer: int, kind: str, cell: int) -> dict:
    """bpc with one cell (layer from 0) held at its mean over ABLATION_CHARS validation characters."""
    return _ablation(*_key(run, checkpoint), layer, kind, cell)


@st.cache_resource
def _sweep_store() -> SharedLRU:
    return SharedLRU(size=8)


def ablation_sweep(run: str, checkpoint: str, layer: int, kind: str) -> list[dict]:
    """Every cell of (layer from 0, kind) ablated alone (charmodel.analysis.ablate.sweep), shared by every
    session, with a progress bar while it runs."""
    from charmodel.analysis.ablate import sweep

    key = (*_key(run, checkpoint), layer, kind)

    def compute():
        bar = st.progress(0.0)
        val = split_text(run)[1][:ABLATION_CHARS]
        rows = sweep(load_engine(run, checkpoint), val, layer, kind, progress=lambda f: bar.progress(
            min(f, 1.0), text=f"Ablating each cell over {len(val):,} characters: {f:.0%}"))
        bar.empty()
        return rows

    return _sweep_store().get(key, compute)


def swept(run: str, checkpoint: str, layer: int, kind: str) -> bool:
    return _sweep_store().known((*_key(run, checkpoint), layer, kind))


@st.cache_data(max_entries=32, show_spinner="Attributing…")
def _attribution(run_dir: str, checkpoint: str, stamp: float, text: str, position: int, target: tuple, method: str,
                 window: int) -> dict:
    from charmodel.analysis.saliency import attribute

    corpus = _split_text(run_dir, _stamp(Path(run_dir) / runfolder.CONFIG))[0]
    return attribute(_engine(run_dir, checkpoint, stamp), text, position, dict(target), method, window, corpus=corpus)


def attribution(run: str, checkpoint: str, text: str, position: int, target: dict, method: str, window: int) -> dict:
    """charmodel.analysis.saliency.attribute, cached per (run, checkpoint file version, text, position, target, method)."""
    return _attribution(*_key(run, checkpoint), text, position, tuple(sorted(target.items())), method, window)


@st.cache_data(max_entries=32, show_spinner=False)
def _attention(run_dir: str, checkpoint: str, stamp: float, text: str, position: int) -> dict:
    from charmodel.engine.inspection import attention_weights

    return attention_weights(_engine(run_dir, checkpoint, stamp), text, position)


def attention(run: str, checkpoint: str, text: str, position: int) -> dict:
    """engine.inspection.attention_weights, cached per (run, checkpoint file version, text, position)."""
    return _attention(*_key(run, checkpoint), text, position)


@st.cache_data(max_entries=8, show_spinner="Comparing the two checkpoints' layers…")
def _similarity(run_dir: str, first: str, stamp_a: float, second: str, stamp_b: float) -> list[dict]:
    from charmodel.analysis.compare import CKA_CHARS, layer_similarity

    val = _split_text(run_dir, _stamp(Path(run_dir) / runfolder.CONFIG))[1][:CKA_CHARS]
    return layer_similarity(_engine(run_dir, first, stamp_a), Engine.load(run_dir, second), val)


def similarity(run: str, first: str, second: str) -> list[dict]:
    """Linear CKA of each layer and kind between two checkpoints (charmodel.analysis.compare)."""
    path = run_path(run)
    return _similarity(str(path), first, _stamp(runfolder.checkpoint_path(path, first)), second,
                       _stamp(runfolder.checkpoint_path(path, second)))


@st.cache_resource
def _probe_store() -> SharedLRU:
    return SharedLRU(size=8)

APP_STRENGTHS = (0.0001, 0.0005, 0.002, 0.01)  # fewer fits than the CLI's sweep

APP_FIT_CHARS = 20_000  # a third of the CLI's: the fits' memory grows with it, and the server is shared


def probe_curve(run: str, checkpoint: str, feature_name: str) -> dict:
    """charmodel.probe.probe for a built-in hypothesis, shared by every session, with a progress bar."""
    from charmodel.analysis.cells import FEATURES
    from charmodel.analysis.probe import probe

    key = (*_key(run, checkpoint), feature_name)

    def compute():
        bar = st.progress(0.0, text="Computing the activations…")
        train, val = split_text(run)
        result = probe(load_engine(run, checkpoint), train, val, FEATURES[feature_name][1], strengths=APP_STRENGTHS,
                       progress=lambda f: bar.progress(f, text=f"Fitting the probes: {f:.0%}"), fit_chars=APP_FIT_CHARS)
        bar.empty()
        return result

    return _probe_store().get(key, compute)


def probed(run: str, checkpoint: str, feature_name: str) -> bool:
    return _probe_store().known((*_key(run, checkpoint), feature_name))
