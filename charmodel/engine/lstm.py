"""The NumPy engine: Keras' LSTM maths, stateful or windowed, with every internal value exposed.

Keras stores an LSTM's gates in the order i, f, g (candidate), o. One step is

    z = x @ K + h @ R + b
    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c = f * c + i * g
    h = o * tanh(c)

`lstm_step` writes it once; sampling, the stateful pass and the windowed pass all call it. Two
tricks keep it fast without changing the maths:
  * sigmoid(x) = 0.5 + 0.5 * tanh(x / 2), so the columns of the sigmoid gates are pre-scaled by
    1/2 and one tanh call covers all four gates;
  * the first layer's input projection is folded into the embedding table: x @ K + b becomes a row
    lookup, (vocab, 4 * units).

Two heads read the LSTMs: a Dense over the last layer's output (every model trained here), or
textgenrnn's attention: a softmax over the window's steps of x . w, where x is [embedding, every
layer's h] at that step, then the Dense over the weighted average of x (see `Attention`).

No TensorFlow here. Weights come from a run's .npz files, which hold plain arrays only.
"""

from dataclasses import dataclass

import numpy as np

from charmodel.engine.threads import pin_blas
from charmodel.errors import CharModelError
from charmodel.numbering import layer_index, layer_number  # noqa: F401 (the engine's users import them from here)
from charmodel.run import folder as runfolder
from charmodel.run.corpus import Vocab
from charmodel.run.handle import Run

KINDS = ("h", "c", "i", "f", "g", "o")  # what inspection can record per layer
BLOCK = 128  # steps whose input projection is computed at once (one matrix product per block)


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
    att: tuple | None = None  # an attention head's running (max, sum, weighted sum) per row or window

    def copy(self) -> "Carry":
        att = None if self.att is None else tuple(x.copy() for x in self.att)
        return Carry([x.copy() for x in self.h], [x.copy() for x in self.c], self.t, att)

    def repeat(self, rows: int) -> "Carry":
        """This carry of one row, for `rows` rows alike (a ring's W windows stay together per row)."""
        rep = lambda x: np.repeat(x[None], rows, axis=0).reshape(rows * len(x), *x.shape[1:])
        att = None if self.att is None else tuple(rep(x) for x in self.att)
        return Carry([rep(x) for x in self.h], [rep(x) for x in self.c], self.t, att)


EPSILON = 1e-7  # Keras' K.epsilon(), which textgenrnn's attention adds to its softmax's denominator


class Attention:
    """textgenrnn's head (its AttentionWeightedAverage): over the steps s of a window, x_s is
    [embedding, layer 1 h, ..., layer L h] at s and e_s = x_s . w; the head gives
    sum_s a_s x_s / (sum_s a_s + EPSILON) with a_s = exp(e_s - max e), and the Dense reads that.
    It is computed online, a step at a time, as a running max, sum and weighted sum per window
    (`add`), so the ring of windows carries it as it carries h and c."""

    def __init__(self, w: np.ndarray, embedding: int, units: int, layers: int):
        w = np.asarray(w, np.float64).reshape(-1)
        if len(w) != embedding + layers * units:
            raise CharModelError(f"the attention reads {len(w)} numbers per step, not the embedding's {embedding} "
                                 f"and {layers} x {units} LSTM outputs; the run folder is inconsistent.")
        self.w = w
        self.width = len(w)

    @staticmethod
    def blank(rows: int, width: int) -> tuple:
        return np.full(rows, -np.inf), np.zeros(rows), np.zeros((rows, width))

    def add(self, state: tuple, x: np.ndarray, reset=None) -> None:
        """One step of every row or window, in place: x (..., width), state's arrays (...,) (...,)
        (..., width). reset: an index of the rows or windows that start here (zeroed first)."""
        m, s, a = state
        if reset is not None:
            m[reset], s[reset], a[reset] = -np.inf, 0.0, 0.0
        e = x @ self.w
        top = np.maximum(m, e)
        old, new = np.exp(m - top), np.exp(e - top)
        s *= old
        s += new
        a *= old[..., None]
        a += new[..., None] * x
        m[...] = top

    @staticmethod
    def read(state: tuple, index=...) -> np.ndarray:
        """The weighted average of the rows or windows at `index`."""
        _, s, a = state
        return a[index] / (s[index] + EPSILON)[..., None]

    def weights(self, x: np.ndarray) -> np.ndarray:
        """(steps,) the weights a_s / (sum a + EPSILON) of one window's x (steps, width): which steps the head read."""
        e = x @ self.w
        a = np.exp(e - e.max())
        return a / (a.sum() + EPSILON)


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


