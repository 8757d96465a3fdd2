"""The NumPy engine: Keras' LSTM math, stateful, with every internal value exposed.

Keras stores an LSTM's gates in the order i, f, g (candidate), o. One step is

    z = x @ K + h @ R + b
    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c = f * c + i * g
    h = o * tanh(c)

Two tricks keep it fast without changing the maths:
  * sigmoid(x) = 0.5 + 0.5 * tanh(x / 2), so the columns of the sigmoid gates are pre-scaled by
    1/2 and one tanh call covers all four gates;
  * the first layer's input projection is folded into the embedding table: x @ K + b becomes a row
    lookup, (vocab, 4 * units).

Every loop runs with one BLAS thread unless asked for more (`--threads N` or $CHARMODEL_THREADS
for a command that owns the machine; the app always uses one): building an Engine limits the
process's BLAS (`pin_blas`). A step is a small matrix product, thousands of them in a row; with NumPy's default
BLAS threads each one waits for all of its threads, so when another process or app session also
wants the cores, every step waits for a descheduled thread (issue 10 measured a forward pass going
from 0.2 s to 8-11 s beside a training run and a cell ranking on 2 cores). One thread is slower on an idle
machine and steady under load; benchmarks/load.py measures both.

No TensorFlow here. Weights come from a run's .npz files, which hold plain arrays only.
"""

import math
import os
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

from . import runfolder
from .corpus import Vocab
from .errors import CharModelError
from .numbering import layer_index, layer_number  # noqa: F401 (the engine's users import them from here)

KINDS = ("h", "c", "i", "f", "g", "o")  # what inspection can record per layer
LN2 = math.log(2)  # nats per bit: Keras' losses and log-probabilities are in nats, bpc in bits
BLOCK = 128  # steps whose input projection is computed at once (one matrix product per block)


THREADS_ENV = "CHARMODEL_THREADS"
_threads: int | None = None  # set_threads(); None: $CHARMODEL_THREADS, else 1


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_threads(raw, where: str) -> int:
    """A thread count from a flag or the environment, or one line saying what is wrong."""
    try:
        n = int(str(raw).strip())
    except ValueError:
        n = 0
    if not 1 <= n <= cores():
        raise CharModelError(f"{where} must be a whole number of threads from 1 to {cores()} (this machine's cores), "
                             f"not {str(raw)!r}.")
    return n


def blas_threads() -> int:
    """BLAS threads for the engine's loops: set_threads's, else $CHARMODEL_THREADS, else 1."""
    if _threads is not None:
        return _threads
    raw = os.environ.get(THREADS_ENV, "")
    return parse_threads(raw, f"${THREADS_ENV}") if raw.strip() else 1


def set_threads(n) -> None:
    """BLAS threads for this process from now on (a command line that owns the machine: --threads);
    the app sets 1, one thread per session. Applied at once and by every later Engine."""
    global _threads
    _threads = parse_threads(n, "--threads")
    pin_blas()


def pin_blas() -> None:
    """Limit BLAS to blas_threads() threads, one unless asked, for the whole process (see the
    module docstring).

    A setting for the process, made by every Engine, not a context around each loop: OpenBLAS's
    pool is process-wide, and threadpoolctl lets only one live thread change it (others are
    silently ignored), so per-loop limits from several app sessions' threads would not hold.
    The libraries are looked up afresh each time (a millisecond or two): one loaded after this
    module, such as SciPy's own OpenBLAS when Keras imports scikit-learn, is pinned too.
    """
    ThreadpoolController().limit(limits=blas_threads(), user_api="blas")


def weight_names(layers: int) -> list[str]:
    names = ["embedding"]
    for l in range(layers):
        names += [f"lstm{l}_kernel", f"lstm{l}_recurrent", f"lstm{l}_bias"]
    return names + ["dense_kernel", "dense_bias"]


