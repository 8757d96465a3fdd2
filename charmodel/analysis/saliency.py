"""Input attribution: which earlier characters drive a value (one cell's h or c at position t,
or the log-probability of the next character).

Three methods: occlusion (the default: each character replaced by a neutral one, all as one
batch), gradient x input, and integrated gradients, with gradients backpropagated through time
here in NumPy from the gates the engine records. Occlusion is the default because a latched cell
has small local gradients; docs/interpretability.md shows the check.
"""

import numpy as np

from charmodel.engine import Carry, Engine, log_softmax, softmax
from charmodel.errors import CharModelError

WINDOW = 200  # characters before and including the position
IG_STEPS = 64  # points on the path: on the Alice quotation cell 32 left a completeness error of 60% of the change, 64 of 6%
METHODS = ("occlusion", "gxi", "ig")
BLOCK = 20  # occlusion: steps per block; a row joins the batch at the block holding its replacement


def neutral_char(engine: Engine, text: str) -> str:
    """The replacement and baseline: the most frequent character of `text` (the run's corpus, where
    known) that is not whitespace: 'e' for Alice. Not a space: a space inserts a word boundary, itself
    a strong signal, and on the quotation check below the letters next to the position then
    outrank the quotation mark that switched the cell on (rank 4 with a space, 1 with 'e')."""
    counts = {ch: text.count(ch) for ch in set(text) if not ch.isspace() and ch in engine.vocab.index}
    if not counts:
        return " " if " " in engine.vocab.index else engine.vocab.chars[0]
    return max(sorted(counts), key=counts.get)


def _check(engine: Engine, ids: np.ndarray, position: int, target: dict, window: int) -> None:
    if not 0 <= position < len(ids):
        raise CharModelError(f"position {position} is outside the text (0–{len(ids) - 1}).")
    if not 1 <= window <= len(ids):
        raise CharModelError(f"the window must be 1–{len(ids)} characters (the text's length), not {window}.")
    if target.get("next"):
        if position + 1 >= len(ids):
            raise CharModelError(f"position {position} is the text's last character: there is no next character "
                                 "to explain; pick an earlier position.")
        return
    if target["kind"] not in ("h", "c"):
        raise CharModelError(f"kind {target['kind']!r} cannot be attributed; choose h or c.")
    if not 0 <= target["layer"] < engine.layers:
        raise CharModelError(f"layer {target['layer'] + 1} does not exist; this model has layers 1–{engine.layers}.")
    if not 0 <= target["cell"] < engine.units:
        raise CharModelError(f"cell {target['cell']} does not exist; this model has cells 0–{engine.units - 1}.")


def carry_before(engine: Engine, ids: np.ndarray, start: int) -> Carry:
    """The carry after reading ids[:start] from a zero state."""
    if start == 0:
        return engine.zero_carry(1)
    _, _, carry = engine.forward(ids[None, :start], record=())
    return carry


def _last(logits):
    """The last step's logits (B, V), or None for a pass that computed none (a cell's target)."""
    return None if logits is None else logits[:, -1]


def _rows(carry: Carry, rows: int) -> Carry:
    return Carry([np.repeat(h, rows, axis=0) for h in carry.h], [np.repeat(c, rows, axis=0) for c in carry.c])


def _value(engine: Engine, logits_last, records, target: dict, next_id) -> np.ndarray:
    """Target per row at the window's last step: logits_last (B, V), records from forward."""
    if target.get("next"):
        return log_softmax(logits_last)[:, next_id]
    return records[(target["layer"], target["kind"])][:, -1, target["cell"]]


