"""Replacement ("ablate to simulation"): explained cells replaced, at every step, by what their
explanations predict. Each set of cells is held four ways: at its means (bpc_means); by its
background, the cell's mean after the last three characters (bpc_context); by its phrase alone
(bpc_phrase); by the background plus the phrase, fitted together (bpc_both). Two shares follow:

    recovered      = (bpc_means - bpc_phrase) / (bpc_means - bpc)      what the phrase alone keeps
    beyond_context = (bpc_context - bpc_both) / (bpc_context - bpc)    what the phrases win back of
                                                                       what the model knows beyond
                                                                       three characters

The second is the headline: three characters are its zero point, so an n-gram's worth of knowledge
counts for nothing. Every term is causal (candidates.py), so no replacement sees the character the
model is scored on.

A cell's mean is its mean over the scored text, as `ablate --value mean` holds it. Exact and
cheap because the engine is ours: the replacement is a clamp with one value per step
(engine.forward's per-step clamp). No TensorFlow.
"""

import numpy as np

from charmodel.analysis import background, explain
from charmodel.analysis.candidates import signal_matrix
from charmodel.analysis.ablate import blas, layer_pass, logprobs, rows_bpc
from charmodel.engine import LN2, Engine, layer_number
from charmodel.errors import CharModelError

REPLACE_CHARS = 2000  # validation characters scored by default
MIN_ABLATION_BITS = 0.002  # a cell whose mean ablation costs less: "the model barely uses it", no share to recover


def explained_cells(atlas, layer: int, kind: str, min_r: float = explain.EXPLAINED_R) -> np.ndarray:
    """The cells of (layer from 0, kind) whose phrase's held-out r reaches min_r."""
    U = atlas.meta["units"]
    rows = [atlas.index(layer, kind, cell) for cell in range(U)]
    r = atlas.arrays["phrase_r"][rows]
    return np.flatnonzero(np.isfinite(r) & (r >= min_r))


WAYS = ("context", "phrase", "both")  # what stands in for a cell: its background, its phrase, or both


def predictions(atlas, layer: int, kind: str, cells: np.ndarray, text: str, way: str = "phrase") -> np.ndarray:
    """(T, len(cells)) float32: what stands in for each cell at every character of `text`, `way`
    one of WAYS; every candidate's signal computed once for all the cells."""
    a = atlas.arrays
    rows = [atlas.index(layer, kind, int(cell)) for cell in cells]
    out = np.zeros((len(text), len(rows)), np.float32)
    if way in ("context", "both"):
        base = background.profile_values(a["profile"][rows], text, atlas.meta["vocab"], atlas.meta["contexts"],
                                         a["context_profile"][rows])
        out += base * (a["both_background"][rows] if way == "both" else 1.0)
    if way == "context":
        return out
    weights, intercept = (a["both_weights"], a["both_intercept"]) if way == "both" else (a["weights"], a["intercept"])
    used = sorted({int(j) for i in rows for j in a["terms"][i] if j >= 0})
    column = {j: n for n, j in enumerate(used)}
    signals = signal_matrix([atlas.candidates[j] for j in used], text, atlas.meta["vocab"], np.arange(len(text)))
    for n, i in enumerate(rows):
        out[:, n] += intercept[i]
        for j, w in zip(a["terms"][i], weights[i]):
            if j >= 0:
                out[:, n] += w * signals[:, column[int(j)]]
    return out


def _bpc(engine: Engine, ids: np.ndarray, clamp_for=None, progress=None) -> float:
    """Bits per character of ids[1:] read from ids[:-1], stateful (or windowed) over the whole text;
    clamp_for(a, b) gives the clamp of steps a..b (None: no clamp)."""
    return float(-logprobs(engine, ids, clamp=clamp_for, progress=progress)[0].mean() / LN2)


def replace(engine: Engine, atlas, text: str, parts=None, min_r: float = explain.EXPLAINED_R, progress=None,
            base: float | None = None) -> dict:
    """Every explained cell of `parts` ((layer from 0, kind) pairs; default: every layer's h and c)
    held at its mean, by its background, by its phrase and by both, all at once: see
    replace_cells."""
    parts = parts or [(l, k) for l in range(engine.layers) for k in ("h", "c")]
    chosen = [(l, k, explained_cells(atlas, l, k, min_r)) for l, k in parts]
    return replace_cells(engine, atlas, text, [(l, k, cells) for l, k, cells in chosen if len(cells)], progress, base)