GATE_ORDER = "ifog"  # the engine's column order (Keras' is i, f, g, o): the sigmoid gates side by side


def gate_columns(kind: str, units: int) -> slice:
    """Where gate `kind` (i, f, o or g) sits in the engine's (..., 4 * units) activations."""
    k = GATE_ORDER.index(kind)
    return slice(k * units, (k + 1) * units)


class Clamp:
    """An intervention, parsed once: (layer, kind, cells, values) with kind "h" or "c"; row b's
    cells[b] are held at values[b]. cells: (B, k), or (1, k) for every row alike. values: the same
    shape, held at every step; or (B or 1, T, k), one value per step and cell (a replacement, such
    as what an explanation predicts at each character), read at the step `at` last set.
    `repeat`: rows per row of text (a windowed pass's W windows all hold their row's cells)."""

    def __init__(self, clamp, rows: int, repeat: int = 1, steps: int | None = None):
        self.layer, self.kind, cells, values = clamp
        cells = np.atleast_2d(np.asarray(cells))  # (1 or B, k)
        if len(cells) not in (1, rows):
            raise ValueError(f"clamp has {len(cells)} rows of cells for {rows} rows of text")
        values = np.asarray(values, np.float32)
        self.per_step = values.ndim == 3
        if self.per_step:
            if values.shape[0] != len(cells) or values.shape[2] != cells.shape[1] or steps is not None and \
                    values.shape[1] != steps:
                raise ValueError(f"per-step clamp values {values.shape} do not fit {cells.shape} cells over {steps} steps")
            values = np.ascontiguousarray(values.transpose(1, 0, 2))  # (T, 1 or B, k): one step's rows together
            self.steps = np.repeat(np.broadcast_to(values, (len(values), rows, cells.shape[1])), repeat, axis=1)
            values = self.steps[0]
        else:
            values = values.reshape(len(cells), -1)
        per_row = lambda a: np.repeat(np.broadcast_to(a, (rows, a.shape[1])), repeat, axis=0)
        self.cells = per_row(cells)
        self.values = values if self.per_step else per_row(values)
        self.rows = np.arange(rows * repeat)[:, None]

    def at(self, t: int) -> None:
        """Hold step t's values from now on (a per-step clamp; nothing for a constant one)."""
        if self.per_step:
            self.values = self.steps[t]

    def hold(self, layer: int, kind: str, x: np.ndarray) -> None:
        if layer == self.layer and kind == self.kind:
            flat = x if x.ndim == 2 else x.reshape(len(self.rows), -1)  # a windowed pass's (B, W, U) ring
            assert np.shares_memory(flat, x), "the ring must be contiguous to be held in place"
            flat[self.rows, self.cells] = self.values


def clamps(clamp, rows: int, repeat: int = 1, steps: int | None = None) -> tuple[Clamp, ...] | None:
    """engine.forward's `clamp`, parsed once: None, one (layer, kind, cells, values), or a list of
    them (several layers and kinds held at once)."""
    if clamp is None:
        return None
    many = isinstance(clamp, list)
    return tuple(Clamp(c, rows, repeat, steps) for c in (clamp if many else [clamp]))


def lstm_step(z: np.ndarray, c: np.ndarray, h: np.ndarray, layer: int = 0, clamp=None) -> np.ndarray:
    """One LSTM step, in place. z: the pre-activations x @ K + h @ R + b, (..., 4U), columns i, f, o,
    g with the sigmoid gates pre-scaled by 1/2; it is overwritten by the gates' values and returned.
    c (..., U) is updated, h (..., U) receives the output; `clamp` (a tuple of Clamp, see clamps())
    holds its cells of this layer."""
    U = c.shape[-1]
    a = np.tanh(z, out=z)  # i, f, o as tanh(x/2); g as tanh(x)
    ifo = a[..., : 3 * U]
    ifo *= 0.5
    ifo += 0.5
    c *= a[..., U : 2 * U]
    c += a[..., :U] * a[..., 3 * U :]
    if clamp is not None:
        for held in clamp:
            held.hold(layer, "c", c)
    np.tanh(c, out=h)
    h *= a[..., 2 * U : 3 * U]
    if clamp is not None:
        for held in clamp:
            held.hold(layer, "h", h)
    return a


