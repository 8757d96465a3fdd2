"""Find interpretable cells automatically: hypotheses about the text, and cells ranked against them.

A hypothesis is a per-character signal computed from the text alone: binary (inside a quotation,
first character of a word, ...) or scalar (position in line). Every cell of every layer, for its
output h and its cell state c, is scored against it: ROC AUC for binary signals (both directions,
since a cell may be tuned negatively) and |Pearson r| for scalar ones.

Signals follow the states' convention: value t describes the text *after reading* character t. So
an opening quotation mark is already inside the quotation, and the closing mark is outside.
"""

import re
import string

import numpy as np

from charmodel.engine import Engine
from charmodel.errors import CharModelError

# ---------------------------------------------------------------- hypotheses

OPENERS = {"`": "'", "‘": "’", "“": "”"}  # Alice writes `like this'
AFTER_QUOTE_CHARS = 12  # "the few characters after a quotation closes": about two words
SENTENCE_END_WITHIN = 10  # "end of sentence coming": a . ! or ? within this many characters


def _in_word(text: str) -> np.ndarray:
    """Letters and digits, and an apostrophe right after a letter (don't, Alice's), decided from
    what came before as the model must: in "know' said" the apostrophe counts too, and the space
    after it ends the word."""
    a = np.array([ch.isalnum() for ch in text], dtype=bool)
    for m in re.finditer(r"(?<=[^\W\d_])['’]", text):
        a[m.start()] = True
    return a


def inside_quotation(text: str) -> np.ndarray:
    """1 from an opening mark up to (not including) its closing mark, decided at each character
    from the text read so far (causal).

    A backtick (or ‘ “) opens; the matching apostrophe (or ’ ”) closes. An apostrophe right after a
    letter may be the one in don't: it stays inside, and the next character decides: a letter
    continues the word and the quotation, anything else shows the apostrophe closed it (that
    character is outside). Straight double quotes toggle. A blank line ends any open quotation,
    as multi-paragraph quotations re-open in each paragraph.
    """
    out = np.zeros(len(text), dtype=bool)
    closer = None  # the mark that would close the current quotation
    pending = False  # an apostrophe after a letter: closing, unless a letter follows
    for t, ch in enumerate(text):
        if pending:
            pending = False
            if not (ch.isalpha()):
                closer = None
        if closer is None:
            if ch in OPENERS:
                closer = OPENERS[ch]
            elif ch == '"':
                closer = '"'
        elif ch == closer:
            if closer in "'’" and t > 0 and text[t - 1].isalpha():
                pending = True
            else:
                closer = None
                continue  # the closing mark is outside
        elif ch == "\n" and t > 0 and text[t - 1] == "\n":
            closer = None
        out[t] = closer is not None
    return out


def after_quotation(text: str, k: int = AFTER_QUOTE_CHARS) -> np.ndarray:
    """1 for the k characters after a quotation's closing mark."""
    inside = inside_quotation(text)
    out = np.zeros(len(text), dtype=bool)
    for t in np.flatnonzero(inside[:-1] & ~inside[1:]) + 1:  # t is the closing mark
        out[t + 1 : t + 1 + k] = True
    return out


def word_start(text: str) -> np.ndarray:
    w = _in_word(text)
    return w & ~np.concatenate([[False], w[:-1]])


def word_end(text: str) -> np.ndarray:
    w = _in_word(text)
    return w & ~np.concatenate([w[1:], [False]])


def inside_parentheses(text: str) -> np.ndarray:
    return pair_depth(text, "(", ")") > 0


def pair_depth(text: str, opener: str, closer: str, apostrophe: bool = False) -> np.ndarray:
    """Nesting depth of opener ... closer after reading each character, decided from the text read
    so far (causal); the closer counts as outside, an unmatched closer closes nothing. apostrophe:
    a closer right after a letter may be the apostrophe of don't, so it closes at the next
    character, and only if that is not a letter (as inside_quotation). A mark that both opens and
    closes toggles; quotation-like pairs end at a blank line (at its second newline)."""
    delta = np.zeros(len(text) + 1, dtype=np.int64)
    depth = 0
    for m in re.finditer("|".join(map(re.escape, sorted({opener, closer, "\n\n"}))), text):
        t, ch = m.start(), m.group()
        before, at = depth, t
        if ch == "\n\n":
            at = t + 1
            if opener == closer or closer in "'’”":  # quotation-like: a blank line ends it
                depth = 0
        elif opener == closer:
            depth = 1 - depth
        elif ch == opener:
            depth += 1
        elif depth and apostrophe and t > 0 and text[t - 1].isalpha():
            at = t + 1
            if t + 1 < len(text) and not text[t + 1].isalpha():
                depth -= 1
        elif depth:
            depth -= 1
        delta[at] += depth - before
    return np.cumsum(delta[:-1])


