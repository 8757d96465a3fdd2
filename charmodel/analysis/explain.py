"""Explanations for cells, scored as automated interpretability does: the simulation score, the
Pearson r between what an explanation predicts and what the cell does, on text that played no
part in choosing it.

An explanation has up to MAX_TERMS terms from the candidates (candidates.py), chosen by forward
selection on the fit part; its prediction is the least-squares sum of the terms, and its group is
that of its first term, the strongest alone. The atlas's explanations (fourth edition) start from
the cell's character profile, its mean after each current character, which counts as one of the
MAX_TERMS: the other terms are chosen on what the profile leaves, so they say what moves the cell
beyond its character, and a cell the profile alone explains is grouped "current". Since the fifth
edition the profile reaches back to the last CONTEXT_CHARS characters: what profile and terms leave
after each run of the last two characters joins it, then what is left after each run of three,
each shrunk toward nothing where the run is rare (CONTEXT_PRIOR) and left out where it is rarer
than MIN_CONTEXT, so the background of the terms is the cell's mean after the last three characters.

Rare predicates win by chance, so a yes/no candidate
is eligible only with MIN_EVIDENCE positive and negative characters in the fit part (the held-out
text never decides eligibility). docs/atlas.md gives the reasoning; no TensorFlow here.
"""

from dataclasses import asdict

import numpy as np

from charmodel.analysis.candidates import (GRAMMARS, GROUPS, Candidate, library, masks, signal,  # noqa: F401
                                           signal_matrix)
from charmodel.analysis.predicates import line_bracket, string_marks, string_state  # noqa: F401

MIN_EVIDENCE = 30  # positive (and negative) characters a yes/no candidate needs in each part
EXPLAINED_R = 0.5  # a cell is explained when its explanation's held-out simulation r reaches this
MAX_TERMS = 4  # terms of one explanation, its character profile one of them
MIN_GAIN = 0.02  # a further term joins only if it raises the fit part's r by at least this
PREFER_NAMED = 0.01  # a named hypothesis wins a first term over a mechanical one at most this much higher in |r|
CONTEXT_CHARS = 3  # the profile reaches back to the last this many characters...
MIN_CONTEXT = 5  # ...through the runs of 2 to CONTEXT_CHARS characters seen at least this often in the fit part,
CONTEXT_PRIOR = 3  # each seen n times getting n / (n + CONTEXT_PRIOR) of the mean of what is left after it


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


def _standardised(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z float32, mean, sd) per column; a constant column's z is 0."""
    mean, sd = moments(a)
    z = np.asarray(a, dtype=np.float32) - mean.astype(np.float32)
    z /= np.where(sd > 0, sd, np.inf).astype(np.float32)
    return z, mean, sd


def correlations(x: np.ndarray, signals: np.ndarray, block: int = 512) -> np.ndarray:
    """(C, N) float64 Pearson r of every signal (n, C) with every cell (n, N); 0 where either is
    constant. One matrix product, `block` cells at a time."""
    zs, _, _ = _standardised(signals)
    out = np.empty((signals.shape[1], x.shape[1]))
    for j in range(0, x.shape[1], block):
        zx, _, _ = _standardised(x[:, j : j + block])
        out[:, j : j + block] = (zs.T @ zx) / len(x)
    return out


