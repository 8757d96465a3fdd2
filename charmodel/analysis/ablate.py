"""Ablation: what the model loses without a cell.

A cell is held at one value (its mean over the text, by default: zero can be far outside a `c`
cell's range) at every step of a stateful pass, and the model's bits per character compared
with the unablated pass over the same text. Where the loss goes shows in the next characters
whose log-probability drops (or rises) most, averaged over the positions where each one is the
character that actually comes next.

A layer-wide sweep ablates every cell of a layer, one per batch row (engine.forward's clamp), the
layers below computed once for all rows (its `inputs`). No TensorFlow.
"""

import contextlib

import numpy as np

from charmodel.engine import LN2, Engine, log_softmax
from charmodel.errors import CharModelError

CHUNK = 500  # steps per forward call; the carry continues from one to the next
GROUP = 128  # ablations per batch in a sweep
MIN_TARGET = 5  # a next character is reported only where it comes next this often
REPORT = 5  # next characters listed as drops and as gains


def _check(engine: Engine, layer: int, kind: str, cells) -> None:
    if kind not in ("h", "c"):
        raise CharModelError(f"kind {kind!r} cannot be ablated; choose h or c.")
    if not 0 <= layer < engine.layers:
        raise CharModelError(f"layer {layer + 1} does not exist; this model has layers 1–{engine.layers}.")
    bad = [c for c in np.atleast_1d(cells) if not 0 <= int(c) < engine.units]
    if bad:
        raise CharModelError(f"cell {bad[0]} does not exist; this model has cells 0–{engine.units - 1}.")


def _ids(engine: Engine, text: str) -> np.ndarray:
    ids = engine.vocab.encode(text, "the text")
    if len(ids) < 2:
        raise CharModelError("the text needs at least 2 characters: one to read and one to predict.")
    return ids


def layer_pass(engine: Engine, ids: np.ndarray, layer: int, kind: str):
    """(means (units,), below): the layer's kind averaged over the text, and the output of the
    layer under it, (T, 1, units), or None for the first layer (and for a windowed engine); one
    unablated pass."""
    shared = layer > 0 and not engine.window  # a windowed engine's windows each run every layer themselves
    record = [kind] + (["h"] if shared else [])
    layers = [layer] + ([layer - 1] if shared else [])
    _, rec, _ = engine.forward(ids[None], record=tuple(dict.fromkeys(record)), layers=layers)
    means = rec[(layer, kind)][0].mean(axis=0)
    below = rec[(layer - 1, "h")][0][:, None, :] if shared else None
    return means, below


def logprobs(engine: Engine, ids: np.ndarray, clamp=None, rows: int = 1, below=None, first: int = 0,
             progress=None) -> np.ndarray:
    """(rows, T - 1): the log-probability (nats) of each next character ids[t + 1], stateful over
    ids, with `clamp` (engine.forward's) at every step, or a callable (a, b) giving the clamp of
    steps a..b (a per-step replacement). below: the output of layer first - 1 over the whole text,
    (T, 1, units), so the pass starts at layer `first`."""
    T = len(ids)
    carry = engine.zero_carry(rows)
    out = np.empty((rows, T - 1))
    for a in range(0, T - 1, CHUNK):
        b = min(a + CHUNK, T - 1)
        piece = np.broadcast_to(ids[a:b], (rows, b - a))
        inputs = None if below is None else (first, below[a:b])
        held = clamp(a, b) if callable(clamp) else clamp
        logits, _, carry = engine.forward(piece, carry, record=(), clamp=held, inputs=inputs)
        lp = log_softmax(logits)  # (rows, steps, V)
        out[:, a:b] = np.take_along_axis(lp, np.broadcast_to(ids[a + 1 : b + 1], (rows, b - a))[..., None], 2)[..., 0]
        if progress is not None:
            progress(b / (T - 1))
    return out


def value_of(value, means: np.ndarray, cells) -> np.ndarray:
    """The values cells are held at: 'mean' (each cell's mean), 'zero', or a number."""
    cells = np.atleast_1d(cells)
    if value == "mean":
        return means[cells].astype(np.float32)
    if value == "zero":
        return np.zeros(len(cells), np.float32)
    try:
        return np.full(len(cells), float(value), np.float32)
    except (TypeError, ValueError):
        raise CharModelError(f"--value must be mean, zero or a number, not {value!r}.") from None