def replace_cell(engine: Engine, atlas, text: str, layer: int, kind: str, cell: int) -> dict:
    """One cell (layer from 0): replace_cells' figures, with ablation_bits (what holding it at its
    mean costs, bits per character) and recovered None when that is under MIN_ABLATION_BITS (the
    model barely uses it)."""
    out = replace_cells(engine, atlas, text, [(layer, kind, np.array([cell]))])
    out["ablation_bits"] = round(out["bpc_means"] - out["bpc"], 5)
    if out["ablation_bits"] < MIN_ABLATION_BITS:
        out["recovered"] = None
    return out


def _share(worse: float, better: float, best: float):
    """(worse - better) / (worse - best), None where worse is no worse than best."""
    return None if worse - best <= 0 else round((worse - better) / (worse - best), 4)


def replace_cells(engine: Engine, atlas, text: str, chosen: list, progress=None, base: float | None = None) -> dict:
    """The cells of `chosen` [(layer from 0, kind, cells)], all held at their means, then all
    replaced by their backgrounds, their phrases, and both: {"bpc", "bpc_means", "bpc_context",
    "bpc_phrase", "bpc_both", "recovered", "beyond_context", "cells"} (see the module docstring)."""
    ids = engine.vocab.encode(text, "the text")
    if len(ids) < 2:
        raise CharModelError("the text needs at least 2 characters: one to read and one to predict.")
    n = sum(len(cells) for _, _, cells in chosen)
    step = lambda done, f: None if progress is None else progress((done + f) / 5)
    base = _bpc(engine, ids, progress=lambda f: step(0, f)) if base is None else base  # given: the unablated pass, once
    if not n:
        same = round(base, 5)
        return {"bpc": same, "bpc_means": same, "bpc_context": same, "bpc_phrase": same, "bpc_both": same,
                "recovered": None, "beyond_context": None, "cells": 0}
    layers = sorted({l for l, _, _ in chosen})
    _, records, _ = engine.forward(ids[None], record=("h", "c"), layers=layers)
    means = {(l, k): records[(l, k)][0][:, cells].mean(axis=0) for l, k, cells in chosen}
    held = [(l, k, cells[None], means[(l, k)][None]) for l, k, cells in chosen]
    out = {"bpc": base, "bpc_means": _bpc(engine, ids, lambda a, b: held, progress=lambda f: step(1, f))}
    for m, way in enumerate(WAYS):
        predicted = {(l, k): predictions(atlas, l, k, cells, text, way) for l, k, cells in chosen}
        clamp = lambda a, b, p=predicted: [(l, k, cells[None], p[(l, k)][None, a:b]) for l, k, cells in chosen]
        out[f"bpc_{way}"] = _bpc(engine, ids, clamp, progress=lambda f, m=m: step(2 + m, f))
    out = {k: round(v, 5) for k, v in out.items()}
    return {**out, "recovered": _share(out["bpc_means"], out["bpc_phrase"], out["bpc"]),
            "beyond_context": _share(out["bpc_context"], out["bpc_both"], out["bpc"]), "cells": n}


def per_cell(engine: Engine, atlas, text: str, min_r: float = explain.EXPLAINED_R, progress=None,
             blas_threads: int = 1) -> dict:
    """Every cell alone, in atlas order (layer by layer, h then c): ablation_bits (N,), what holding
    it at its mean over `text` costs in bits per character; and recovered (N,), the share of that
    loss its phrase alone wins back when it replaces the cell, for explained cells (phrase r
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
                predicted = predictions(atlas, layer, kind, cells, text, "phrase").T  # (cells, T)
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
    """What holding one cell at its mean costs, and what its phrase alone wins back, in words."""
    if ablation_bits is None:
        return "what the model loses without it was not measured."
    if ablation_bits < MIN_ABLATION_BITS:
        return (f"held at its mean it costs the model {max(ablation_bits, 0):.4f} bits per character (under "
                f"{MIN_ABLATION_BITS}): the model barely uses it, so there is nothing for an explanation to win back.")
    cost = f"held at its mean it costs the model {ablation_bits:.4f} bits per character"
    if not explained or recovered is None:
        return f"{cost}; its phrase is too weak to stand in for it (phrase r under {explain.EXPLAINED_R})."
    if recovered < 0:
        return (f"{cost}; replaced by its phrase, the model does worse still ({recovered:.0%}): the phrase "
                "correlates with the cell but misses what the model uses it for.")
    return f"{cost}; replaced by its phrase alone, the model keeps {recovered:.0%} of what this cell gives it."