@dataclass
class Carry:
    """The carry: per-layer (h, c), each (B, units). Pass it from call to call to continue a text.

    A windowed engine's carry is its ring of windows instead: (B * window, units) per layer, and
    `t`, the characters read so far (which slot of the ring starts, and which one is read)."""

    h: list
    c: list
    t: int = 0

    def copy(self) -> "Carry":
        return Carry([x.copy() for x in self.h], [x.copy() for x in self.c], self.t)


def check_window(window, where: str = "--window") -> int | None:
    """A window length from a flag or a config: None (stateful) or a whole number >= 2."""
    if window is None:
        return None
    try:
        w = int(window)
    except (TypeError, ValueError):
        w = 0
    if w < 2 or str(window).strip() != str(w):
        raise CharModelError(f"{where} must be a whole number of characters, 2 or more, not {str(window)!r}.")
    return w


class Engine:
    """The model's maths over ids. `window`: None for a stateful run (the state is carried along
    the text), or W for a model trained on windows of W characters from a zero state: then the
    value at character t is that of a zero state run over the W characters ending at t, as the
    post computed it (see _forward_windowed). with_window() reads the same weights another way
    (evaluate does, to score a run both ways)."""

    def __init__(self, weights: dict, vocab: Vocab, window: int | None = None):
        pin_blas()
        self.vocab = vocab
        self.window = check_window(window, "window")
        self.layers = sum(1 for k in weights if k.endswith("_recurrent"))
        emb = weights["embedding"]  # (V, E)
        self.units = weights["lstm0_recurrent"].shape[0]
        U = self.units
        if emb.shape[0] != len(vocab) or weights["dense_kernel"].shape[1] != len(vocab):
            raise CharModelError(
                f"weights are for a vocabulary of {emb.shape[0]} characters but the config lists "
                f"{len(vocab)}; the run folder is inconsistent."
            )
        # Columns reordered from Keras' i, f, g, o to i, f, o, g, so the three sigmoid gates are
        # one contiguous block: fewer NumPy calls per step (each one can hand the GIL to another
        # session's thread). The sigmoid gates' columns are pre-scaled by 1/2 (see above).
        order = np.concatenate([np.arange(0, 2 * U), np.arange(3 * U, 4 * U), np.arange(2 * U, 3 * U)])
        scale = np.full(4 * U, 0.5, np.float32)
        scale[3 * U :] = 1.0  # g
        self.K, self.R, self.b = [], [], []
        for l in range(self.layers):
            self.K.append(np.ascontiguousarray(weights[f"lstm{l}_kernel"][..., order] * scale))
            self.R.append(np.ascontiguousarray(weights[f"lstm{l}_recurrent"][..., order] * scale))
            self.b.append(np.ascontiguousarray(weights[f"lstm{l}_bias"][order] * scale))
        self.table0 = np.ascontiguousarray(emb @ self.K[0] + self.b[0])  # (V, 4U), input folded in
        self.emb = np.ascontiguousarray(emb, dtype=np.float32)  # (V, E): attribution reads the inputs themselves
        self.Wd = np.ascontiguousarray(weights["dense_kernel"])  # (U, V)
        self.bd = np.ascontiguousarray(weights["dense_bias"])  # (V,)

    @classmethod
    def load(cls, run, checkpoint: str = "best") -> "Engine":
        config = runfolder.read_config(run)
        weights = runfolder.load_weights_npz(runfolder.checkpoint_path(run, checkpoint))
        arch = config["architecture"]
        missing = [k for k in weight_names(arch["layers"]) if k not in weights]
        if missing:
            raise CharModelError(
                f"checkpoint {checkpoint} of {run} lacks {', '.join(missing)}; the run folder is damaged."
            )
        engine = cls(weights, runfolder.vocab_of(config), check_window(config.get("window"), f"{run}'s window"))
        if engine.layers != arch["layers"] or engine.units != arch["units"]:
            raise CharModelError(
                f"checkpoint {checkpoint} of {run} has {engine.layers}x{engine.units} weights but the "
                f"config says {arch['layers']}x{arch['units']}; the run folder is inconsistent."
            )
        return engine

    def with_window(self, window: int | None) -> "Engine":
        """The same weights (shared, not copied) read with another window, or statefully (None)."""
        twin = Engine.__new__(Engine)
        twin.__dict__.update(self.__dict__)
        twin.window = check_window(window, "window")
        return twin

    def stateful(self) -> "Engine":
        """The same weights run statefully: what one window is, from its zero state."""
        return self.with_window(None)

    def zero_carry(self, batch: int = 1) -> Carry:
        rows = batch * (self.window or 1)
        z = lambda: np.zeros((rows, self.units), np.float32)
        return Carry([z() for _ in range(self.layers)], [z() for _ in range(self.layers)])

    # ------------------------------------------------------------ one step (sampling)

    def step(self, ids: np.ndarray, carry: Carry, clamp=None) -> np.ndarray:
        """Feed one character per row; update `carry` in place; return logits (B, V).

        clamp: optional (layer, kind, cell, value) with kind "h" or "c": that cell is held at
        `value` at every step, an intervention to see what the cell does to the output.
        """
        if self.window:  # one step of every window in the ring
            held = None if clamp is None else (clamp[0], clamp[1], [[clamp[2]]], [[clamp[3]]])
            logits, _, moved = self.forward(np.asarray(ids)[:, None], carry, record=(), clamp=held)
            carry.h, carry.c, carry.t = moved.h, moved.c, moved.t
            return logits[:, 0]
        U = self.units
        x = None
        for l in range(self.layers):
            h, c = carry.h[l], carry.c[l]
            z = h @ self.R[l]
            z += self.table0[ids] if l == 0 else x @ self.K[l] + self.b[l]
            a = np.tanh(z, out=z)  # (B, 4U): i, f, o as tanh(x/2); g as tanh(x)
            ifo = a[:, : 3 * U]
            ifo *= 0.5
            ifo += 0.5
            o = a[:, 2 * U : 3 * U]
            c *= a[:, U : 2 * U]
            c += a[:, :U] * a[:, 3 * U :]
            if clamp is not None and clamp[0] == l and clamp[1] == "c":
                c[:, clamp[2]] = clamp[3]
            np.multiply(o, np.tanh(c), out=h)
            if clamp is not None and clamp[0] == l and clamp[1] == "h":
                h[:, clamp[2]] = clamp[3]
            x = h
        return x @ self.Wd + self.bd

    # ------------------------------------------------------------ whole sequences (inspection)

    def forward(self, ids: np.ndarray, carry: Carry | None = None, record=("h",), layers=None, dtype=np.float32,
                progress=None, clamp=None, inputs=None, logits=True):
        """Run (B, T) ids through the model, layer by layer.

        Returns (logits (B, T, V), records, carry) where records[(layer, kind)] is (B, T, units)
        of `dtype` for every kind in `record` and every layer in `layers` (default: all). `carry`
        is carried: pass the returned one to the next call to continue the same text.
        Memory: the input projection is made BLOCK steps at a time, so besides the records the
        pass holds one layer's outputs, (T, B, units) float32, not (T, B, 4 x units).
        progress: optional callable, given the fraction of the pass done after each block.
        clamp: optional (layer, kind, cells, values), kind "h" or "c": at every step, row b's cells
          cells[b] are held at values[b] (arrays of shape (B, k), or (1, k) for every row alike),
          an ablation. Each row may hold different cells: one batch runs many ablations.
        inputs: optional (first layer, x): start at that layer, x (T, 1 or B, units) being the
          output of the layer below for these steps (rows that share it are computed once); for
          the first layer, x is the input embeddings (T, B, embedding) instead of ids' rows.
        logits: False when the caller needs no logits: the pass then stops after the highest layer
          in `layers` (a layer-1 question skips the layers above it), returns None for the logits,
          and the carry of the layers it skipped as it was given.
        """
        if self.window:
            if inputs is not None:
                raise ValueError("a windowed engine computes every layer itself: inputs are for stateful runs")
            return self._forward_windowed(ids, carry, record, layers, dtype, progress, clamp, logits)
        ids = np.asarray(ids)
        B, T = ids.shape
        U = self.units
        carry = carry.copy() if carry is not None else self.zero_carry(B)
        layers = range(self.layers) if layers is None else layers
        records = {}
        first, x = inputs if inputs is not None else (0, None)  # x: (T, B, U), time-major: each step
        gate_at = {"i": slice(0, U), "f": slice(U, 2 * U), "o": slice(2 * U, 3 * U), "g": slice(3 * U, 4 * U)}
        held_layer = held_kind = None  # reads and writes one contiguous block
        if clamp is not None:
            held_layer, held_kind, cells, values = clamp
            cells = np.atleast_2d(np.asarray(cells))  # (1 or B, k)
            if len(cells) not in (1, B):
                raise ValueError(f"clamp has {len(cells)} rows of cells for {B} rows of text")
            values = np.asarray(values, np.float32).reshape(len(cells), -1)
            held_rows = np.arange(B)[:, None]
            held_cells = np.broadcast_to(cells, (B, cells.shape[1]))
            held_values = np.broadcast_to(values, (B, cells.shape[1]))
        top = self.layers - 1 if logits else max(layers, default=self.layers - 1)
        for l in range(first, top + 1):
            want = [k for k in record if l in layers]
            H = np.empty((T, B, U), np.float32)
            rec = {k: np.empty((T, B, U), dtype) for k in want if k != "h"}
            h, c = carry.h[l].copy(), carry.c[l].copy()
            R = self.R[l]
            z = np.empty((B, 4 * U), np.float32)
            for t0 in range(0, T, BLOCK):
                # (steps, B, 4U): this block's input projection, a row lookup for layer 0
                zin = self.table0[ids.T[t0 : t0 + BLOCK]] if x is None else x[t0 : t0 + BLOCK] @ self.K[l] + self.b[l]
                for t in range(t0, t0 + len(zin)):
                    np.dot(h, R, out=z)
                    z += zin[t - t0]
                    a = np.tanh(z, out=z)  # i, f, o as tanh(x/2); g as tanh(x)
                    ifo = a[:, : 3 * U]
                    ifo *= 0.5
                    ifo += 0.5
                    c *= a[:, U : 2 * U]
                    c += a[:, :U] * a[:, 3 * U :]
                    if held_layer == l and held_kind == "c":
                        c[held_rows, held_cells] = held_values
                    np.tanh(c, out=H[t])
                    H[t] *= a[:, 2 * U : 3 * U]
                    if held_layer == l and held_kind == "h":
                        H[t][held_rows, held_cells] = held_values
                    h = H[t]
                    for k, arr in rec.items():
                        arr[t] = c if k == "c" else a[:, gate_at[k]]
                if progress is not None:
                    progress(((l - first) * T + t0 + len(zin)) / ((top + 1 - first) * T))
            carry.h[l], carry.c[l] = h.copy(), c
            if "h" in want:
                records[(l, "h")] = (H if dtype == np.float32 else H.astype(dtype)).transpose(1, 0, 2)
            for k, v in rec.items():
                records[(l, k)] = v.transpose(1, 0, 2)
            x = H
        if not logits:
            return None, records, carry
        return (x @ self.Wd + self.bd).transpose(1, 0, 2), records, carry  # logits (B, T, V)

    def _forward_windowed(self, ids, carry, record, layers, dtype, progress, clamp, logits):
        """forward() for a windowed engine: what row b gives at step t is the value of a zero
        state run over ids[b, t - W + 1 : t + 1] (over ids[b, : t + 1] near the start).

        A ring of W windows per row runs step by step, every window reading the same character:
        at each step the slot whose window starts there is zeroed, all W windows take one step
        (one (B * W, units) matrix product per layer), and the slot whose window is W long (the
        oldest) is read. So a 1,000-character text is W batched steps per character, not 1,000
        separate passes; the cost is W times a stateful pass's, the price of the zero state.
        The ring is the carry: pass it on to continue the text exactly (with logits=False, the
        windows of the layers above `layers` are not stepped, and the carry's are then stale).
        """
        ids = np.asarray(ids)
        B, T = ids.shape
        U, W = self.units, self.window
        carry = carry.copy() if carry is not None else self.zero_carry(B)
        if carry.h[0].shape[0] != B * W:
            raise ValueError(f"the carry holds {carry.h[0].shape[0]} windows, not {B} rows of {W}")
        layers = list(range(self.layers)) if layers is None else list(layers)
        top = self.layers - 1 if logits else max(layers, default=self.layers - 1)
        want = {l: list(record) for l in layers if l <= top}
        gate_at = {"i": slice(0, U), "f": slice(U, 2 * U), "o": slice(2 * U, 3 * U), "g": slice(3 * U, 4 * U)}
        records = {(l, k): np.empty((B, T, U), dtype) for l, ks in want.items() for k in ks}
        top_h = np.empty((B, T, U), np.float32) if logits else None
        held = None
        if clamp is not None:
            held_layer, held_kind, cells, values = clamp
            cells = np.atleast_2d(np.asarray(cells))
            if len(cells) not in (1, B):
                raise ValueError(f"clamp has {len(cells)} rows of cells for {B} rows of text")
            values = np.asarray(values, np.float32).reshape(len(cells), -1)
            # every window of row b holds row b's cells
            per = lambda a: np.repeat(np.broadcast_to(a, (B, a.shape[1])), W, axis=0)
            held = (held_layer, held_kind, np.arange(B * W)[:, None], per(cells), per(values))
        h = [carry.h[l].reshape(B, W, U) for l in range(self.layers)]
        c = [carry.c[l].reshape(B, W, U) for l in range(self.layers)]
        z = np.empty((B, W, 4 * U), np.float32)
        z2 = z.reshape(B * W, 4 * U)
        for step in range(T):
            t = carry.t + step
            start, read = t % W, (0 if t < W - 1 else (t + 1) % W)  # the slot that starts; the slot read
            x = None
            for l in range(top + 1):
                hl, cl = h[l], c[l]
                hl[:, start] = 0.0
                cl[:, start] = 0.0
                hf = hl.reshape(B * W, U)
                np.dot(hf, self.R[l], out=z2)
                if l == 0:
                    z += self.table0[ids[:, step]][:, None, :]
                else:
                    z2 += x @ self.K[l]
                    z2 += self.b[l]
                a = np.tanh(z, out=z)
                ifo = a[..., : 3 * U]
                ifo *= 0.5
                ifo += 0.5
                cl *= a[..., U : 2 * U]
                cl += a[..., :U] * a[..., 3 * U :]
                cf = cl.reshape(B * W, U)
                if held is not None and held[0] == l and held[1] == "c":
                    cf[held[2], held[3]] = held[4]
                np.tanh(cl, out=hl)
                hl *= a[..., 2 * U : 3 * U]
                if held is not None and held[0] == l and held[1] == "h":
                    hf[held[2], held[3]] = held[4]
                for k in want.get(l, ()):
                    src = cl if k == "c" else hl if k == "h" else a[..., gate_at[k]]
                    records[(l, k)][:, step] = src[:, read]
                if l == top and top_h is not None:
                    top_h[:, step] = hl[:, read]
                x = hf
            if progress is not None and ((step + 1) % BLOCK == 0 or step == T - 1):
                progress((step + 1) / T)
        out = Carry([x.reshape(B * W, U) for x in h], [x.reshape(B * W, U) for x in c], carry.t + T)
        if not logits:
            return None, records, out
        return top_h @ self.Wd + self.bd, records, out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=-1, keepdims=True)
    z = logits - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