def forward_select(r: np.ndarray, gram: np.ndarray, ok: np.ndarray, named: np.ndarray, max_terms: int = MAX_TERMS,
                   min_gain: float = MIN_GAIN, share=None) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's terms by forward selection, on correlations alone (no pass over the text).

    r: (C, N) correlations of candidates with cells; gram: (C, C) correlations between candidates;
    ok: (C,) eligible. The first term is the largest |r| (a named candidate wins within
    PREFER_NAMED). Each later step adds the candidate whose part not already explained by the terms
    so far (its residual) best predicts the cell: the gain in R² is cov(cell, residual)² /
    var(residual), kept up to date by Gram-Schmidt on the correlations (rr, vv below). A term joins
    only if the fit's r, sqrt(R²), rises by min_gain. share: (N,) for cells whose variance is
    partly explained already (by their character profile): the share left to the terms; the
    fit's r is then that of the whole, sqrt(1 - share + share R²). Returns (terms (N, max_terms)
    int, -1 where none; the terms' fit r (N,), of what they were chosen on)."""
    whole = (lambda x: x) if share is None else (lambda x: np.sqrt(np.clip(1 - share + share * x**2, 0, 1)))
    C, N = r.shape
    cols = np.arange(N)
    rr = r.copy()  # cov(cell, residual of candidate j), everything standardised
    vv = np.ones((C, N))  # var(residual of candidate j)
    q = []  # per step: (C, N) cov(candidate j, that step's unit direction)
    terms = np.full((N, max_terms), -1)
    r2 = np.zeros(N)
    active = np.ones(N, dtype=bool)
    for t in range(max_terms):
        if t == 0:
            gain = np.abs(r) + (named * PREFER_NAMED)[:, None]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = np.where(vv > 1e-6, rr**2 / vv, 0.0)  # a candidate the terms already span adds nothing
            gain[terms[:, :t].T, cols] = -np.inf
        gain[~ok] = -np.inf
        k = np.argmax(gain, axis=0)
        best = gain[k, cols]
        v = np.maximum(vv[k, cols], 1e-12)  # a cell with no candidate left: not joined below
        cx = rr[k, cols] / np.sqrt(v)  # cov(cell, the new unit direction)
        new_r2 = r2 + cx**2
        if t == 0:
            join = active & np.isfinite(best)
        else:
            join = active & np.isfinite(best) & (whole(np.sqrt(new_r2)) - whole(np.sqrt(r2)) >= min_gain)
        if not join.any():
            break
        c = gram[:, k] - sum((qm * qm[k, cols] for qm in q), np.zeros((C, N)))
        c /= np.sqrt(v)  # cov(candidate j, the new unit direction)
        c = np.where(join, c, 0.0)
        rr -= c * np.where(join, cx, 0.0)
        vv -= c**2
        q.append(c)
        r2 = np.where(join, new_r2, r2)
        terms[join, t] = k[join]
        active &= join
    return terms, np.sqrt(r2)


def least_squares(terms: np.ndarray, r: np.ndarray, gram: np.ndarray, sig_mean, sig_sd, x_mean, x_sd):
    """(weights (N, T) in the cell's units per unit of each term's signal, intercept (N,)) of the
    least-squares fit of each cell on its terms, from the fit part's correlations and moments."""
    N, T = terms.shape
    cols = np.arange(N)
    has = terms >= 0
    k = np.where(has, terms, 0)
    A = gram[k[:, :, None], k[:, None, :]]  # (N, T, T)
    A = np.where(has[:, :, None] & has[:, None, :], A, np.eye(T)[None])
    b = np.where(has, r[k, cols[:, None]], 0.0)  # (N, T)
    beta = np.linalg.solve(A + 1e-9 * np.eye(T), b[..., None])[..., 0]  # standardised weights
    w = np.where(has, beta * x_sd[:, None] / np.where(sig_sd[k] > 0, sig_sd[k], np.inf), 0.0)
    intercept = x_mean - (w * np.where(has, sig_mean[k], 0.0)).sum(axis=1)
    return w, intercept