def line_position(text: str) -> np.ndarray:
    """Characters since the last newline (the newline itself is 0)."""
    out = np.zeros(len(text), dtype=np.float64)
    n = 0
    for t, ch in enumerate(text):
        n = 0 if ch == "\n" else n + 1
        out[t] = n
    return out


def sentence_end_coming(text: str, k: int = SENTENCE_END_WITHIN) -> np.ndarray:
    """1 where a . ! or ? comes within the next k characters."""
    out = np.zeros(len(text), dtype=bool)
    for m in re.finditer(r"[.!?]", text):
        out[max(0, m.start() - k) : m.start()] = True
    return out


def _chars(pred):
    return lambda text: np.array([pred(ch) for ch in text], dtype=bool)


FEATURES = {
    "quote": ("inside a quotation", inside_quotation),
    "after_quote": (f"the {AFTER_QUOTE_CHARS} characters after a quotation closes", after_quotation),
    "word_start": ("first character of a word", word_start),
    "word_end": ("last character of a word (known only from the next character)", word_end),
    "parens": ("inside parentheses", inside_parentheses),
    "line_position": ("position in line (characters since the last newline)", line_position),
    "capital": ("capital letter", _chars(str.isupper)),
    "vowel": ("vowel", _chars(lambda c: c in "aeiouAEIOU")),
    "whitespace": ("whitespace", _chars(str.isspace)),
    "punctuation": ("punctuation", _chars(lambda c: c in string.punctuation)),
    "digit": ("digit", _chars(str.isdigit)),
    "sentence_end": (f"a . ! or ? within the next {SENTENCE_END_WITHIN} characters", sentence_end_coming),
}
SCALAR = {"line_position"}
LOOKAHEAD = {"word_end", "sentence_end"}  # they read characters after the current one: hypotheses to rank cells by,
# never terms of an explanation (candidates.py)


def first_varying_feature(text: str) -> str:
    """The first built-in hypothesis that is not constant over `text` (quotation, where there are any)."""
    for name, (_, fn) in FEATURES.items():
        signal = fn(text)
        if name in SCALAR or 0 < signal.sum() < len(signal):
            return name
    return next(iter(FEATURES))


def feature(name: str, text: str) -> np.ndarray:
    if name not in FEATURES:
        raise CharModelError(f"unknown feature {name!r}; choose one of: {', '.join(FEATURES)}.")
    return FEATURES[name][1](text)


def regex_signal(pattern: str, text: str) -> np.ndarray:
    """1 for every character inside a match of `pattern`, matched line by line (re.MULTILINE:
    ^ and $ match at every line's start and end)."""
    try:
        rx = re.compile(pattern, re.MULTILINE)
    except re.error as e:
        raise CharModelError(f"regular expression {pattern!r} is invalid: {e}.") from None
    out = np.zeros(len(text), dtype=bool)
    for m in rx.finditer(text):
        out[m.start() : m.end()] = True
    return out


# ---------------------------------------------------------------- states, fast

def batched_activations(engine: Engine, text: str, kinds=("h", "c"), layers=None, piece: int = 700,
                   warmup: int = 300, group: int = 32, dtype=np.float32, progress=None) -> dict:
    """States of a long text, computed as batches of independent pieces.

    Row 0 runs text[0 : warmup + piece] from a zero state, exactly as a sequential pass would.
    Every later row reads the `warmup` characters before its piece first and keeps only the
    piece, so rows advance together: warmup + piece batched steps instead of len(text) single
    steps. Rows are run `group` at a time to bound memory. Cells with memory longer than
    `warmup` differ from the exact states; benchmarks/cells.py measures by how much. A windowed
    engine's values are exact: each is its own window's, so the text is one pass of its ring.
    Returns {(layer from 0, kind): (T, units) array of `dtype`}. progress: optional callable,
    given the fraction done as the work advances.
    """
    ids = engine.vocab.encode(text, "text")
    layers = list(range(engine.layers)) if layers is None else list(layers)
    out = {(l, k): np.empty((len(ids), engine.units), dtype) for l in layers for k in kinds}
    for start, stretch in iter_activations(engine, ids, kinds, layers, piece, warmup, group, dtype, progress):
        for key, v in stretch.items():
            out[key][start : start + len(v)] = v
    return out