@dataclass
class Inspection:
    """Everything the model did over one text. Arrays are indexed by character position t."""

    text: str
    activations: dict = field(default_factory=dict)  # (layer, kind) -> (T, units)
    top_ids: np.ndarray = None  # (T, k) most likely next characters after position t
    top_probs: np.ndarray = None  # (T, k)
    surprisal_bits: np.ndarray = None  # (T,) -log2 p(text[t] | text[:t]); NaN at t = 0
    prob: np.ndarray = None  # (T,) p(text[t] | text[:t]); NaN at t = 0

    def values(self, layer: int, kind: str) -> np.ndarray:
        return self.activations[(layer, kind)]


def iter_inspect(engine: Engine, text: str, record=KINDS, layers=None, top_k: int = 5, chunk_len: int = 2000,
                 dtype=np.float32):
    """Yield (start, Inspection) chunk by chunk, passing the carry on: memory stays bounded for long texts.
    Recorded activations are of `dtype` (float16 halves a cache's memory)."""
    ids = engine.vocab.encode(text, "text")
    carry = engine.zero_carry(1)
    prev_logp = None  # log-probs after the last character of the previous chunk
    for start in range(0, len(ids), chunk_len):
        chunk = ids[start : start + chunk_len]
        logits, records, carry = engine.forward(chunk[None, :], carry, record, layers, dtype)
        logp = log_softmax(logits[0].astype(np.float64))  # (T, V): next-char log-probs after each t
        k = min(top_k, logp.shape[1])
        top = np.argsort(-logp, axis=1)[:, :k]
        out = Inspection(text[start : start + len(chunk)])
        out.activations = {key: v[0] for key, v in records.items()}
        out.top_ids = top
        out.top_probs = np.exp(np.take_along_axis(logp, top, axis=1))
        # surprisal of character t uses the prediction made at t - 1
        lp = np.full(len(chunk), np.nan)
        lp[1:] = logp[np.arange(len(chunk) - 1), chunk[1:]]
        if prev_logp is not None:
            lp[0] = prev_logp[chunk[0]]
        out.prob = np.exp(lp)
        out.surprisal_bits = -lp / LN2
        prev_logp = logp[-1]
        yield start, out