def held_out(terms, weights, held_x, held_signals, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(simulation r (N,), each term's own r (N, T) times its weight's sign) on the held-out part:
    the correlation of the fitted sum with the cell, from the held-out moments of the terms the
    cells use. NaN where the prediction is constant there."""
    used = np.unique(terms[terms >= 0])
    if not len(used):
        return np.full(len(terms), np.nan), np.full(terms.shape, np.nan)
    lookup = np.full(held_signals.shape[1], 0)
    lookup[used] = np.arange(len(used))
    s = held_signals[:, used].astype(np.float64)
    s -= s.mean(axis=0)
    n = len(held_x)
    cov_ss = s.T @ s / n
    s32 = s.astype(np.float32)
    N = held_x.shape[1]
    cov_sx = np.empty((len(used), N))
    var_x = np.empty(N)
    for j in range(0, N, block):
        c = np.asarray(held_x[:, j : j + block], dtype=np.float32)
        c = c - c.mean(axis=0)
        cov_sx[:, j : j + block] = (s32.T @ c) / n
        var_x[j : j + block] = np.einsum("ij,ij->j", c, c, dtype=np.float64) / n
    has = terms >= 0
    k = lookup[np.where(has, terms, used[0])]
    cols = np.arange(N)
    w = np.where(has, weights, 0.0)
    cov_px = (w * cov_sx[k, cols[:, None]]).sum(axis=1)
    var_p = np.einsum("ni,nij,nj->n", w, cov_ss[k[:, :, None], k[:, None, :]], w)
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = np.where((var_p > 1e-12) & (var_x > 0), cov_px / np.sqrt(var_p * var_x), np.nan)
        alone = cov_sx[k, cols[:, None]] / np.sqrt(np.diag(cov_ss)[k] * var_x[:, None])
    alone = np.where(has & np.isfinite(alone), alone * np.sign(w), np.nan)
    return sim, alone


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


def _r(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Column by column Pearson r of two (n, cols) arrays; NaN where either is constant."""
    p, x = p - p.mean(axis=0), x - x.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.einsum("ij,ij->j", p, x, dtype=np.float64) / np.sqrt(
            np.einsum("ij,ij->j", p, p, dtype=np.float64) * np.einsum("ij,ij->j", x, x, dtype=np.float64))
    return np.where(np.isfinite(out), out, np.nan)


def _background(profile, context_profile, chars, columns, cols: slice) -> np.ndarray:
    """(n, cells of cols) float32: the profile at each row's character, plus the corrections of the
    runs that end there (columns: (n, CONTEXT_CHARS - 1), -1 where a run has none)."""
    out = np.asarray(profile[cols], np.float32).T[chars]
    if context_profile is not None:
        table = np.asarray(context_profile[cols], np.float32).T
        for level in range(columns.shape[1]):
            seen = columns[:, level] >= 0
            out[seen] += table[columns[seen, level]]
    return out


def _predicted(background, intercept, signals, k, w, cols: slice) -> np.ndarray:
    out = background + intercept[cols]
    for t in range(k.shape[1]):
        out += signals[:, k[cols, t]] * w[cols, t]
    return out


def quantised(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 (N, K), scale (N,) float32): each row in steps of its largest |value| / 127, as the
    atlas file stores the runs' table (compressed, under half of float16's size: 3.5 MB against 8.2 for Alice)."""
    scale = (np.abs(table).max(axis=1) / 127 if table.shape[1] else np.zeros(len(table))).astype(np.float32)
    return np.round(table / np.where(scale > 0, scale, 1)[:, None]).astype(np.int8), scale


def dequantised(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * np.asarray(scale, np.float32)[:, None]


def _context_profile(fit_x, fit_signals, fit_chars, columns, n_contexts: int, profile, terms, weights, intercept,
                     block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(context_profile (N, n_contexts) float32, the fit part's r (N,) with it): the mean of what the
    explanation (profile, intercept and terms) leaves after each run of the last two characters,
    n / (n + CONTEXT_PRIOR) of it for a run seen n times, then the same on what is left after each
    run of three, and so on; columns: (n_fit, CONTEXT_CHARS - 1) each fit row's runs (-1: none).
    The table holds exactly what the atlas file keeps (quantised), and the fit r is of that."""
    N = fit_x.shape[1]
    levels = []  # per run length: its rows, ordered by run, and the runs' columns, counts and first rows
    for level in range(columns.shape[1]):
        seen = np.flatnonzero(columns[:, level] >= 0)
        order = seen[np.argsort(columns[seen, level], kind="stable")]
        which, starts, n = np.unique(columns[order, level], return_index=True, return_counts=True)
        levels.append((seen, order, which, starts, n))
    k, w = np.where(terms >= 0, terms, 0), np.where(terms >= 0, weights, 0.0).astype(np.float32)
    out, fit_r = np.zeros((N, n_contexts), np.float32), np.full(N, np.nan)
    for j in range(0, N, block):
        cols = slice(j, min(j + block, N))
        x = np.asarray(fit_x[:, cols], np.float32)
        before = _predicted(_background(profile, None, fit_chars, columns, cols), intercept, fit_signals, k, w, cols)
        pred = before.copy()
        table = np.zeros((n_contexts, x.shape[1]), np.float32)
        for level, (seen, order, which, starts, n) in enumerate(levels):
            if not len(order):
                continue
            sums = np.add.reduceat((x - pred)[order].astype(np.float64), starts, axis=0)
            table[which] = sums / (n[:, None] + CONTEXT_PRIOR)
            pred[seen] += table[columns[seen, level]]
        out[cols] = dequantised(*quantised(table.T))
        for level in range(columns.shape[1]):  # the fit r of what is kept
            seen = columns[:, level] >= 0
            before[seen] += out[cols].T[columns[seen, level]]
        fit_r[cols] = _r(before, x)
    return out, fit_r


def _profile_scores(profile, terms, weights, intercept, held_x, held_signals, held_chars, context_profile=None,
                    held_columns=None, block: int = 256):
    """(simulation r (N,), the profile's own r (N,)) on the held-out part: the correlation with the
    cell of profile[cell, character] (+ the corrections of the runs ending there) + intercept + the
    weighted terms, and of the profile (with the runs) alone."""
    N = held_x.shape[1]
    sim, alone = np.full(N, np.nan), np.full(N, np.nan)
    k, w = np.where(terms >= 0, terms, 0), np.where(terms >= 0, weights, 0.0).astype(np.float32)
    for j in range(0, N, block):
        cols = slice(j, min(j + block, N))
        x = np.asarray(held_x[:, cols], dtype=np.float32)
        base = _background(profile, context_profile, held_chars, held_columns, cols)
        sim[cols] = _r(_predicted(base, intercept, held_signals, k, w, cols), x)
        alone[cols] = _r(base, x)
    return sim, alone


