"""Stateful sampling with the NumPy engine: one step per character, constant cost per character.

The prime is fed once (layer by layer, as a sequence); then each new character costs one step
carrying (h, c). Compare the post's method, which re-read a 100-character window with
model.predict for every character.
"""

import numpy as np

from charmodel.engine.lstm import Engine, layer_number
from charmodel.errors import CharModelError

TEMPERATURE = 0.8  # the default everywhere: CLI, sidebar, per-epoch samples
SEED = 7  # the default everywhere: CLI and sidebar


def check_temperature(temperature: float) -> float:
    if not (0 <= temperature <= 10) or temperature != temperature:
        raise CharModelError(f"temperature {temperature} is out of range; use a value from 0 (greedy) to 10.")
    return float(temperature)


def default_prime(engine: Engine) -> str:
    """With no prime, start after a newline (or the first vocabulary character if there is none); a
    model whose texts begin with a start token (textgenrnn's <s>) starts after it."""
    if engine.start is not None:
        return engine.vocab.chars[engine.start]
    return "\n" if "\n" in engine.vocab.chars else engine.vocab.chars[0]


def full_prime(engine: Engine, prime: str) -> str:
    """What is fed before the first new character: the prime, or the default one; after the start
    token for a model whose texts begin with one, as textgenrnn puts <s> before its prefix."""
    first = default_prime(engine)
    if engine.start is not None and not prime.startswith(first):
        return first + prime
    return prime or first


def generate(
    engine: Engine,
    prime: str = "",
    length: int = 300,
    temperature: float = TEMPERATURE,
    seed: int = SEED,
    top_k: int | None = None,
    samples: int = 1,
    return_probs: bool = False,
    clamp: tuple | None = None,
):
    """Generate `samples` texts of `length` new characters after `prime`.

    temperature 0 is greedy argmax. The same seed gives the same text in any process.
    Returns a list of strings (the new characters only); with return_probs, also a (samples,
    length) array with the probability each chosen character had under the unscaled model.
    clamp: (layer counted from 0, "h" or "c", cell, value) holds one cell at a value while the new
    characters are generated (the prime is read unclamped).
    """
    temperature = check_temperature(temperature)
    if clamp is not None:
        layer, kind, cell, _ = clamp
        if not (0 <= layer < engine.layers and kind in ("h", "c") and 0 <= cell < engine.units):
            raise CharModelError(f"cannot clamp layer {layer_number(layer)} {kind} cell {cell}: no such cell in this "
                                 "model.")
    if length < 0:
        raise CharModelError(f"length {length} is negative; ask for 0 or more characters.")
    if samples < 1:
        raise CharModelError(f"samples {samples} must be at least 1.")
    if top_k is not None and top_k < 1:
        raise CharModelError(f"top-k {top_k} must be at least 1 (or unset for no limit).")
    ids = engine.vocab.encode(full_prime(engine, prime), "prime text")
    rng = np.random.default_rng(seed)

    # Feed all but the last prime character as a sequence; the last one starts the loop.
    carry = engine.zero_carry(samples)
    if len(ids) > 1:
        _, _, carry = engine.forward(np.repeat(ids[None, :-1], samples, axis=0), carry, record=())
    x = np.full(samples, ids[-1], dtype=np.intp)
    out = np.empty((samples, length), dtype=np.intp)
    chosen_p = np.empty((samples, length), dtype=np.float64) if return_probs else None
    rows = np.arange(samples)
    for t in range(length):
        logits = engine.step(x, carry, clamp).astype(np.float64)  # (B, V)
        if engine.padding is not None:  # padding is not a character: never chosen (textgenrnn refuses it too)
            logits[:, engine.padding] = -np.inf
        if temperature == 0:
            x = logits.argmax(axis=1)
        else:
            z = logits / temperature
            if top_k is not None and top_k < z.shape[1]:
                # keep only the top_k most likely characters
                kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
                z = np.where(z < kth, -np.inf, z)
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            cdf = np.cumsum(p, axis=1)
            u = rng.random(samples) * cdf[:, -1]
            x = (cdf < u[:, None]).sum(axis=1)  # searchsorted, row-wise
            np.minimum(x, cdf.shape[1] - 1, out=x)
        out[:, t] = x
        if return_probs:
            q = np.exp(logits - logits.max(axis=1, keepdims=True))
            chosen_p[:, t] = q[rows, x] / q.sum(axis=1)
    texts = [engine.vocab.decode(row) for row in out]
    return (texts, chosen_p) if return_probs else texts