def occlusion(engine: Engine, ids: np.ndarray, position: int, target: dict, window: int, neutral: int,
              carry: Carry | None = None) -> tuple[np.ndarray, float]:
    """(occlusion scores for ids[start : position + 1], the target) (see the module docstring).
    carry: the carry before the window, if already known."""
    start = max(0, position - window + 1)
    W = position - start + 1
    batch = np.tile(ids[start : position + 1], (W + 1, 1))  # row 0 the original, row r replaces character r - 1
    batch[np.arange(1, W + 1), np.arange(W)] = neutral
    carry = _rows(carry_before(engine, ids, start) if carry is None else carry, W + 1)
    record = () if target.get("next") else (target["kind"],)
    layers = [] if target.get("next") else [target["layer"]]
    values = None
    for a in range(0, W, BLOCK):
        b = min(a + BLOCK, W)
        active = min(b, W) + 1  # rows 0..b: their replacement is before b (rows after it still equal row 0)
        part = Carry([h[:active] for h in carry.h], [c[:active] for c in carry.c])
        logits, rec, part = engine.forward(batch[:active, a:b], part, record=record, layers=layers,
                                           logits=bool(target.get("next")))
        for l in range(engine.layers):
            carry.h[l][:active], carry.c[l][:active] = part.h[l], part.c[l]
            carry.h[l][active:], carry.c[l][active:] = part.h[l][0], part.c[l][0]
        if b == W:
            values = _value(engine, _last(logits), rec, target, ids[position + 1] if target.get("next") else None)
    return values[0] - values[1:], float(values[0])


def _backward(engine: Engine, rec: dict, carry: Carry, target: dict, logits_last, next_id) -> np.ndarray:
    """d target / d input embeddings, (B, W, embedding), backpropagated through time from the
    records of a forward pass (every kind of every layer up to the target's) that started at `carry`."""
    top = engine.layers - 1 if target.get("next") else target["layer"]
    B, W, U = rec[(0, "h")].shape
    dH = np.zeros((B, W, U), np.float32)  # the gradient arriving on each step's h from outside the layer
    dC = np.zeros((B, W, U), np.float32)
    if target.get("next"):
        p = softmax(logits_last)  # (B, V)
        p[:, next_id] -= 1
        dH[:, -1] = -(p @ engine.Wd.T)  # d log p(next) / d h = Wd (onehot - p)
    elif target["kind"] == "h":
        dH[:, -1, target["cell"]] = 1
    else:
        dC[:, -1, target["cell"]] = 1
    for l in range(top, -1, -1):
        i, f, o, g, c = (rec[(l, k)] for k in ("i", "f", "o", "g", "c"))
        c_prev = np.concatenate([carry.c[l][:, None], c[:, :-1]], axis=1)
        dz_i, dz_f, dz_o, dz_g = (np.empty((B, W, U), np.float32) for _ in range(4))
        dh_next = np.zeros((B, U), np.float32)
        dc_next = np.zeros((B, U), np.float32)
        dz = np.empty((B, 4 * U), np.float32)
        R_T = engine.R[l].T
        dzs = np.empty((B, W, 4 * U), np.float32)
        for t in range(W - 1, -1, -1):
            dh = dH[:, t] + dh_next
            tc = np.tanh(c[:, t])
            dc = dc_next + dC[:, t] + dh * o[:, t] * (1 - tc * tc)
            # engine order i, f, o, g, on the engine's pre-scaled pre-activations (sigmoid(x) = (1 + tanh(x/2)) / 2)
            dz[:, :U] = dc * g[:, t] * 2 * i[:, t] * (1 - i[:, t])
            dz[:, U : 2 * U] = dc * c_prev[:, t] * 2 * f[:, t] * (1 - f[:, t])
            dz[:, 2 * U : 3 * U] = dh * tc * 2 * o[:, t] * (1 - o[:, t])
            dz[:, 3 * U :] = dc * i[:, t] * (1 - g[:, t] * g[:, t])
            dc_next = dc * f[:, t]
            dh_next = dz @ R_T
            dzs[:, t] = dz
        dH = dzs @ engine.K[l].T  # (B, W, input): onto the layer below's h, or the embeddings
        dC = np.zeros_like(dH) if l else None
    return dH


def _kinds_pass(engine: Engine, rows, carry: Carry, target: dict, x=None):
    top = engine.layers - 1 if target.get("next") else target["layer"]
    return engine.forward(rows, carry, record=("h", "c", "i", "f", "o", "g"), layers=list(range(top + 1)),
                          inputs=None if x is None else (0, x), logits=bool(target.get("next")))