def _auc_column(terms, weights, metrics, held_x, held_signals) -> np.ndarray:
    """(N,) the held-out ROC AUC of each one-term yes/no explanation in its sign; NaN for the
    others, and where the held-out part lacks MIN_EVIDENCE of either side."""
    single = (terms[:, 0] >= 0) & (terms[:, 1] < 0) & (metrics[np.maximum(terms[:, 0], 0)] == "auc")
    auc = np.full(len(terms), np.nan)
    if single.any():
        which = np.unique(terms[single, 0])
        pos = held_signals[:, which].sum(axis=0)
        enough = np.minimum(pos, len(held_x) - pos) >= MIN_EVIDENCE
        lookup = np.full(len(metrics), -1)
        lookup[which] = np.arange(len(which))
        cells = np.flatnonzero(single)
        got = scores(held_x[:, cells], held_signals[:, which], metrics[which])  # (len(which), len(cells))
        row = lookup[terms[cells, 0]]
        a = got[row, np.arange(len(cells))]
        a = np.where(weights[cells, 0] > 0, a, 1 - a)
        auc[cells] = np.where(enough[row], a, np.nan)
    return auc


def choose(fit_x, fit_signals, held_x, held_signals, candidates: list[Candidate], fit_chars=None, held_chars=None,
           vocab_size: int | None = None, fit_contexts=None, held_contexts=None) -> dict:
    """Each cell's explanation, chosen on the fit part and scored on the held-out part.

    With the characters of both parts (fit_chars, held_chars: ids of the current character at each
    row), every explanation starts from the cell's character profile, its mean after each current
    character on the fit part, and its terms (up to MAX_TERMS - 1) are chosen by the same forward
    selection on what the profile leaves: the cell and every candidate with their per-character
    means taken out, so a character detector adds nothing and a term says what moves the cell
    beyond its character. The arrays then hold `profile` (N, vocab_size): the prediction is
    profile[cell, character] + intercept + the weighted terms, and `profile_r` its own held-out r.
    With the runs of both parts too (fit_contexts, held_contexts: context_codes at each row), the
    profile reaches back CONTEXT_CHARS characters: `contexts` (K,) the codes of the runs seen
    MIN_CONTEXT times in the fit part, and `context_profile` (N, K) float32, what the explanation
    leaves after each (see _context_profile), added to the prediction where a run ending at the
    current character is one of them; fit_r, simulation_r and profile_r count it.

    fit_x (n_fit, N), held_x (n_held, N): activations of N cells; *_signals: (n, C) from
    signal_matrix. Returns arrays over cells: terms (N, MAX_TERMS) indices into candidates (-1:
    none; all -1 where no candidate was eligible), weights (N, MAX_TERMS) and intercept (N,) of
    the prediction, fit_r (N,), simulation_r (N,) held out, term_r (N, MAX_TERMS) each term's own
    held-out r in its sign, and auc (N,): the held-out ROC AUC of a one-term yes/no explanation in
    its sign (NaN otherwise, or where the held-out part lacks MIN_EVIDENCE of either side).
    """
    metrics, named = np.array([c.metric for c in candidates]), np.array([c.named for c in candidates])
    ok = eligible(fit_signals, metrics, len(held_x))
    profiled = fit_chars is not None
    if profiled:  # what the profile leaves: the cell and each candidate less their means per character
        V = int(vocab_size)
        px, ps = per_char_means(fit_x, fit_chars, V), per_char_means(fit_signals, fit_chars, V)
        x_fit = np.asarray(fit_x, dtype=np.float32) - px[fit_chars]
        s_fit = np.asarray(fit_signals, dtype=np.float32) - ps[fit_chars]
        ok &= s_fit.std(axis=0) > 1e-6  # a candidate the current character decides has nothing left
    else:
        x_fit, s_fit = fit_x, fit_signals
    r = correlations(x_fit, s_fit)
    zs, sig_mean, sig_sd = _standardised(s_fit)
    gram = (zs.T.astype(np.float64) @ zs) / len(zs)
    del zs
    x_mean, x_sd = moments(x_fit)
    share = None
    if profiled:  # the share of each cell's variance its profile leaves to the terms
        _, whole_sd = moments(fit_x)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(whole_sd > 0, (x_sd / whole_sd) ** 2, 1.0)
    terms, fit_r = forward_select(r, gram, ok, named, MAX_TERMS - profiled, share=share)
    weights, intercept = least_squares(terms, r, gram, sig_mean, sig_sd, x_mean, x_sd)
    if profiled:
        terms = np.concatenate([terms, np.full((len(terms), 1), -1, terms.dtype)], axis=1)  # MAX_TERMS wide
        weights = np.concatenate([weights, np.zeros((len(weights), 1))], axis=1)
        has = terms >= 0
        # the prediction, profile + intercept + Σ w (s - ps[char]), as profile' + intercept + Σ w s
        profile = px.T.astype(np.float64) - np.einsum("nt,vnt->nv", np.where(has, weights, 0.0),
                                                      ps[:, np.where(has, terms, 0)].astype(np.float64))
        _, alone = held_out(terms, weights, held_x, held_signals)
        profile = profile.astype(np.float32)
        fit_r = np.where(whole_sd > 0, np.sqrt(np.clip(1 - share + share * fit_r**2, 0, 1)), np.nan)
        context_profile, held_columns, contexts = None, None, None
        if fit_contexts is not None:  # the runs' corrections, on what profile and terms leave
            codes, counts = np.unique(fit_contexts[fit_contexts >= 0], return_counts=True)
            contexts = codes[counts >= MIN_CONTEXT]
            context_profile, fit_r = _context_profile(fit_x, fit_signals, fit_chars,
                                                      context_columns(contexts, fit_contexts), len(contexts), profile,
                                                      terms, weights, intercept)
            held_columns = context_columns(contexts, held_contexts)
        sim, profile_r = _profile_scores(profile, terms, weights, intercept, held_x, held_signals, held_chars,
                                         context_profile, held_columns)
    else:
        sim, alone = held_out(terms, weights, held_x, held_signals)
        sim = np.where(terms[:, 0] >= 0, sim, np.nan)
    auc = _auc_column(terms, weights, metrics, held_x, held_signals)
    out = {"terms": terms.astype(np.int16), "weights": weights.astype(np.float32),
           "intercept": intercept.astype(np.float32),
           "fit_r": (fit_r if profiled else np.where(terms[:, 0] >= 0, fit_r, np.nan)).astype(np.float32),
           "simulation_r": sim.astype(np.float32), "term_r": alone.astype(np.float32), "auc": auc.astype(np.float32)}
    if profiled:
        out |= {"profile": profile, "profile_r": profile_r.astype(np.float32)}
        if contexts is not None:
            out |= {"contexts": contexts, "context_profile": context_profile}
    return out