def inspect(engine: Engine, text: str, record=KINDS, layers=None, top_k: int = 5, chunk_len: int = 2000,
            dtype=np.float32) -> Inspection:
    """Inspect a whole text; see iter_inspect for a bounded-memory stream."""
    parts = [p for _, p in iter_inspect(engine, text, record, layers, top_k, chunk_len, dtype)]
    out = Inspection(text)
    if not parts:
        return out
    out.activations = {key: np.concatenate([p.activations[key] for p in parts]) for key in parts[0].activations}
    out.top_ids = np.concatenate([p.top_ids for p in parts])
    out.top_probs = np.concatenate([p.top_probs for p in parts])
    out.surprisal_bits = np.concatenate([p.surprisal_bits for p in parts])
    out.prob = np.concatenate([p.prob for p in parts])
    return out


def bits_per_char(engine: Engine, text: str, chunk_len: int = 4000, progress=None) -> float:
    """Bits per character: for a stateful engine, zero carry at the first character, carried to
    the end, the mean over characters 2..T (the first has no prediction). For a windowed engine
    (window W), character t is scored from the W characters before it, and the first W
    characters, which have fewer, are left out.
    progress: optional callable, given the number of characters done after each chunk.
    """
    total, n = 0.0, 0
    skip = engine.window or 1
    if len(text) <= skip:
        raise CharModelError(f"the text has {len(text)} characters; scoring windows of {skip} needs more than {skip}.")
    for start, part in iter_inspect(engine, text, record=(), top_k=1, chunk_len=chunk_len):
        s = part.surprisal_bits[max(0, skip - start):]
        s = s[~np.isnan(s)]
        total += float(s.sum())
        n += len(s)
        if progress is not None:
            progress(start + len(part.text))
    return total / max(n, 1)