class Engine:
    """The model's maths over ids. `window`: None for a stateful run (the state is carried along
    the text), or W for a model trained on windows of W characters from a zero state: then the
    value at character t is that of a zero state run over the W characters ending at t, as the
    post computed it (see _forward_windowed). with_window() reads the same weights another way
    (evaluate does, to score a run both ways)."""

    def __init__(self, weights: dict, vocab: Vocab, window: int | None = None, padding: int | None = None,
                 start: int | None = None):
        """padding: the id a window is filled with before a text begins (textgenrnn's index 0): every
        text is then read after W - 1 of them, as textgenrnn pads its windows, and it is never
        sampled. start: the id every text begins with (textgenrnn's <s>): generation puts it before
        the prime, and with padding, each one read begins a new text (the windows start over from
        the padding, as textgenrnn reads each line of its training file as a text of its own)."""
        pin_blas()
        self.vocab = vocab
        self.window = check_window(window, "window")
        self.padding, self.start = padding, start
        self.pads = (self.window or 1) - 1 if padding is not None else 0  # ids of padding before a text
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
        self.Wd = np.ascontiguousarray(weights["dense_kernel"])  # (U, V); (E + L * U, V) after an attention head
        self.bd = np.ascontiguousarray(weights["dense_bias"])  # (V,)
        self.attention = None if "attention_W" not in weights else \
            Attention(weights["attention_W"], emb.shape[1], U, self.layers)
        reads = self.attention.width if self.attention else U
        if self.Wd.shape[0] != reads:
            raise CharModelError(f"the Dense layer reads {self.Wd.shape[0]} numbers, not the {reads} its head gives; "
                                 "the run folder is inconsistent.")
        if self.padding is not None and not (self.window and 0 <= self.padding < len(vocab)) or \
                self.start is not None and not 0 <= self.start < len(vocab):
            raise CharModelError("a padding id belongs to a windowed model, and it and the start id to its vocabulary; "
                                 "the run folder is inconsistent.")
        self._opening = None  # the carry after the padding, one row (computed once, see zero_carry)

    @property
    def readout(self) -> np.ndarray:
        """(U, V): the Dense's weights on the last layer's h (with an attention head, on its average)."""
        if self.attention is None:
            return self.Wd
        at = self.emb.shape[1] + (self.layers - 1) * self.units
        return self.Wd[at : at + self.units]

    @classmethod
    def load(cls, run, checkpoint: str | None = "best") -> "Engine":
        """The engine of a run's checkpoint ('best', 'latest', an epoch; None: the run's default).
        run: a Run, or its folder."""
        run = Run.of(run)
        checkpoint = checkpoint or run.default_checkpoint()
        weights = runfolder.load_weights_npz(run.checkpoint(checkpoint))
        arch = run.config.architecture
        missing = [k for k in weight_names(arch.layers) if k not in weights]
        if missing:
            raise CharModelError(
                f"checkpoint {checkpoint} of {run.path} lacks {', '.join(missing)}; the run folder is damaged."
            )
        if arch.head == "attention" and "attention_W" not in weights:
            raise CharModelError(f"checkpoint {checkpoint} of {run.path} lacks attention_W; the run folder is damaged.")
        engine = cls(weights, run.vocab, check_window(run.window, f"{run.path}'s window"), arch.padding, arch.start)
        if engine.layers != arch.layers or engine.units != arch.units:
            raise CharModelError(
                f"checkpoint {checkpoint} of {run.path} has {engine.layers}x{engine.units} weights but the "
                f"config says {arch.layers}x{arch.units}; the run folder is inconsistent."
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

    def blank_carry(self, batch: int = 1) -> Carry:
        """All zeros: the state of a window (or a stateful text) before its first character."""
        rows = batch * (self.window or 1)
        z = lambda: np.zeros((rows, self.units), np.float32)
        att = None if self.attention is None else Attention.blank(rows, self.attention.width)
        return Carry([z() for _ in range(self.layers)], [z() for _ in range(self.layers)], 0, att)

    def _restarts(self, ids: np.ndarray):
        """(B, T) bool: the steps whose id begins a new text (a padded model's start id), or None."""
        if self.start is None or not self.pads:
            return None
        found = ids == self.start
        return found if found.any() else None

    def _opening_rows(self, t: int) -> tuple:
        """The opening state (see zero_carry) of one row, as it stands before global step t: per layer
        h and c, and the head's state; a ring's slots turned to where step t finds them."""
        self.zero_carry(1)
        o = self._opening
        if not self.window:
            return o.h, o.c, o.att
        shift = (t - o.t) % self.window
        turn = lambda x: np.roll(x, shift, axis=0)
        return [turn(x) for x in o.h], [turn(x) for x in o.c], None if o.att is None else tuple(turn(x) for x in o.att)

    def window_reader(self) -> "Engine":
        """The same weights run statefully with no restarts: what reads one of `windows`' rows from
        a blank carry."""
        twin = self.stateful()
        twin.start = None
        return twin

    def windows(self, ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """(len(positions), W) for a padded model: the ids of the window each position is read from,
        from a blank state: the W ids ending there, the padding in place of what comes before the
        text's start or before the start id that begins its text (see __init__)."""
        W = self.window
        at = positions[:, None] - W + 1 + np.arange(W)
        first = np.zeros(len(positions), np.int64)
        if self.start is not None:
            starts = np.flatnonzero(ids == self.start)
            k = np.searchsorted(starts, positions, side="right") - 1
            first = np.where(k >= 0, starts[np.maximum(k, 0)], 0) if len(starts) else first
        return np.where(at >= first[:, None], ids[np.maximum(at, 0)], self.padding)

    def zero_carry(self, batch: int = 1) -> Carry:
        """The carry a text begins from: blank, or for a model with a padding id, after W - 1 of them
        (its every window is then W long, padded at the text's start as textgenrnn pads it)."""
        if self.padding is None:
            return self.blank_carry(batch)
        if self._opening is None or self._opening.h[0].shape[0] != (self.window or 1):
            pads = np.full((1, self.pads), self.padding)
            self._opening = self.forward(pads, self.blank_carry(1), record=())[2]
        return self._opening.repeat(batch)

    # ------------------------------------------------------------ one step (sampling)

    def step(self, ids: np.ndarray, carry: Carry, clamp=None) -> np.ndarray:
        """Feed one character per row; update `carry` in place; return logits (B, V).

        clamp: optional (layer, kind, cell, value) with kind "h" or "c": that cell is held at
        `value` at every step, an intervention to see what the cell does to the output.
        """
        held = None if clamp is None else (clamp[0], clamp[1], [[clamp[2]]], [[clamp[3]]])
        if self.window or self.attention:  # one step of every window in the ring, or of the head's average too
            logits, _, moved = self.forward(np.asarray(ids)[:, None], carry, record=(), clamp=held)
            carry.h, carry.c, carry.t, carry.att = moved.h, moved.c, moved.t, moved.att
            return logits[:, 0]
        held = clamps(held, len(ids))
        x = None
        for l in range(self.layers):
            z = carry.h[l] @ self.R[l]
            z += self.table0[ids] if l == 0 else x @ self.K[l] + self.b[l]
            lstm_step(z, carry.c[l], carry.h[l], l, held)
            x = carry.h[l]
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
          an ablation; or values (B or 1, T, k), one per step: a replacement. Each row may hold
          different cells: one batch runs many ablations. A list of such tuples holds them all.
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
        held = clamps(clamp, B, steps=T)
        columns = {k: gate_columns(k, U) for k in GATE_ORDER}
        top = self.layers - 1 if logits else max(layers, default=self.layers - 1)
        heads = self.attention is not None and logits
        if heads and first > 0:
            raise ValueError("an attention head reads every layer: inputs must start at the first")
        restarts = self._restarts(ids)
        opening = self._opening_rows(0) if restarts is not None else None
        seen = [np.broadcast_to(self.emb[ids.T] if x is None else x, (T, B, self.emb.shape[1]))] if heads else None
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
                    if held is not None:
                        for one in held:
                            one.at(t)
                    if restarts is not None and restarts[:, t].any():  # a new text: its state from the padding
                        rows = restarts[:, t]
                        h = np.where(rows[:, None], opening[0][l], h)
                        c[rows] = opening[1][l]
                    np.dot(h, R, out=z)
                    z += zin[t - t0]
                    a = lstm_step(z, c, H[t], l, held)
                    h = H[t]
                    for k, arr in rec.items():
                        arr[t] = c if k == "c" else a[:, columns[k]]
                if progress is not None:
                    progress(((l - first) * T + t0 + len(zin)) / ((top + 1 - first) * T))
            carry.h[l], carry.c[l] = h.copy(), c
            if "h" in want:
                records[(l, "h")] = (H if dtype == np.float32 else H.astype(dtype)).transpose(1, 0, 2)
            for k, v in rec.items():
                records[(l, k)] = v.transpose(1, 0, 2)
            x = H
            if heads:
                seen.append(H)
        if not logits:
            return None, records, carry
        if heads:
            x = self._attend(np.concatenate(seen, axis=2), carry.att, restarts, opening)
        return (x @ self.Wd + self.bd).transpose(1, 0, 2), records, carry  # logits (B, T, V)

    def _attend(self, x: np.ndarray, state: tuple, restarts, opening) -> np.ndarray:
        """A stateful pass's head: x (T, B, width), [embedding, every layer's h] at each step, is
        replaced by the head's running average over every step so far (state, the carry's, is
        updated), one step at a time; a row's state starts over where `restarts` says."""
        for t in range(len(x)):
            if restarts is not None and restarts[:, t].any():
                for mine, theirs in zip(state, opening[2]):
                    mine[restarts[:, t]] = theirs
            self.attention.add(state, x[t])
            x[t] = Attention.read(state)
        return x

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
        records = {(l, k): np.empty((B, T, U), dtype) for l, ks in want.items() for k in ks}
        heads = self.attention is not None and logits
        top_h = np.empty((B, T, self.attention.width if heads else U), np.float32) if logits else None
        att = tuple(x.reshape(B, W, *x.shape[1:]) for x in carry.att) if heads else None  # views of the carry's
        held = clamps(clamp, B, repeat=W, steps=T)  # row b's windows hold its cells
        restarts = self._restarts(ids)
        columns = {k: gate_columns(k, U) for k in GATE_ORDER}
        h = [carry.h[l].reshape(B, W, U) for l in range(self.layers)]
        c = [carry.c[l].reshape(B, W, U) for l in range(self.layers)]
        z = np.empty((B, W, 4 * U), np.float32)
        z2 = z.reshape(B * W, 4 * U)
        for step in range(T):
            t = carry.t + step
            start, read = t % W, (0 if t < W - 1 else (t + 1) % W)  # the slot that starts; the slot read
            if held is not None:
                for one in held:
                    one.at(step)  # every window holds the value of the character it reads now
            if restarts is not None and restarts[:, step].any():  # a new text: the row's windows from the padding
                rows = restarts[:, step]
                oh, oc, oatt = self._opening_rows(t)
                for l in range(self.layers):
                    h[l][rows], c[l][rows] = oh[l], oc[l]
                for mine, theirs in zip(att or (), oatt or ()):
                    mine[rows] = theirs
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
                a = lstm_step(z, cl, hl, l, held)
                for k in want.get(l, ()):
                    src = cl if k == "c" else hl if k == "h" else a[..., columns[k]]
                    records[(l, k)][:, step] = src[:, read]
                if l == top and top_h is not None and not heads:
                    top_h[:, step] = hl[:, read]
                x = hf
            if heads:  # every window's head takes the step; the window read gives its average
                seen = [np.broadcast_to(self.emb[ids[:, step]][:, None, :], (B, W, self.emb.shape[1]))]
                self.attention.add(att, np.concatenate(seen + h, axis=2), reset=(slice(None), start))
                top_h[:, step] = Attention.read(att, (slice(None), read))
            if progress is not None and ((step + 1) % BLOCK == 0 or step == T - 1):
                progress((step + 1) / T)
        out = Carry([x.reshape(B * W, U) for x in h], [x.reshape(B * W, U) for x in c], carry.t + T, carry.att)
        if not logits:
            return None, records, out
        return top_h @ self.Wd + self.bd, records, out
