"""The background of an explanation: a cell's mean after the last one to three characters.

What any model of text knows from the characters at hand, fitted per cell on the fit part: its
mean after each current character (the profile), then the mean of what that leaves after each run
of the last two characters, then after each run of three (a table of runs, `contexts` by code),
each shrunk toward nothing where the run is rare (n / (n + CONTEXT_PRIOR) of it for a run seen n
times) and left out where it is rarer than MIN_CONTEXT. It is a table of thousands of numbers per
cell, so it is never an explanation: it is what an explanation's phrase is measured beyond
(context_r, beyond_r in explain.py) and the zero point of replacement (replace.py). NumPy only.
"""

import numpy as np

from charmodel.analysis.stats import pearson, per_char_means

CONTEXT_CHARS = 3  # the background reaches back to the last this many characters...
MIN_CONTEXT = 5  # ...through the runs of 2 to CONTEXT_CHARS characters seen at least this often in the fit part,
CONTEXT_PRIOR = 3  # each seen n times getting n / (n + CONTEXT_PRIOR) of the mean of what is left after it


def context_codes(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """(len(ids), CONTEXT_CHARS - 1) int64: at each position of a text read as vocabulary ids (-1: a
    character outside the vocabulary), the code of its last 2, 3, ... CONTEXT_CHARS characters, read
    in base vocab_size + 1 from ids + 1 so that runs of different lengths never share a code; -1
    where the text is shorter than the run or the run holds a character outside the vocabulary."""
    ids = np.asarray(ids, np.int64)
    out = np.full((len(ids), CONTEXT_CHARS - 1), -1, np.int64)
    code, ok = ids + 1, ids >= 0
    for length in range(2, CONTEXT_CHARS + 1):
        back = length - 1
        prev = np.concatenate([np.full(back, -1), ids[:-back]])[: len(ids)]
        code = code + (prev + 1) * (vocab_size + 1) ** back
        ok = ok & (prev >= 0)
        out[:, length - 2] = np.where(ok, code, -1)
    return out


def context_text(code: int, vocab: str) -> str:
    """The run of characters a context code stands for."""
    out = ""
    while code:
        code, digit = divmod(code, len(vocab) + 1)
        out = vocab[digit - 1] + out
    return out


def context_columns(contexts, codes) -> np.ndarray:
    """Each code's column in `contexts` (sorted codes), -1 where it is not among them."""
    contexts, codes = np.asarray(contexts, np.int64), np.asarray(codes, np.int64)
    if not len(contexts):
        return np.full(codes.shape, -1)
    j = np.minimum(np.searchsorted(contexts, codes), len(contexts) - 1)
    return np.where((contexts[j] == codes) & (codes >= 0), j, -1)


def values(profile, context_profile, chars, columns, cols: slice) -> np.ndarray:
    """(n, cells of cols) float32: the profile at each row's character, plus the corrections of the
    runs that end there (columns: (n, CONTEXT_CHARS - 1), -1 where a run has none)."""
    out = np.asarray(profile[cols], np.float32).T[chars]
    if context_profile is not None:
        table = np.asarray(context_profile[cols], np.float32).T
        for level in range(columns.shape[1]):
            seen = columns[:, level] >= 0
            out[seen] += table[columns[seen, level]]
    return out


def quantised(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 (N, K), scale (N,) float32): each row in steps of its largest |value| / 127, as the
    atlas file stores the runs' table (compressed, under half of float16's size: 3.5 MB against 8.2 for Alice)."""
    scale = (np.abs(table).max(axis=1) / 127 if table.shape[1] else np.zeros(len(table))).astype(np.float32)
    return np.round(table / np.where(scale > 0, scale, 1)[:, None]).astype(np.int8), scale


def dequantised(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * np.asarray(scale, np.float32)[:, None]


def fit(fit_x, fit_chars, fit_codes, vocab_size: int, block: int = 256):
    """(profile (N, V) float32, contexts (K,) the codes of the runs kept, context_profile (N, K)
    float32 as the atlas file keeps it (quantised), fit r (N,) of exactly that) for N columns of
    fit_x (n, N): fit_chars (n,) ids, fit_codes (n, CONTEXT_CHARS - 1) context_codes at each row."""
    profile = per_char_means(fit_x, fit_chars, vocab_size).T
    codes, counts = np.unique(fit_codes[fit_codes >= 0], return_counts=True)
    contexts = codes[counts >= MIN_CONTEXT]
    columns = context_columns(contexts, fit_codes)
    levels = []  # per run length: its rows, ordered by run, and the runs' columns, counts and first rows
    for level in range(columns.shape[1]):
        seen = np.flatnonzero(columns[:, level] >= 0)
        order = seen[np.argsort(columns[seen, level], kind="stable")]
        which, starts, n = np.unique(columns[order, level], return_index=True, return_counts=True)
        levels.append((seen, order, which, starts, n))
    N = fit_x.shape[1]
    out, fit_r = np.zeros((N, len(contexts)), np.float32), np.full(N, np.nan)
    for j in range(0, N, block):
        cols = slice(j, min(j + block, N))
        x = np.asarray(fit_x[:, cols], np.float32)
        pred = values(profile, None, fit_chars, columns, cols)
        table = np.zeros((len(contexts), x.shape[1]), np.float32)
        for level, (seen, order, which, starts, n) in enumerate(levels):
            if len(order):
                sums = np.add.reduceat((x - pred)[order].astype(np.float64), starts, axis=0)
                table[which] = sums / (n[:, None] + CONTEXT_PRIOR)
                pred[seen] += table[columns[seen, level]]
        out[cols] = dequantised(*quantised(table.T))
        fit_r[cols] = pearson(values(profile, out, fit_chars, columns, cols), x)
    return profile.astype(np.float32), contexts, out, fit_r


def profile_values(profiles: np.ndarray, text: str, vocab_chars: str, contexts=None, context_profiles=None) -> np.ndarray:
    """(len(text), cells) float64: each cell's profile (cells, vocabulary) at each character of
    `text`; a character the vocabulary lacks gets the profile's average over the vocabulary. With
    contexts and context_profiles (cells, len(contexts)): plus the corrections of the runs of the
    last 2 to CONTEXT_CHARS characters that end at each position and have one."""
    index = {ch: i for i, ch in enumerate(vocab_chars)}
    ids = np.fromiter((index.get(ch, -1) for ch in text), np.int64, len(text))
    table = np.concatenate([np.asarray(profiles, np.float64), np.asarray(profiles, np.float64).mean(axis=1,
                                                                                                   keepdims=True)], axis=1)
    out = table[:, ids].T  # -1: the appended average
    if context_profiles is not None:
        columns = context_columns(contexts, context_codes(ids, len(vocab_chars)))
        table = np.asarray(context_profiles, np.float64)
        for level in range(columns.shape[1]):
            seen = columns[:, level] >= 0
            out[seen] += table[:, columns[seen, level]].T
    return out
