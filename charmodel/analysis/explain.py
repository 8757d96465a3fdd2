"""Explanations for cells: a phrase of at most MAX_TERMS causal terms, scored on held-out text.

A term is one yes/no predicate or one number read from the text up to the current character
(candidates.py; none reads ahead). The phrase predicts intercept + Σ weight · term, fitted by least
squares for the phrase alone on the fit part, and three scores, all on the held-out part, say what
it is worth:

- phrase_r: the Pearson r of the phrase's prediction with the cell (the simulation score of
  automated interpretability). This is the explanation's score: a cell is explained when it
  reaches EXPLAINED_R.
- context_r: the r of the background (background.py: the cell's mean after the last one to three
  characters, a table, fitted alone): what the last three characters already tell.
- beyond_r: the partial r of the phrase with the cell, the background regressed out of both: what
  the phrase tells about the cell that three characters do not.

Terms are chosen by forward selection on the fit part for both at once: each step adds the
candidate that most raises the phrase's R² plus its R² on what the background leaves (cell and
candidates, each less its own background), and a term, the first included, joins only if it
raises the phrase's fit r plus its fit r beyond the background by MIN_GAIN. For replacement
(replace.py) each cell also gets the background plus the phrase: least squares of the cell on its
background and its terms together (`both_*`).

Rare predicates win by chance, so a yes/no candidate is eligible only with MIN_EVIDENCE positive
and negative characters in the fit part (the held-out text never decides eligibility).
docs/atlas.md gives the reasoning; no TensorFlow here.
"""

from collections import Counter
from dataclasses import asdict

import numpy as np

from charmodel.analysis import background
from charmodel.analysis.candidates import SET_CHARS, Candidate, character_set, masks, signal
from charmodel.analysis.stats import MIN_EVIDENCE, eligible, moments, pearson, per_char_means, scores, standardised

EXPLAINED_R = 0.5  # a cell is explained when its phrase's held-out r reaches this
MAX_TERMS = 3  # terms of one phrase
MIN_GAIN = 0.02  # a term joins only if it raises the phrase's fit r plus its fit r beyond the background by this
PREFER_NAMED = 0.01
SETS = 120  # sets of characters offered as candidates, the ones most often best for a cell (character_sets)  # a named hypothesis wins a first term over a mechanical one at most this much behind


