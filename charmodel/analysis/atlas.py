"""The atlas build: every cell of a run explained, with a dossier per cell, in one file.

A build streams the whole corpus through the engine one group of rows at a time and keeps only
what the dossiers need (summaries, top and bottom contexts, a character profile, samples at
positions drawn before the pass), so memory never holds all characters x all cells; then it
chooses every cell's phrase (explain.py) and measures what the model uses (replace.py). The file
and its reader are atlas_file.py, whose names this module also gives (atlas.load, atlas.Atlas).
docs/atlas.md has the details.
"""

import json
import time
from pathlib import Path

import numpy as np

from charmodel.analysis import background, explain, replace
from charmodel.analysis.atlas_file import (_ARRAYS, CONTEXT, EFFECT, FORMAT, FRAGMENT,  # noqa: F401 (read
                                           HISTOGRAM_BINS, KINDS, NO_PHRASE, PER_QUANTILE, QUANTILES, RUNS_SHOWN,  # as atlas.X)
                                           SCORES, TOP, Atlas, _scores, atlas_path, build_command, cell_keys, coverage,
                                           load, weighted_coverage)
from charmodel.analysis.candidates import GRAMMARS, library, signal_matrix
from charmodel.analysis.cells import iter_activations
from charmodel.engine import Engine, ngram
from charmodel.engine.scoring import ngram_bpc
from charmodel.run import folder as runfolder
from charmodel.run.corpus import sha256
from charmodel.run.handle import Run

FIT_POSITIONS = 40_000  # training-text positions where explanations are chosen
HELD_POSITIONS = 40_000  # at most this many validation positions where they are scored
WINDOWED_SHARE = 0.25  # a windowed model's atlas reads at most this share of the text's positions (see stream)
WINDOW_ROWS = 256  # windows per batch when reading sampled positions
SEED = 0  # the sampled positions depend on this and the text's length only
PIECE, WARMUP, GROUP = 800, 300, 32  # rows of the batched pass (see cells.batched_activations)