def explained(simulation_r) -> bool:
    return bool(np.isfinite(simulation_r) and simulation_r >= EXPLAINED_R)


SIGNS = {1: "+", -1: "−"}


def phrase(terms: list[dict]) -> str:
    """'vowel (+) · after whitespace (−)': each term with the sign of its weight."""
    return " · ".join(f"{t['explanation']} ({SIGNS[t['sign']]})" for t in terms)


def term_phrases(explanation: str) -> list[str]:
    """The terms' own phrases in an explanation written as phrase() writes it (signs dropped), or
    in one term typed without its sign: what a person copies from `atlas --list`."""
    out = []
    for term in explanation.split(" · "):
        term = term.strip()
        for sign in (*SIGNS.values(), "-"):
            term = term.removesuffix(f" ({sign})")
        out.append(term)
    return out


def predict(candidates: list[Candidate], terms, weights, intercept: float, text: str, vocab_chars: str,
            profile=None, contexts=None, context_profile=None) -> np.ndarray:
    """What an explanation predicts at every character of `text`: intercept + Σ weight · signal, plus
    profile[character] for an explanation that starts from the cell's character profile (and the
    corrections of the runs ending there, with contexts and context_profile)."""
    ids = masks(text, vocab_chars)
    out = np.full(len(text), float(intercept))
    if profile is not None:
        extra = None if context_profile is None else np.asarray(context_profile)[None]
        out += profile_values(np.asarray(profile)[None], text, vocab_chars, contexts, extra)[:, 0]
    for j, w in zip(terms, weights):
        if j >= 0:
            out += float(w) * signal(candidates[j], text, ids).astype(np.float64)
    return out


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


def candidate_dicts(candidates: list[Candidate]) -> list[dict]:
    return [asdict(c) for c in candidates]