def forward_select(spaces, ok: np.ndarray, named: np.ndarray, max_terms: int = MAX_TERMS,
                   min_gain: float = MIN_GAIN, weights=None) -> tuple[np.ndarray, list]:
    """Each cell's terms by forward selection in several spaces at once, on correlations alone.

    spaces: [(r (C, N) correlations of candidates with cells, gram (C, C) between candidates)], one
    per way of reading the cell (the cell itself; what its background leaves). In each space the
    gain of candidate j is the R² its residual (its part the terms so far do not span) adds:
    cov(cell, residual)² / var(residual), kept up to date by Gram-Schmidt on the correlations. Each
    step adds the candidate with the largest summed gain (a named one wins the first step within
    PREFER_NAMED); it joins only if the summed r, Σ sqrt(R²), rises by min_gain. ok: (C,) eligible;
    weights: one per space, what its gain and its r count for (default 1 each; 0 leaves a space out).
    Returns (terms (N, max_terms), -1 where none; the fit r (N,) in each space)."""
    C, N = spaces[0][0].shape
    cols = np.arange(N)
    weights = [1.0] * len(spaces) if weights is None else list(weights)
    state = [{"rr": r.copy(), "vv": np.repeat(np.diag(gram)[:, None], N, axis=1), "q": [], "r2": np.zeros(N)}
             for r, gram in spaces]
    terms = np.full((N, max_terms), -1)
    active = np.ones(N, dtype=bool)
    for t in range(max_terms):
        gain = np.zeros((C, N))
        for s, lam in zip(state, weights):
            with np.errstate(divide="ignore", invalid="ignore"):
                gain += lam * np.where(s["vv"] > 1e-6, s["rr"] ** 2 / s["vv"], 0.0)  # one the terms span adds nothing
        if t == 0:  # on the scale of r, not R²: a named candidate wins within PREFER_NAMED of sqrt(gain)
            gain = (np.sqrt(gain) + (named * PREFER_NAMED)[:, None]) ** 2
        else:
            gain[terms[:, :t].T, cols] = -np.inf
        gain[~ok] = -np.inf
        k = np.argmax(gain, axis=0)
        steps = []
        for s in state:
            v = s["vv"][k, cols]
            cx = np.where(v > 1e-6, s["rr"][k, cols] / np.sqrt(np.maximum(v, 1e-12)), 0.0)
            steps.append((v, cx, s["r2"] + cx**2))
        rise = sum(lam * (np.sqrt(new) - np.sqrt(s["r2"])) for s, (_, _, new), lam in zip(state, steps, weights))
        join = active & np.isfinite(gain[k, cols]) & (rise >= min_gain)
        if not join.any():
            break
        for (r, gram), s, (v, cx, new) in zip(spaces, state, steps):
            moves = join & (v > 1e-6)
            c = gram[:, k] - sum((qm * qm[k, cols] for qm in s["q"]), np.zeros((C, N)))
            c = np.where(moves, c / np.sqrt(np.maximum(v, 1e-12)), 0.0)  # cov(candidate j, the new unit direction)
            s["rr"] -= c * np.where(moves, cx, 0.0)
            s["vv"] -= c**2
            s["q"].append(c)
            s["r2"] = np.where(moves, new, s["r2"])
        terms[join, t] = k[join]
        active &= join
    return terms, [np.sqrt(s["r2"]) for s in state]


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


def _correlations(fit_x, fit_signals, residual_signals, bg_of, block: int = 512):
    """(r (C, N), gram (C, C)) of the candidates with the cells, and of what the background leaves
    of each (residual_signals; bg_of(cols): the cells' background on the fit rows)."""
    n, N = fit_x.shape
    spaces = []
    for sig, less in ((fit_signals, False), (residual_signals, True)):
        zs, _, _ = standardised(sig)
        r = np.empty((sig.shape[1], N))
        for j in range(0, N, block):
            cols = slice(j, min(j + block, N))
            x = np.asarray(fit_x[:, cols], np.float32)
            zx, _, _ = standardised(x - bg_of(cols) if less else x)
            r[:, cols] = (zs.T @ zx) / n
        spaces.append((r, (zs.T.astype(np.float64) @ zs) / n))
    return spaces


def with_background(fit_x, fit_signals, bg_of, terms, block: int = 128):
    """(coefficient of the background (N,), term weights (N, T), intercept (N,)): least squares of
    each cell on its background and its terms together, on the fit rows."""
    N, T = terms.shape
    has = terms >= 0
    k = np.where(has, terms, 0)
    beta, w, intercept = np.zeros(N), np.zeros((N, T)), np.zeros(N)
    for j in range(0, N, block):
        cols = slice(j, min(j + block, N))
        x = np.asarray(fit_x[:, cols], np.float64)
        d = np.concatenate([bg_of(cols)[:, :, None], fit_signals[:, k[cols]]], axis=2).astype(np.float64)
        d *= np.concatenate([np.ones((x.shape[1], 1)), has[cols]], axis=1)[None]  # (n, m, 1 + T)
        dm, xm = d.mean(axis=0), x.mean(axis=0)
        d -= dm
        x -= xm
        a = np.einsum("nmi,nmj->mij", d, d) / len(x)
        b = np.einsum("nmi,nm->mi", d, x) / len(x)
        off = np.diagonal(a, axis1=1, axis2=2) < 1e-12  # a missing term, or a constant background
        a = a + np.where(off[:, :, None], np.eye(1 + T)[None], 0.0)
        coef = np.linalg.solve(a + 1e-9 * np.eye(1 + T), np.where(off, 0.0, b)[..., None])[..., 0]
        beta[cols], w[cols] = coef[:, 0], coef[:, 1:]
        intercept[cols] = xm - (coef * dm).sum(axis=1)
    return beta, w, intercept