def gradient(engine: Engine, ids: np.ndarray, position: int, target: dict, window: int,
             carry: Carry | None = None) -> tuple[np.ndarray, int, float]:
    """(d target / d embeddings (W, embedding), window start, the target)."""
    start = max(0, position - window + 1)
    carry = carry_before(engine, ids, start) if carry is None else carry
    logits, rec, _ = _kinds_pass(engine, ids[None, start : position + 1], carry, target)
    next_id = ids[position + 1] if target.get("next") else None
    value = float(_value(engine, _last(logits), rec, target, next_id)[0])
    return _backward(engine, rec, carry, target, _last(logits), next_id)[0], start, value


def attribute(engine: Engine, text: str, position: int, target: dict, method: str = "occlusion",
              window: int | None = None, steps: int = IG_STEPS, corpus: str | None = None,
              carry: Carry | None = None) -> dict:
    """Scores for each character of the window ending at `position`.

    target: {"layer" (from 0), "kind", "cell"} or {"next": True}. corpus: the text the neutral
    character is chosen from (default: `text`). window: characters up to and including the
    position (default WINDOW, or the whole text when it is shorter; a larger one is refused). carry: the carry after text[:start], if known
    (carry_before computes it otherwise). Returns {start, chars, scores,
    target (its value), method, neutral} and, for ig, completeness (sum of scores minus the
    target's change from the baseline) and baseline (the target there)."""
    if method not in METHODS:
        raise CharModelError(f"method {method!r} is not one of {', '.join(METHODS)}.")
    if engine.attention is not None or engine.pads:
        raise CharModelError("attribution is not available for a model with an attention head over padded windows "
                             "(textgenrnn's) yet; its cells, atlas and ablations are.")
    ids = engine.vocab.encode(text, "the text")
    window = min(WINDOW, len(ids)) if window is None else window
    if engine.window:  # the value is its window's, from a zero state: attribute within that window
        window = min(window, engine.window)
    _check(engine, ids, position, target, window)
    if engine.window:
        first, start = max(0, position - engine.window + 1), max(0, position - window + 1)
        engine = engine.stateful()
        carry = engine.forward(ids[None, first:start], record=())[2] if start > first else engine.zero_carry(1)
    neutral = neutral_char(engine, text if corpus is None else corpus)
    nid = engine.vocab.index[neutral]
    start = max(0, position - window + 1)
    out = {"start": start, "chars": text[start : position + 1], "method": method, "neutral": neutral}
    if method == "occlusion":
        scores, value = occlusion(engine, ids, position, target, window, nid, carry)
    elif method == "gxi":
        grad, _, value = gradient(engine, ids, position, target, window, carry)
        scores = (grad * engine.emb[ids[start : position + 1]]).sum(axis=1)
    else:
        W = position - start + 1
        carry = carry_before(engine, ids, start) if carry is None else carry
        real = engine.emb[ids[start : position + 1]]  # (W, E)
        base = np.broadcast_to(engine.emb[nid], real.shape)
        alphas = np.concatenate([(np.arange(steps) + 0.5) / steps, [0.0, 1.0]]).astype(np.float32)
        x = (base[:, None] + alphas[None, :, None] * (real - base)[:, None]).astype(np.float32)  # (W, rows, E)
        rows = np.zeros((len(alphas), W), ids.dtype)
        logits, rec, _ = _kinds_pass(engine, rows, _rows(carry, len(alphas)), target, x)
        next_id = ids[position + 1] if target.get("next") else None
        grads = _backward(engine, rec, _rows(carry, len(alphas)), target, _last(logits), next_id)
        scores = ((real - base) * grads[:steps].mean(axis=0)).sum(axis=1)
        ends = _value(engine, _last(logits), rec, target, next_id)[steps:]  # at the baseline, at the text
        out["baseline"] = round(float(ends[0]), 5)
        out["completeness"] = round(float(scores.sum() - (ends[1] - ends[0])), 5)
        value = float(ends[1])
    out.update(scores=[round(float(s), 5) for s in scores], target=round(float(value), 5))
    return out


def rank_of(scores, index: int) -> int:
    """1 for the largest |score|: where character `index` of the window stands."""
    order = np.argsort(-np.abs(np.asarray(scores)), kind="stable")
    return int(np.flatnonzero(order == index)[0]) + 1
