"""Statistics over cells and signals, a block of columns at a time: ranks and AUC, moments,
Pearson r of many columns at once, means per character. NumPy only."""

import numpy as np

MIN_EVIDENCE = 30  # positive (and negative) characters a yes/no candidate needs in each part


AUC_BINS = 16384  # value bins per cell for ranks, as cells.auc_columns; pairs in one bin count as ties


def centred_ranks(x: np.ndarray, bins: int = AUC_BINS, block: int = 256) -> np.ndarray:
    """Per column of x (n, N): each value's midrank among the column's values (ties share the mean
    rank), minus the mean rank (n + 1) / 2. Values are binned as in cells.auc_columns. float32."""
    n, N = x.shape
    out = np.empty((n, N), dtype=np.float32)
    for j in range(0, N, block):
        xb = np.array(x[:, j : j + block], dtype=np.float32)
        m = xb.shape[1]
        lo, hi = xb.min(axis=0), xb.max(axis=0)
        xb -= lo
        xb *= ((bins - 1) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)
        q = np.rint(xb, out=xb).astype(np.int64) + np.arange(m) * bins  # (n, m) bin of each value
        counts = np.bincount(q.ravel(), minlength=m * bins).reshape(m, bins)
        mid = (np.cumsum(counts, axis=1) - counts + (counts + 1) / 2.0).ravel()  # each bin's midrank, 1-based
        out[:, j : j + m] = mid[q] - (n + 1) / 2.0
    return out


def scores(x: np.ndarray, signals: np.ndarray, metrics: np.ndarray, block: int = 512) -> np.ndarray:
    """(C, N) float64: AUC of every yes/no candidate, Pearson r of every number, for every column of
    x (n, N). signals: (n, C) float32, metrics: (C,) "auc" or "r". AUC = 0.5 + the sum over
    positives of the centred midrank / (n_pos n_neg): one matrix product for all candidates, `block`
    cells at a time (so only one block of ranks is ever held)."""
    n = len(x)
    out = np.full((signals.shape[1], x.shape[1]), np.nan)
    yes = np.flatnonzero(metrics == "auc")
    num = np.flatnonzero(metrics == "r")
    y = signals[:, yes]
    pos = y.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore"):
        scale = 1 / (pos * (n - pos))  # inf for a constant signal: its AUC is NaN below
    v = signals[:, num].astype(np.float64)
    v -= v.mean(axis=0)
    sd = v.std(axis=0)
    v = (v / np.where(sd > 0, sd, np.inf)).astype(np.float32)  # (n, C_num), standardised
    for j in range(0, x.shape[1], block):
        cols = slice(j, j + block)
        if len(yes):
            with np.errstate(invalid="ignore"):
                out[yes, cols] = 0.5 + (y.T @ centred_ranks(x[:, cols])) * scale[:, None]
        if len(num):
            c = np.asarray(x[:, cols], dtype=np.float64)
            c -= c.mean(axis=0)
            csd = c.std(axis=0)
            z = (c / np.where(csd > 0, csd, np.inf)).astype(np.float32)
            out[num, cols] = (v.T @ z) / n
    out[yes[~np.isfinite(scale)]] = np.nan
    out[num[sd == 0]] = np.nan
    return out


def eligible(signals: np.ndarray, metrics: np.ndarray, held_n: int) -> np.ndarray:
    """(C,) bool, from the fit part alone: a yes/no candidate needs MIN_EVIDENCE positives and
    negatives here, and as many expected in a held-out part of held_n characters at this rate; a
    number must vary."""
    n = len(signals)
    pos = signals.sum(axis=0)
    rate = pos / max(n, 1)
    yes = (np.minimum(pos, n - pos) >= MIN_EVIDENCE) & (np.minimum(rate, 1 - rate) * held_n >= MIN_EVIDENCE)
    return np.where(metrics == "auc", yes, signals.std(axis=0) > 0)


def moments(a: np.ndarray, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sd) float64 per column, `block` columns at a time (no float64 copy of the whole)."""
    mean, sd = np.empty(a.shape[1]), np.empty(a.shape[1])
    for j in range(0, a.shape[1], block):
        b = np.asarray(a[:, j : j + block], dtype=np.float64)
        mean[j : j + block] = b.mean(axis=0)
        sd[j : j + block] = b.std(axis=0)
    return mean, sd


def standardised(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z float32, mean, sd) per column; a constant column's z is 0."""
    mean, sd = moments(a)
    z = np.asarray(a, dtype=np.float32) - mean.astype(np.float32)
    z /= np.where(sd > 0, sd, np.inf).astype(np.float32)
    return z, mean, sd


def correlations(x: np.ndarray, signals: np.ndarray, block: int = 512) -> np.ndarray:
    """(C, N) float64 Pearson r of every signal (n, C) with every cell (n, N); 0 where either is
    constant. One matrix product, `block` cells at a time."""
    zs, _, _ = standardised(signals)
    out = np.empty((signals.shape[1], x.shape[1]))
    for j in range(0, x.shape[1], block):
        zx, _, _ = standardised(x[:, j : j + block])
        out[:, j : j + block] = (zs.T @ zx) / len(x)
    return out


def per_char_means(a: np.ndarray, chars: np.ndarray, vocab_size: int, block: int = 512) -> np.ndarray:
    """(vocab_size, columns) float32: each column's mean over the rows whose character is v (0 where
    none), `block` columns at a time."""
    counts = np.maximum(np.bincount(chars, minlength=vocab_size), 1)[:, None]
    out = np.zeros((vocab_size, a.shape[1]), np.float32)
    for j in range(0, a.shape[1], block):
        sums = np.zeros((vocab_size, min(block, a.shape[1] - j)))
        np.add.at(sums, chars, np.asarray(a[:, j : j + block], dtype=np.float64))
        out[:, j : j + block] = sums / counts
    return out


def pearson(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Column by column Pearson r of two (n, cols) arrays; NaN where either is constant."""
    p, x = p - p.mean(axis=0), x - x.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.einsum("ij,ij->j", p, x, dtype=np.float64) / np.sqrt(
            np.einsum("ij,ij->j", p, p, dtype=np.float64) * np.einsum("ij,ij->j", x, x, dtype=np.float64))
    return np.where(np.isfinite(out), out, np.nan)