def _three_scores(terms, weights, both_weights, held_x, held_signals, held_residual, bg_of, block: int = 256):
    """(phrase_r, context_r, beyond_r), each (N,), on the held-out rows (see the module docstring);
    bg_of(cols): the cells' background on those rows; held_residual: each candidate less its own
    background there. beyond_r is the partial r given the background table: the r of what the
    table leaves of the phrase (its terms with the weights they take beside the background,
    both_weights) with what it leaves of the cell. NaN where a prediction is constant."""
    N = held_x.shape[1]
    out = [np.full(N, np.nan) for _ in range(3)]
    k = np.where(terms >= 0, terms, 0)
    for j in range(0, N, block):
        cols = slice(j, min(j + block, N))
        x = np.asarray(held_x[:, cols], np.float32)
        s = held_signals[:, k[cols]]
        p = (s * np.where(terms >= 0, weights, 0.0)[cols][None]).sum(axis=2)
        q = (held_residual[:, k[cols]] * np.where(terms >= 0, both_weights, 0.0)[cols][None]).sum(axis=2)
        b = bg_of(cols)
        out[0][cols], out[1][cols], out[2][cols] = pearson(p, x), pearson(b, x), pearson(q, x - b)
    return out


def choose(fit_x, fit_signals, held_x, held_signals, candidates: list[Candidate], fit_chars, held_chars,
           vocab_size: int, fit_codes, held_codes, select=(1.0, 1.0)) -> dict:
    """Each cell's phrase, chosen and fitted on the fit part and scored on the held-out part.

    fit_x (n_fit, N), held_x (n_held, N): activations of N cells; *_signals: (n, C) from
    signal_matrix; *_chars: the current character's id at each row; *_codes: background.context_codes
    at each row; select: what the phrase's R² and its R² beyond the background count for in the
    choice (forward_select's weights; benchmarks/phrases.py compares them). Returns arrays over
    cells: terms (N, MAX_TERMS) indices into candidates (-1: none),
    weights (N, MAX_TERMS) and intercept (N,) of the phrase alone; fit_r (N,) the phrase's r on the
    fit part; phrase_r, context_r, beyond_r (N,) held out; term_r (N, MAX_TERMS) each term's own
    held-out r in its weight's sign; auc (N,) the held-out AUC of a one-term yes/no phrase; the
    background: profile (N, V), contexts (K,), context_profile (N, K), context_fit_r (N,); and the
    background plus the phrase: both_background (N,), both_weights (N, MAX_TERMS), both_intercept (N,).
    """
    metrics, named = np.array([c.metric for c in candidates]), np.array([c.named for c in candidates])
    ok = eligible(fit_signals, metrics, len(held_x))
    profile, contexts, table, context_fit_r = background.fit(fit_x, fit_chars, fit_codes, vocab_size)
    s_profile, _, s_table, _ = background.fit(fit_signals, fit_chars, fit_codes, vocab_size)
    fit_columns = background.context_columns(contexts, fit_codes)
    held_columns = background.context_columns(contexts, held_codes)
    residual = np.asarray(fit_signals, np.float32) - background.values(s_profile, s_table, fit_chars, fit_columns,
                                                                        slice(None))
    fit_bg = lambda cols: background.values(profile, table, fit_chars, fit_columns, cols)
    held_bg = lambda cols: background.values(profile, table, held_chars, held_columns, cols)
    spaces = _correlations(fit_x, fit_signals, residual, fit_bg)
    del residual
    terms, (fit_r, _) = forward_select(spaces, ok, named, weights=select)
    sig_mean, sig_sd = moments(fit_signals)
    x_mean, x_sd = moments(fit_x)
    weights, intercept = least_squares(terms, spaces[0][0], spaces[0][1], sig_mean, sig_sd, x_mean, x_sd)
    both = with_background(fit_x, fit_signals, fit_bg, terms)
    held_residual = held_signals - background.values(s_profile, s_table, held_chars, held_columns, slice(None))
    phrase_r, context_r, beyond_r = _three_scores(terms, weights, both[1], held_x, held_signals, held_residual,
                                                  held_bg)
    _, term_r = held_out(terms, weights, held_x, held_signals)
    f32 = lambda a: np.asarray(a, np.float32)
    return {"terms": terms.astype(np.int16), "weights": f32(weights), "intercept": f32(intercept),
            "fit_r": f32(np.where(terms[:, 0] >= 0, fit_r, np.nan)), "phrase_r": f32(phrase_r),
            "context_r": f32(context_r), "beyond_r": f32(beyond_r), "term_r": f32(term_r),
            "auc": f32(_auc_column(terms, weights, metrics, held_x, held_signals)),
            "profile": profile, "contexts": contexts, "context_profile": table, "context_fit_r": f32(context_fit_r),
            "both_background": f32(both[0]), "both_weights": f32(both[1]), "both_intercept": f32(both[2])}