def ablate(engine: Engine, text: str, layer: int, kind: str, cells, value="mean") -> dict:
    """Hold `cells` (one or several) of (layer from 0, kind) at `value` over `text`, all at once.

    Returns bpc (unablated), bpc_ablated, delta, values (what each cell was held at), and drops
    and gains: the REPORT next characters whose average log-probability (nats, where each comes
    next, at least MIN_TARGET times) changed most: [{char, change, count}]."""
    cells = [int(c) for c in np.atleast_1d(cells)]
    _check(engine, layer, kind, cells)
    ids = _ids(engine, text)
    means, _ = layer_pass(engine, ids, layer, kind)
    values = value_of(value, means, cells)
    base = logprobs(engine, ids)[0]
    held = logprobs(engine, ids, clamp=(layer, kind, [cells], [values]))[0]
    targets = ids[1:]
    counts = np.bincount(targets, minlength=len(engine.vocab))
    change = np.bincount(targets, weights=held - base, minlength=len(engine.vocab)) / np.maximum(counts, 1)
    order = [c for c in np.argsort(change, kind="stable") if counts[c] >= MIN_TARGET]
    row = lambda c: {"char": engine.vocab.chars[c], "change": round(float(change[c]), 4), "count": int(counts[c])}
    bpc, bpc_held = -base.mean() / LN2, -held.mean() / LN2
    return {"bpc": round(float(bpc), 5), "bpc_ablated": round(float(bpc_held), 5),
            "delta": round(float(bpc_held - bpc), 5), "values": [round(float(v), 4) for v in values],
            "drops": [row(c) for c in order[:REPORT] if change[c] < 0],
            "gains": [row(c) for c in order[::-1][:REPORT] if change[c] > 0]}


def sweep(engine: Engine, text: str, layer: int, kind: str, value="mean", progress=None,
          blas_threads: int = 1) -> list[dict]:
    """Every cell of (layer from 0, kind) ablated alone, GROUP cells per batch: [{cell, bpc_ablated,
    delta}], the largest loss first. The layers below run once, shared by every row.

    blas_threads: the batches are large matrix products, which more BLAS threads do speed up
    (benchmarks/ablation.py: 78.7 s against 52.1 s for layer 1 of Alice on 2 cores). The engine
    otherwise keeps the process at one (see engine.pin_blas); a command line that owns the process
    may raise it for the sweep, an app server shared by sessions should not."""
    _check(engine, layer, kind, [])
    ids = _ids(engine, text)
    with blas(blas_threads):
        means, below = layer_pass(engine, ids, layer, kind)
        bpc = -logprobs(engine, ids)[0].mean() / LN2
        cells = np.arange(engine.units)
        held = rows_bpc(engine, ids, layer, kind, cells, lambda c, a, b: value_of(value, means, c)[:, None], below,
                        progress)
    out = [{"cell": int(c), "bpc_ablated": round(float(h), 5), "delta": round(float(h - bpc), 5)}
           for c, h in zip(cells, held)]
    out.sort(key=lambda d: -d["delta"])
    return out


def blas(threads: int):
    """A context in which BLAS uses `threads` threads (nothing changes for 1, the engine's default)."""
    if threads <= 1:
        return contextlib.nullcontext()
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().limit(limits=threads, user_api="blas")


def rows_bpc(engine: Engine, ids: np.ndarray, layer: int, kind: str, cells: np.ndarray, values, below=None,
             progress=None) -> np.ndarray:
    """(len(cells),) bits per character of a stateful pass over ids with one cell of (layer from 0,
    kind) held per row, GROUP rows per batch: values(cells, a, b) gives the held values of steps
    a..b, (rows, 1) for a constant or (rows, b - a, 1) per step. below: layer_pass's, shared by every row."""
    out = np.empty(len(cells))
    first = layer if below is not None else 0
    for g in range(0, len(cells), GROUP):
        group = np.asarray(cells[g : g + GROUP])
        done = (lambda f, g=g, n=len(group): progress((g + f * n) / len(cells))) if progress else None
        clamp = lambda a, b, group=group: (layer, kind, group[:, None], values(group, a, b))
        lp = logprobs(engine, ids, clamp=clamp, rows=len(group), below=below, first=first, progress=done)
        out[g : g + len(group)] = -lp.mean(axis=1) / LN2
    return out