def iter_activations(engine: Engine, ids: np.ndarray, kinds=("h", "c"), layers=None, piece: int = 700,
                     warmup: int = 300, group: int = 32, dtype=np.float32, progress=None):
    """batched_activations one group of rows at a time, for texts too long to hold whole: yields
    (start, {(layer, kind): (n, units)}) for consecutive stretches text[start : start + n] that
    together cover the text in order. Memory: one group's records, whatever the text's length."""
    T, R = len(ids), warmup + piece
    layers = list(range(engine.layers)) if layers is None else list(layers)
    if engine.window:  # exact already, and batched by its ring of windows: one pass, the ring carried on
        carry = None
        for start in range(0, T, piece):
            done = lambda f, start=start: progress((start + f * min(piece, T - start)) / T) if progress else None
            _, rec, carry = engine.forward(ids[None, start : start + piece], carry, record=kinds, layers=layers,
                                           dtype=dtype, progress=done, logits=False)
            yield start, {k: v[0] for k, v in rec.items()}
        return
    if T <= R:
        _, rec, _ = engine.forward(ids[None], record=kinds, layers=layers, dtype=dtype, progress=progress, logits=False)
        yield 0, {k: v[0] for k, v in rec.items()}
        return
    starts = [0] + list(range(R, T, piece))  # where each row's kept part begins
    rows = np.zeros((len(starts), R), dtype=ids.dtype)
    rows[0] = ids[:R]
    for b, s in enumerate(starts[1:], 1):
        chunk = ids[s - warmup : s + piece]
        rows[b, : len(chunk)] = chunk  # a short last row is padded at its end, which nothing reads
    for g in range(0, len(rows), group):
        done = lambda f, g=g: progress((g + f * len(rows[g : g + group])) / len(rows)) if progress else None
        _, rec, _ = engine.forward(rows[g : g + group], record=kinds, layers=layers, dtype=dtype, progress=done,
                                   logits=False)
        last = min(g + group, len(rows)) - 1
        end = min(T, R if last == 0 else starts[last] + piece)
        stretch = {}
        for key, v in rec.items():  # (B, R, U)
            kept = [v[0]] if g == 0 else []  # row 0 keeps all of its R characters...
            kept += [v[b, warmup:] for b in range(1 if g == 0 else 0, v.shape[0])]  # ...the others their piece
            stretch[key] = np.concatenate(kept)[: end - starts[g]]
            del kept
        del rec
        yield starts[g], stretch


# ---------------------------------------------------------------- ranking

AUC_BINS = 16384  # value bins per cell for the AUC; pairs inside one bin count as ties


def auc_columns(x: np.ndarray, positive: np.ndarray, bins: int = AUC_BINS, block: int = 256) -> np.ndarray:
    """ROC AUC of every column of x (T, N) for a boolean label (T,).

    Mann-Whitney from histograms: each column's range is cut into `bins` bins, and
    AUC = sum over bins of pos[b] * (neg below b + neg[b] / 2) / (n_pos * n_neg).
    Exact values that tie count as half, as usual; distinct values that share a bin also count as
    half, an error of at most the fraction of pairs in one bin (about 1e-4 in practice;
    tests/test_cells.py checks it against the exact pairwise count). One pass over the data
    instead of a sort per cell (benchmarks/cells.py times it).
    """
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise CharModelError("the signal is constant over this text (all 0 or all 1); pick a longer or different text.")
    out = np.empty(x.shape[1])
    label = positive.astype(np.int32)[:, None]  # (T, 1)
    for j in range(0, x.shape[1], block):
        xb = np.array(x[:, j : j + block], dtype=np.float32)  # a copy: scaled in place below
        n = xb.shape[1]
        lo, hi = xb.min(axis=0), xb.max(axis=0)
        xb -= lo
        xb *= ((bins - 1) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)
        q = np.rint(xb, out=xb).astype(np.int32)  # (T, n) bin of each value
        q += label * (n * bins)  # one histogram for both labels: [label, column, bin]
        q += np.arange(n, dtype=np.int32) * bins
        neg, pos = np.bincount(q.ravel(), minlength=2 * n * bins).reshape(2, n, bins)
        twice = np.cumsum(neg, axis=1)  # 2 * (neg below b) + neg[b], in integers
        twice *= 2
        twice -= neg
        out[j : j + n] = np.einsum("ij,ij->i", pos, twice) / (2 * n_pos * n_neg)
    return out