def character_sets(fit_x, chars: np.ndarray, vocab_chars: str, previous: bool = False, keep: int = SETS,
                   block: int = 512) -> list[Candidate]:
    """The `keep` sets of characters most often the best for a cell (candidates.character_set), from
    the fit part alone: for each cell and sign, its characters ranked by its mean after them (chars:
    the id of the current, or previous, character at each fit row; -1 for none), and the first
    1 to SET_CHARS of them whose presence correlates most with the cell. A set must hold
    MIN_EVIDENCE rows and leave as many out."""
    V = len(vocab_chars)
    ok = chars >= 0
    counts = np.bincount(chars[ok], minlength=V).astype(np.float64)
    found = Counter()
    for j in range(0, fit_x.shape[1], block):
        x = np.asarray(fit_x[ok, j : j + block], np.float64)
        means = per_char_means(x, chars[ok], V).astype(np.float64)  # (V, m)
        m, sd = x.mean(axis=0), x.std(axis=0)
        for sign in (1, -1):
            order = np.argsort(-sign * means, axis=0, kind="stable")[:SET_CHARS]  # (k, m)
            size = np.cumsum(counts[order], axis=0)
            inside = np.cumsum(counts[order] * np.take_along_axis(means, order, axis=0), axis=0) / np.maximum(size, 1)
            p = size / max(ok.sum(), 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = sign * (inside - m) * np.sqrt(p / (1 - p)) / np.where(sd > 0, sd, np.inf)
            r[(size < MIN_EVIDENCE) | (ok.sum() - size < MIN_EVIDENCE) | ~np.isfinite(r)] = -np.inf
            best = np.argmax(r, axis=0)
            for c in np.flatnonzero(np.isfinite(r[best, np.arange(r.shape[1])])):
                found["".join(sorted(vocab_chars[v] for v in order[: best[c] + 1, c]))] += 1
    return [character_set(s, previous) for s, _ in sorted(found.items(), key=lambda p: (-p[1], p[0]))[:keep]]


def explained(phrase_r) -> bool:
    return bool(phrase_r is not None and np.isfinite(phrase_r) and phrase_r >= EXPLAINED_R)


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
            base=None, base_weight: float = 1.0) -> np.ndarray:
    """What a phrase predicts at every character of `text`: intercept + Σ weight · signal; with
    base (T,) (a background's values), plus base_weight times it (the background plus the phrase)."""
    ids = masks(text, vocab_chars)
    out = np.full(len(text), float(intercept))
    if base is not None:
        out += float(base_weight) * np.asarray(base, np.float64)
    for j, w in zip(terms, weights):
        if j >= 0:
            out += float(w) * signal(candidates[j], text, ids).astype(np.float64)
    return out


def candidate_dicts(candidates: list[Candidate]) -> list[dict]:
    return [asdict(c) for c in candidates]
