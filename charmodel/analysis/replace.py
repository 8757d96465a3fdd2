"""Replacement ("ablate to simulation"): explained cells replaced, at every step, by what their
explanations predict, against the same cells held at their means. If an explanation carries what
the model uses the cell for, the model keeps its bits per character; the share of the mean
ablation's loss that the replacement wins back is `recovered`:

    recovered = (bpc held at the means - bpc replaced) / (bpc held at the means - bpc unablated)

A cell's mean is its mean over the scored text, as `ablate --value mean` holds it. Exact and
cheap because the engine is ours: the replacement is a clamp with one value per step
(engine.forward's per-step clamp). No TensorFlow.
"""

import numpy as np

from charmodel.analysis import explain
from charmodel.analysis.ablate import blas, layer_pass, logprobs, rows_bpc
from charmodel.engine import LN2, Engine, layer_number
from charmodel.errors import CharModelError

REPLACE_CHARS = 2000  # validation characters scored by default
MIN_ABLATION_BITS = 0.002  # a cell whose mean ablation costs less: "the model barely uses it", no share to recover


def explained_cells(atlas, layer: int, kind: str, min_r: float = explain.EXPLAINED_R) -> np.ndarray:
    """The cells of (layer from 0, kind) whose held-out simulation r reaches min_r."""
    U = atlas.meta["units"]
    rows = [atlas.index(layer, kind, cell) for cell in range(U)]
    r = atlas.arrays["simulation_r"][rows]
    return np.flatnonzero(np.isfinite(r) & (r >= min_r))


def predictions(atlas, layer: int, kind: str, cells: np.ndarray, text: str) -> np.ndarray:
    """(T, len(cells)) float32: what each cell's explanation predicts at every character of `text`,
    every candidate's signal computed once for all the cells."""
    a = atlas.arrays
    rows = [atlas.index(layer, kind, int(cell)) for cell in cells]
    used = sorted({int(j) for i in rows for j in a["terms"][i] if j >= 0})
    column = {j: n for n, j in enumerate(used)}
    signals = explain.signal_matrix([atlas.candidates[j] for j in used], text, atlas.meta["vocab"], np.arange(len(text)))
    out = np.empty((len(text), len(rows)), np.float32)
    profiles = explain.profile_values(a["profile"][rows], text, atlas.meta["vocab"], atlas.meta["contexts"],
                                      a["context_profile"][rows])  # each cell's profile, with its runs
    for n, i in enumerate(rows):
        value = float(a["intercept"][i]) + profiles[:, n]
        for j, w in zip(a["terms"][i], a["weights"][i]):
            if j >= 0:
                value += float(w) * signals[:, column[int(j)]]
        out[:, n] = value
    return out


def _bpc(engine: Engine, ids: np.ndarray, clamp_for=None, progress=None) -> float:
    """Bits per character of ids[1:] read from ids[:-1], stateful (or windowed) over the whole text;
    clamp_for(a, b) gives the clamp of steps a..b (None: no clamp)."""
    return float(-logprobs(engine, ids, clamp=clamp_for, progress=progress)[0].mean() / LN2)


def replace(engine: Engine, atlas, text: str, parts=None, min_r: float = explain.EXPLAINED_R, progress=None,
            base: float | None = None) -> dict:
    """Every explained cell of `parts` ((layer from 0, kind) pairs; default: every layer's h and c)
    held at its mean, and replaced by its explanation, all at once: {"bpc", "bpc_means",
    "bpc_explained", "recovered", "cells"}. recovered is None when holding the cells at their means
    costs nothing."""
    parts = parts or [(l, k) for l in range(engine.layers) for k in ("h", "c")]
    chosen = [(l, k, explained_cells(atlas, l, k, min_r)) for l, k in parts]
    return replace_cells(engine, atlas, text, [(l, k, cells) for l, k, cells in chosen if len(cells)], progress, base)


def replace_cell(engine: Engine, atlas, text: str, layer: int, kind: str, cell: int) -> dict:
    """One cell (layer from 0) held at its mean, and replaced by its explanation: replace_cells'
    figures, with ablation_bits (what holding it at its mean costs, bits per character) and
    recovered None when that is under MIN_ABLATION_BITS (the model barely uses it)."""
    out = replace_cells(engine, atlas, text, [(layer, kind, np.array([cell]))])
    out["ablation_bits"] = round(out["bpc_means"] - out["bpc"], 5)
    if out["ablation_bits"] < MIN_ABLATION_BITS:
        out["recovered"] = None
    return out


