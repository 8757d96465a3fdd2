"""Whole texts through the engine: every recorded value, the next-character guesses, surprisal,
and bits per character."""

import math
from dataclasses import dataclass, field

import numpy as np

from charmodel.engine.lstm import KINDS, Engine
from charmodel.errors import CharModelError

LN2 = math.log(2)  # nats per bit: Keras' losses and log-probabilities are in nats, bpc in bits


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
    characters, which have fewer, are left out (unless the model pads its first windows, as
    textgenrnn's do: then every character but the first is scored).
    progress: optional callable, given the number of characters done after each chunk.
    """
    total, n = 0.0, 0
    skip = 1 if engine.pads else engine.window or 1  # a padded model's first windows are whole already
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


def attention_weights(engine: Engine, text: str, position: int) -> dict:
    """Which characters an attention head (textgenrnn's) read to predict the character after
    `position`: the weights of its window's steps. Returns {start, chars, weights (one per
    character of the window), padding (the weight on the padding before the text, a share),
    steps (the window's length)}."""
    if engine.attention is None:
        raise CharModelError("this model has no attention head; its prediction reads the last layer only.")
    ids = engine.vocab.encode(text, "the text")
    if not 0 <= position < len(ids):
        raise CharModelError(f"position {position} is outside the text (0 to {len(ids) - 1}).")
    if engine.pads:
        window = engine.windows(ids, np.array([position]))[0]
    else:  # the text so far, or the window ending at the position
        window = ids[max(0, position - (engine.window or position + 1) + 1) : position + 1]
    plain = engine.window_reader()
    _, rec, _ = plain.forward(window[None], plain.blank_carry(1), record=("h",), logits=False)
    x = np.concatenate([engine.emb[window]] + [rec[(l, "h")][0] for l in range(engine.layers)], axis=1)
    weights = engine.attention.weights(x)
    pads = int((window == engine.padding).sum()) if engine.pads else 0  # the padding comes first
    start = position + 1 - (len(window) - pads)
    return {"start": start, "chars": text[start : position + 1], "weights": weights[pads:],
            "padding": float(weights[:pads].sum()), "steps": len(window)}