def pearson_columns(x: np.ndarray, y: np.ndarray, block: int = 256) -> np.ndarray:
    """Pearson r of every column of x (T, N) with y (T,), in float64, `block` columns at a time
    (x may be a shared float16 array; only one block is ever converted)."""
    y = np.asarray(y, dtype=np.float64)
    y = (y - y.mean()) / (y.std() or 1.0)
    out = np.empty(x.shape[1])
    for j in range(0, x.shape[1], block):
        xc = np.asarray(x[:, j : j + block], dtype=np.float64)
        xc -= xc.mean(axis=0)
        sd = xc.std(axis=0)
        sd[sd == 0] = np.inf
        out[j : j + block] = (xc * y[:, None]).mean(axis=0) / sd
    return out


def rank_cells(activations: dict, signal: np.ndarray, top: int | None = None) -> list[dict]:
    """Score every cell of every (layer, kind) in `activations` against `signal`, best first.

    Each entry: layer (counted from 0, as everywhere in Python), kind, cell, score (AUC folded to >= 0.5, or |r|), direction
    (+1 if the cell is high where the signal is, -1 if low), metric ("auc" or "r").
    """
    binary = signal.dtype == bool
    out = []
    for (layer, kind), x in activations.items():  # x: (T, units), float32 or float16, never copied whole
        if binary:
            auc = auc_columns(x, signal)
            score, direction = np.maximum(auc, 1 - auc), np.where(auc >= 0.5, 1, -1)
        else:
            r = pearson_columns(x, signal)
            score, direction = np.abs(r), np.where(r >= 0, 1, -1)
        for cell in range(x.shape[1]):
            out.append({"layer": layer, "kind": kind, "cell": cell, "score": float(score[cell]),
                        "direction": int(direction[cell]), "metric": "auc" if binary else "r"})
    out.sort(key=lambda d: -d["score"])
    return out[:top] if top else out


def headline(engine: Engine, text: str, activations: dict | None = None) -> dict:
    """The run's headline cell: the best cell for the first built-in hypothesis `text` has
    (inside a quotation, where there are quotations), over `text` (a run's validation text).

    The one answer Home, Visualise and the model card show; `run.write_highlights` stores it.
    Returns the ranking's entry (layer counted from 0, kind, cell, score, direction, metric) plus
    the hypothesis's name and description. `activations`: batched_activations(engine, text), if at hand.
    """
    name = first_varying_feature(text)
    activations = batched_activations(engine, text) if activations is None else activations
    best = rank_cells(activations, feature(name, text), top=1)[0]
    return {**best, "feature": name, "description": FEATURES[name][0]}


def compare_texts(prime: str, a: str, b: str, top: int = 4) -> list[dict]:
    """What an intervention changed: for each yes/no hypothesis, the share of the new characters
    of `a` and of `b` (both generated after `prime`) where it holds, largest differences first.
    The prime is included when the signals are computed, so a quotation it opens counts."""
    out = []
    for name, (description, fn) in FEATURES.items():
        if name in SCALAR:
            continue
        share = [float(fn(prime + t)[len(prime):].mean()) if t else 0.0 for t in (a, b)]
        out.append({"feature": name, "description": description, "a": share[0], "b": share[1]})
    out.sort(key=lambda d: -abs(d["a"] - d["b"]))
    return out[:top]


def first_difference(a: str, b: str) -> int | None:
    """The first position where two texts differ (the shorter one's length if one extends the other)."""
    for t, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return t
    return None if len(a) == len(b) else min(len(a), len(b))


def signal_for(text: str, feature_name: str | None = None, regex: str | None = None) -> np.ndarray:
    if regex is not None:
        return regex_signal(regex, text)
    return feature(feature_name, text)