def replace_cells(engine: Engine, atlas, text: str, chosen: list, progress=None, base: float | None = None) -> dict:
    """The cells of `chosen` [(layer from 0, kind, cells)], all held at their means, then all
    replaced by their explanations; see replace()."""
    ids = engine.vocab.encode(text, "the text")
    if len(ids) < 2:
        raise CharModelError("the text needs at least 2 characters: one to read and one to predict.")
    n = sum(len(cells) for _, _, cells in chosen)
    step = lambda done, f: None if progress is None else progress((done + f) / 4)
    base = _bpc(engine, ids, progress=lambda f: step(0, f)) if base is None else base  # given: the unablated pass, once
    if not n:
        return {"bpc": round(base, 5), "bpc_means": round(base, 5), "bpc_explained": round(base, 5),
                "recovered": None, "cells": 0}
    layers = sorted({l for l, _, _ in chosen})
    _, records, _ = engine.forward(ids[None], record=("h", "c"), layers=layers)
    means = {(l, k): records[(l, k)][0][:, cells].mean(axis=0) for l, k, cells in chosen}
    held = [(l, k, cells[None], means[(l, k)][None]) for l, k, cells in chosen]
    bpc_means = _bpc(engine, ids, lambda a, b: held, progress=lambda f: step(1, f))
    predicted = {(l, k): predictions(atlas, l, k, cells, text) for l, k, cells in chosen}
    step(2, 1.0)
    replaced = lambda a, b: [(l, k, cells[None], predicted[(l, k)][None, a:b]) for l, k, cells in chosen]
    bpc_explained = _bpc(engine, ids, replaced, progress=lambda f: step(3, f))
    lost = bpc_means - base
    recovered = (bpc_means - bpc_explained) / lost if lost > 0 else None
    return {"bpc": round(base, 5), "bpc_means": round(bpc_means, 5), "bpc_explained": round(bpc_explained, 5),
            "recovered": None if recovered is None else round(recovered, 4), "cells": n}


def per_cell(engine: Engine, atlas, text: str, min_r: float = explain.EXPLAINED_R, progress=None,
             blas_threads: int = 1) -> dict:
    """Every cell alone, in atlas order (layer by layer, h then c): ablation_bits (N,), what holding
    it at its mean over `text` costs in bits per character; and recovered (N,), the share of that
    loss its explanation wins back when it replaces the cell, for explained cells (simulation r
    reaching min_r) whose ablation_bits reach MIN_ABLATION_BITS, NaN for the others. A layer's
    rows are batched as ablate.sweep batches them."""
    ids = engine.vocab.encode(text, "the text")
    if len(ids) < 2:
        raise CharModelError("the text needs at least 2 characters: one to read and one to predict.")
    U, parts = engine.units, [(l, k) for l in range(engine.layers) for k in ("h", "c")]
    bits = np.empty(U * len(parts), np.float32)
    recovered = np.full(U * len(parts), np.nan, np.float32)
    every = np.arange(U)
    say = (lambda n, f: progress((n + f) / (2 * len(parts)))) if progress else (lambda n, f: None)
    with blas(blas_threads):
        base = _bpc(engine, ids)
        for n, (layer, kind) in enumerate(parts):
            means, below = layer_pass(engine, ids, layer, kind)
            held = rows_bpc(engine, ids, layer, kind, every, lambda c, a, b: means[c][:, None], below,
                            lambda f: say(2 * n, f))
            bits[n * U : (n + 1) * U] = held - base
            used = every[held - base >= MIN_ABLATION_BITS]
            cells = np.intersect1d(used, explained_cells(atlas, layer, kind, min_r))
            if len(cells):
                predicted = predictions(atlas, layer, kind, cells, text).T  # (cells, T)
                column = {int(c): i for i, c in enumerate(cells)}
                rows = lambda c, a, b: predicted[[column[int(x)] for x in c], a:b, None]
                replaced = rows_bpc(engine, ids, layer, kind, cells, rows, below, lambda f: say(2 * n + 1, f))
                recovered[n * U + cells] = (held[cells] - replaced) / (held[cells] - base)
    return {"ablation_bits": bits, "recovered": recovered}


def summary(engine: Engine, atlas, text: str, min_r: float = explain.EXPLAINED_R) -> dict:
    """replace() for the whole model ("model") and for each layer and kind ("layer 1 h", ...)."""
    base = _bpc(engine, engine.vocab.encode(text, "the text"))  # the unablated pass, shared by all five
    out = {"model": replace(engine, atlas, text, min_r=min_r, base=base)}
    for layer in range(engine.layers):
        for kind in ("h", "c"):
            out[f"layer {layer_number(layer)} {kind}"] = replace(engine, atlas, text, [(layer, kind)], min_r, base=base)
    return out


def cell_sentence(ablation_bits, recovered, explained: bool) -> str:
    """What holding one cell at its mean costs, and what its explanation wins back, in words."""
    if ablation_bits is None:
        return "what the model loses without it was not measured."
    if ablation_bits < MIN_ABLATION_BITS:
        return (f"held at its mean it costs the model {max(ablation_bits, 0):.4f} bits per character (under "
                f"{MIN_ABLATION_BITS}): the model barely uses it, so there is nothing for an explanation to win back.")
    cost = f"held at its mean it costs the model {ablation_bits:.4f} bits per character"
    if not explained or recovered is None:
        return f"{cost}; its explanation is too weak to stand in for it (simulation r under {explain.EXPLAINED_R})."
    if recovered < 0:
        return (f"{cost}; replaced by its explanation, the model does worse still ({recovered:.0%}): the explanation "
                "correlates with the cell but misses what the model uses it for.")
    return f"{cost}; replaced by its explanation, the model keeps {recovered:.0%} of what this cell gives it."