def sample_positions(train_chars: int, total_chars: int, seed: int = SEED, share: float | None = None):
    """(fit, held, spread): sorted positions in the training text, the validation text, and the
    validation positions that, with fit, make a uniform sample of the whole text. share: at most
    this share of the text's positions in all (a windowed model's atlas reads only these), the
    held-out part taking up to half."""
    rng = np.random.default_rng(seed)
    val_chars = total_chars - train_chars
    fit_n, held_n = min(FIT_POSITIONS, train_chars), min(HELD_POSITIONS, val_chars)
    if share is not None:
        budget = max(int(share * total_chars), 2)
        held_n = min(held_n, budget // 2)
        fit_n = min(fit_n, budget - held_n)
    fit = np.sort(rng.choice(train_chars, fit_n, replace=False))
    held = train_chars + np.sort(rng.choice(val_chars, held_n, replace=False))
    rate = len(fit) / max(train_chars, 1)
    spread = np.sort(rng.choice(len(held), min(len(held), round(rate * val_chars)), replace=False))
    return fit, held, spread


# ---------------------------------------------------------------- streaming statistics


class _Stream:
    """Running statistics of N cells over consecutive stretches of text (see the module docstring)."""

    def __init__(self, n_cells: int, vocab_size: int, fit, held):
        self.sum = np.zeros(n_cells)
        self.sumsq = np.zeros(n_cells)
        self.min = np.full(n_cells, np.inf, dtype=np.float32)
        self.max = np.full(n_cells, -np.inf, dtype=np.float32)
        self.char_sum = np.zeros((vocab_size, n_cells))
        self.char_count = np.zeros(vocab_size)
        self.top = [np.full((TOP, n_cells), -np.inf, np.float32), np.full((TOP, n_cells), np.iinfo(np.int64).max)]
        self.bottom = [np.full((TOP, n_cells), -np.inf, np.float32), np.full((TOP, n_cells), np.iinfo(np.int64).max)]
        self.fit, self.held = fit, held
        self.fit_x = np.empty((len(fit), n_cells), np.float32)
        self.held_x = np.empty((len(held), n_cells), np.float32)
        self.count = 0

    def add(self, start: int, ids: np.ndarray, x: np.ndarray, columns: slice, first: bool) -> None:
        """x: (n, cells) for text positions start.. start + n, for the cells in `columns`. Fragments
        are whole (start is a multiple of FRAGMENT), except perhaps the text's last one."""
        n = len(x)
        if first:
            self.count += n
            np.add.at(self.char_count, ids, 1)
        self.sum[columns] += x.sum(axis=0, dtype=np.float64)
        self.sumsq[columns] += np.einsum("ij,ij->j", x, x, dtype=np.float64)
        np.minimum(self.min[columns], x.min(axis=0), out=self.min[columns])
        np.maximum(self.max[columns], x.max(axis=0), out=self.max[columns])
        onehot = np.zeros((n, len(self.char_count)), np.float32)
        onehot[np.arange(n), ids] = 1
        self.char_sum[:, columns] += onehot.T @ x
        for store, sign in ((self.top, 1), (self.bottom, -1)):
            frags = -(-n // FRAGMENT)
            padded = np.full((frags * FRAGMENT, x.shape[1]), -np.inf, np.float32)
            padded[:n] = sign * x
            arg = padded.reshape(frags, FRAGMENT, -1).argmax(axis=1)  # (frags, cells)
            pos = np.arange(frags)[:, None] * FRAGMENT + arg
            val = np.take_along_axis(padded, pos, axis=0)
            self._merge(store, columns, val, pos + start)
        for positions, rows in ((self.fit, self.fit_x), (self.held, self.held_x)):
            a, b = np.searchsorted(positions, [start, start + n])
            rows[a:b, columns] = x[positions[a:b] - start]

    @staticmethod
    def _merge(store, columns, val, pos):
        """Keep the TOP largest (value, position) per column: ties go to the earlier position."""
        v = np.concatenate([store[0][:, columns], val])
        p = np.concatenate([store[1][:, columns], pos])
        order = np.lexsort((p, -v), axis=0)[:TOP]
        store[0][:, columns] = np.take_along_axis(v, order, axis=0)
        store[1][:, columns] = np.take_along_axis(p, order, axis=0)


def _distribution(sample: np.ndarray, positions: np.ndarray, lo: np.ndarray, hi: np.ndarray, seed: int = SEED):
    """Histogram counts (N, HISTOGRAM_BINS) over [lo, hi] per cell, and the quantile samples:
    positions and values (N, QUANTILES, PER_QUANTILE) and bin edges (N, QUANTILES + 1), from a
    sample (n, N) of values at `positions` (n,)."""
    n, N = sample.shape
    hist = np.stack([np.histogram(sample[:, j], HISTOGRAM_BINS, (lo[j], hi[j] if hi[j] > lo[j] else lo[j] + 1e-6))[0]
                     for j in range(N)]).astype(np.int32)
    order = np.argsort(sample, axis=0, kind="stable")  # (n, N)
    bounds = np.linspace(0, n, QUANTILES + 1).round().astype(int)
    rng = np.random.default_rng(seed)
    picks = np.stack([min(lo_, n - 1) + rng.choice(max(hi_ - lo_, 1), PER_QUANTILE, replace=hi_ - lo_ < PER_QUANTILE)
                      for lo_, hi_ in zip(bounds[:-1], bounds[1:])])  # (QUANTILES, PER_QUANTILE) ranks
    rows = order[picks.ravel()]  # (Q * P, N)
    q_pos = positions[rows].T.reshape(N, QUANTILES, PER_QUANTILE)
    q_val = np.take_along_axis(sample, rows, axis=0).T.reshape(N, QUANTILES, PER_QUANTILE)
    sorted_values = np.take_along_axis(sample, order[np.minimum(bounds, n - 1)], axis=0).T  # (N, Q + 1)
    return hist, q_pos, q_val.astype(np.float32), sorted_values.astype(np.float32)


# ---------------------------------------------------------------- building


def stream(engine: Engine, text: str, train_chars: int, progress=None, seed: int = SEED) -> _Stream:
    """One pass over the whole text: the running statistics and the samples of every cell.
    progress: optional callable given the fraction of the pass done."""
    U, keys = engine.units, cell_keys(engine.layers)
    ids = engine.vocab.encode(text, "the corpus")
    if engine.window:
        return _sampled(engine, ids, train_chars, progress, seed)
    fit, held, spread = sample_positions(train_chars, len(text), seed)
    out = _Stream(U * len(keys), len(engine.vocab), fit, held)
    out.spread = spread
    pending, pending_start = None, 0  # rows after the last whole fragment, added with the next stretch
    for start, stretch in iter_activations(engine, ids, KINDS, None, PIECE, WARMUP, GROUP, progress=progress):
        block = {key: stretch[key] for key in keys}
        if pending is not None:
            block = {key: np.concatenate([pending[key], v]) for key, v in block.items()}
            start = pending_start
        n = len(next(iter(block.values())))
        whole = n if start + n == len(text) else n - (start + n) % FRAGMENT
        for i, key in enumerate(keys if whole else ()):
            out.add(start, ids[start : start + whole], block[key][:whole], slice(i * U, (i + 1) * U), first=i == 0)
        pending = {key: v[whole:].copy() for key, v in block.items()} if whole < n else None
        pending_start = start + whole
        del stretch, block
    return out


def window_values(engine: Engine, ids: np.ndarray, positions: np.ndarray, progress=None) -> np.ndarray:
    """(len(positions), cells) float32, cells in atlas order: a windowed engine's value of every
    cell at each position, each from a zero state over the window ending there (over the text's
    start before the first full window), WINDOW_ROWS windows per batch. Each value is the one the
    ring of windows gives at that position, without the positions between. A padded model's every
    window is W long (engine.windows: padding where its text begins)."""
    W, plain, keys = engine.window, engine.window_reader(), cell_keys(engine.layers)
    out = np.empty((len(positions), engine.units * len(keys)), np.float32)
    early = np.flatnonzero(positions < W - 1) if not engine.pads else np.arange(0)  # their windows start at the text's start: one pass serves them
    if len(early):
        _, rec, _ = plain.forward(ids[None, : W - 1], plain.blank_carry(1), record=KINDS, logits=False)
        out[early] = np.concatenate([rec[key][0][positions[early]] for key in keys], axis=1)
    late = np.flatnonzero(positions >= W - 1) if not engine.pads else np.arange(len(positions))
    for g in range(0, len(late), WINDOW_ROWS):
        rows = late[g : g + WINDOW_ROWS]
        windows = engine.windows(ids, positions[rows]) if engine.pads else \
            ids[(positions[rows] - W + 1)[:, None] + np.arange(W)]
        _, _, carry = plain.forward(windows, plain.blank_carry(len(rows)), record=(), logits=False)  # its last state
        out[rows] = np.concatenate([(carry.h if kind == "h" else carry.c)[layer] for layer, kind in keys], axis=1)
        if progress is not None:
            progress((g + len(rows)) / len(late))
    return out


def _sampled(engine: Engine, ids: np.ndarray, train_chars: int, progress, seed: int) -> _Stream:
    """stream() for a windowed engine: only the sampled positions (at most WINDOWED_SHARE of the
    text), each value from its own window, so the summary, the character profile and the top and
    bottom contexts are those of the sample (`meta.summary_positions` says how many)."""
    fit, held, spread = sample_positions(train_chars, len(ids), seed, WINDOWED_SHARE)
    positions = np.concatenate([fit, held])
    values = window_values(engine, ids, positions, progress)
    out = _Stream(0, len(engine.vocab), fit, held)
    out.spread, out.count = spread, len(positions)
    out.fit_x, out.held_x = values[: len(fit)], values[len(fit) :]
    out.sum, out.sumsq = values.sum(axis=0, dtype=np.float64), np.einsum("ij,ij->j", values, values, dtype=np.float64)
    out.min, out.max = values.min(axis=0), values.max(axis=0)
    out.char_count = np.bincount(ids[positions], minlength=len(engine.vocab)).astype(np.float64)
    onehot = np.zeros((len(positions), len(engine.vocab)), np.float32)
    onehot[np.arange(len(positions)), ids[positions]] = 1
    out.char_sum = (onehot.T @ values).astype(np.float64)
    for name, sign in (("top", 1), ("bottom", -1)):
        k = min(TOP, len(positions))
        best = np.argpartition(-sign * values, k - 1, axis=0)[:k]  # (k, cells): the k largest, unordered
        v = np.take_along_axis(sign * values, best, axis=0)
        order = np.argsort(-v, axis=0, kind="stable")
        pad = lambda a, fill: np.concatenate([a, np.full((TOP - k, a.shape[1]), fill, a.dtype)]) if k < TOP else a
        setattr(out, name, [pad(np.take_along_axis(v, order, axis=0), -np.inf),
                            pad(positions[np.take_along_axis(best, order, axis=0)], np.iinfo(np.int64).max)])
    return out


def explain_cells(samples: _Stream, text: str, train_chars: int, vocab_chars: str, grammar: str = "full"):
    """(candidates, explain.choose's arrays) for the streamed samples: candidates from the training
    text, chosen on the fit positions, scored on the held-out ones."""
    index = {ch: i for i, ch in enumerate(vocab_chars)}
    ids = np.fromiter((index[ch] for ch in text), np.int64, len(text))
    candidates = library(text[:train_chars], vocab_chars, grammar)
    if grammar == "full":
        before = np.where(samples.fit > 0, ids[np.maximum(samples.fit - 1, 0)], -1)
        candidates += explain.character_sets(samples.fit_x, ids[samples.fit], vocab_chars)
        candidates += explain.character_sets(samples.fit_x, before, vocab_chars, previous=True)
    fit_signals, held_signals = signal_matrix(candidates, text, vocab_chars, samples.fit, samples.held)
    runs = background.context_codes(ids, len(vocab_chars))
    return candidates, explain.choose(samples.fit_x, fit_signals, samples.held_x, held_signals, candidates,
                                      ids[samples.fit], ids[samples.held], len(vocab_chars), runs[samples.fit],
                                      runs[samples.held])


def compare_grammars(engine: Engine, text: str, train_chars: int, grammars=GRAMMARS) -> dict:
    """{grammar: coverage} on the same samples and thresholds: what a richer grammar adds (the
    model card and benchmarks/atlas.py report it)."""
    samples = stream(engine, text, train_chars)
    out = {}
    for grammar in grammars:
        candidates, chosen = explain_cells(samples, text, train_chars, engine.vocab.chars, grammar)
        out[grammar] = {"candidates": len(candidates), **coverage(chosen["terms"][:, 0], _scores(chosen),
                                                                  candidates, engine.layers, engine.units)}
    return out


def build(engine: Engine, text: str, train_chars: int, progress=None, seed: int = SEED, blas_threads: int = 1) -> dict:
    """Everything the atlas file holds, as arrays over cells (see the module docstring) plus `meta`.
    text: the whole corpus; its first train_chars characters are the training part. progress:
    optional callable given (fraction done, stage). blas_threads: for the ablations' batches."""
    t0 = time.perf_counter()
    say = progress or (lambda f, stage: None)
    U, N = engine.units, engine.units * len(cell_keys(engine.layers))
    first = 0.9 if engine.window else 0.3  # the share of the bar the activations take (no ablations when windowed)
    samples = stream(engine, text, train_chars, lambda f: say(first * f, "activations"), seed)
    fit, held, spread = samples.fit, samples.held, samples.spread
    stages = {"activations": time.perf_counter() - t0}
    say(first, "explanations")
    candidates, chosen = explain_cells(samples, text, train_chars, engine.vocab.chars)
    contexts = chosen.pop("contexts")
    stages["explanations"] = time.perf_counter() - t0 - sum(stages.values())
    say(first + 0.06, "what the model uses")
    # a windowed model reads each character in its own window: its ablations would cost W times a
    # stateful model's, so the build leaves them to `atlas --replace` and `ablate` (docs/atlas.md)
    scored = "" if engine.window else text[train_chars : train_chars + replace.REPLACE_CHARS]
    using = lambda f: say(first + 0.06 + (0.9 - first) * f, "what the model uses")
    used, replaced = _what_the_model_uses(engine, candidates, chosen, contexts, text[:train_chars], scored, using,
                                          blas_threads)
    stages["what the model uses"] = time.perf_counter() - t0 - sum(stages.values())
    say(0.97, "distributions")
    mean = samples.sum / samples.count
    std = np.sqrt(np.maximum(samples.sumsq / samples.count - mean**2, 0))
    hist = np.empty((N, HISTOGRAM_BINS), np.int32)
    q_pos = np.empty((N, QUANTILES, PER_QUANTILE), np.int64)
    q_val = np.empty((N, QUANTILES, PER_QUANTILE), np.float32)
    q_edges = np.empty((N, QUANTILES + 1), np.float32)
    positions = np.concatenate([fit, held[spread]])
    for j in range(0, N, 256):
        cols = slice(j, j + 256)
        sample = np.concatenate([samples.fit_x[:, cols], samples.held_x[spread, cols]])
        hist[cols], q_pos[cols], q_val[cols], q_edges[cols] = _distribution(
            sample, positions, samples.min[cols], samples.max[cols], seed)
    top_value, top_position = samples.top
    bottom_value, bottom_position = samples.bottom
    weights = engine.readout  # (U, V): the last layer's h to the next character's logits
    order = np.argsort(-weights, axis=1, kind="stable")
    effect_chars = np.concatenate([order[:, :EFFECT], order[:, ::-1][:, :EFFECT]], axis=1)  # (U, 2 * EFFECT)
    meta = {"format": FORMAT, "kinds": list(KINDS), "layers": engine.layers, "units": U,
            "vocab": engine.vocab.chars, "chars": len(text), "train_chars": train_chars,
            "fit_positions": len(fit), "held_positions": len(held), "sample_positions": len(positions),
            "summary_positions": int(samples.count),
            "seed": seed, "fragment": FRAGMENT, "candidates": explain.candidate_dicts(candidates),
            "contexts": contexts.tolist(),
            "thresholds": {"phrase_r": explain.EXPLAINED_R, "max_terms": explain.MAX_TERMS,
                           "min_gain": explain.MIN_GAIN, "min_evidence": explain.MIN_EVIDENCE,
                           "min_ablation_bits": replace.MIN_ABLATION_BITS},
            "ablation_chars": len(scored), "replacement": replaced,
            "seconds": round(time.perf_counter() - t0, 1),
            "stage_seconds": {k: round(v, 1) for k, v in stages.items()}}
    say(1.0, "done")
    return {"meta": meta, "mean": mean.astype(np.float32), "std": std.astype(np.float32), "min": samples.min,
            "max": samples.max, "histogram": hist,
            "top_position": top_position.T.astype(np.int32), "top_value": top_value.T,
            "bottom_position": bottom_position.T.astype(np.int32), "bottom_value": -bottom_value.T,
            "quantile_position": q_pos.astype(np.int32), "quantile_value": q_val, "quantile_edges": q_edges,
            "char_mean": (samples.char_sum / np.maximum(samples.char_count, 1)[:, None]).T.astype(np.float32),
            **chosen, **used,
            "effect_chars": effect_chars.astype(np.int16),
            "effect_weights": np.take_along_axis(weights, effect_chars, axis=1).astype(np.float32)}


def _what_the_model_uses(engine: Engine, candidates, chosen: dict, contexts, train: str, scored: str, progress,
                         blas_threads: int):
    """(replace.per_cell's arrays, replace.summary's dict) on the scored text, from the explanations
    chosen before the file exists; (arrays of NaN, None) without two characters to score."""
    if len(scored) < 2:
        return {"ablation_bits": np.full(len(chosen["terms"]), np.nan, np.float32),
                "recovered": np.full(len(chosen["terms"]), np.nan, np.float32)}, None
    draft = Atlas({"units": engine.units, "layers": engine.layers, "vocab": engine.vocab.chars,
                   "candidates": explain.candidate_dicts(candidates), "contexts": contexts.tolist()}, chosen, None)
    used = replace.per_cell(engine, draft, scored, progress=lambda f: progress(0.9 * f), blas_threads=blas_threads)
    with replace.blas(blas_threads):
        replaced = replace.summary(engine, draft, scored)
    replaced["scale"] = {"unigram": round(ngram.NGram.fit(train, 1).bpc(scored, train), 5),
                         **{k: round(v, 5) for k, v in ngram_bpc(train, scored).items()}}
    progress(1.0)
    return used, replaced


def build_for_run(run, checkpoint: str | None = None, progress=None, blas_threads: int = 1) -> Path:
    """Build the atlas of one checkpoint of a run (a Run or its folder) and write it into the run folder."""
    run = Run.of(run)  # read once: the engine, the texts and the paths below all come from it
    checkpoint = checkpoint or run.default_checkpoint()
    engine = Engine.load(run, checkpoint)
    train, val = run.split()
    data = build(engine, train + val, len(train), progress, blas_threads=blas_threads)
    data["meta"].update(run=run.name, checkpoint=checkpoint, weights_sha256=sha256(run.checkpoint(checkpoint)))
    path = atlas_path(run.path, checkpoint)
    with runfolder.atomic_path(path, suffix=".tmp.npz") as tmp:
        arrays = {k: data[k] for k in _ARRAYS}
        arrays["context_profile"], arrays["context_scale"] = background.quantised(data["context_profile"])
        np.savez_compressed(tmp, meta=np.array(json.dumps(data["meta"])), **arrays)
    return path


def context_values(engine: Engine, text: str, positions: list[int], layer: int, kind: str, cell: int,
                   radius: int = CONTEXT, warmup: int = WARMUP) -> list[np.ndarray]:
    """One cell's values over the ±radius context of each position, computed after `warmup`
    characters of the text before it (as the atlas's own pass does), all contexts as one batch."""
    ids = engine.vocab.encode(text, "the corpus")
    warmup = max(warmup, engine.window or 0)  # a windowed value needs its whole window: then it is exact
    spans = [(max(0, p - radius - warmup), max(0, p - radius), min(len(text), p + radius + 1)) for p in positions]
    width = max(b - a for a, _, b in spans)
    rows = np.zeros((len(spans), width), ids.dtype)
    for r, (a, _, b) in enumerate(spans):
        rows[r, : b - a] = ids[a:b]
    _, rec, _ = engine.forward(rows, record=(kind,), layers=[layer], logits=False)
    values = rec[(layer, kind)][:, :, cell]  # (B, width)
    return [values[r, s - a : b - a] for r, (a, s, b) in enumerate(spans)]
