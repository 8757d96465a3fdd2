"""Explanations for cells, generated from the text and scored honestly.

An explanation is a predicate over the text that we can test exactly at every character: yes/no
("inside ( … )", "1–4 characters after ','") or a number ("position in line"). The library is
built from the text itself, not hand-written per corpus:

  * the named hypotheses of cells.py (inside a quotation, first character of a word, ...);
  * the current, previous and next character, for every character and class of the vocabulary
    (the next character is what the model is about to write);
  * "within k characters after X" and "X within the next k characters", for frequent characters;
  * inside every opener/closer pair the text contains, frequent words, word shape;
  * positions: in word, line, sentence and paragraph, characters since the last X, indentation,
    bracket depth.

Scoring follows automated interpretability's simulation score: each cell's explanations are chosen
on one part of the text (the fit part) and scored on another that played no role in choosing them
(the held-out part). A yes/no explanation is scored by ROC AUC in the direction the fit part chose
(so a held-out AUC below 0.5 means the explanation reversed), a number by Pearson r times that
direction. Rare predicates win by chance, so a yes/no candidate is eligible only with MIN_EVIDENCE
positive and negative characters in the fit part and as many expected in the held-out part (from
the fit part's rate: the held-out text never decides eligibility); its held-out score is reported
only if the held-out part really has them.

Every explanation belongs to one of four groups, by how much text it needs:
  current (the character itself), neighbour (the previous or next character), short (within
  SHORT_REACH characters) and long (more, or unbounded: pairs, positions, quotations).

No TensorFlow; the signals come from the text and the scores from arrays of activations.
"""

import re
import string
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from .cells import AFTER_QUOTE_CHARS, FEATURES, OPENERS, SCALAR, _in_word, inside_quotation, pair_depth, word_start

MIN_EVIDENCE = 30  # positive (and negative) characters a yes/no candidate needs in each part
EXPLAINED_AUC = 0.85  # a cell is explained when its best explanation's held-out AUC reaches this...
EXPLAINED_R = 0.5  # ...or |r| this, for a number
PREFER_NAMED = 0.01  # a named hypothesis wins over a mechanical one that scores at most this much higher
SHORT_REACH = 8  # characters of context that still count as "short"
MARK_REACH = (2, 4, 8, 16)  # k in "within k characters after X" and "X within the next k"
FREQUENT = 0.001  # a character is frequent when it is at least this share of the fit text
FREQUENT_WORDS = 30  # "inside the word W" for the text's most frequent words of 3+ letters
CAP = 200  # distances and positions are capped here, so one long line does not dominate r
FAR = 1 << 40  # "no such character yet"
GROUPS = ("current", "neighbour", "short", "long")
PAIRS = (("(", ")"), ("[", "]"), ("{", "}"), ("<", ">"), ("`", "'"), ('"', '"'), ("‘", "’"), ("“", "”"))


@dataclass(frozen=True)
class Candidate:
    name: str  # a stable id: "char:a", "after:,:4", "pair:()", "named:quote", ...
    phrase: str  # what a person reads, the same in the CLI, its JSON and the app
    group: str  # one of GROUPS
    metric: str  # "auc" (yes/no) or "r" (a number)
    named: bool = False  # one of cells.FEATURES: preferred on a near tie


def shown(ch: str) -> str:
    """A character inside a phrase: invisible ones by name, others quoted."""
    return {" ": "space", "\n": "newline", "\t": "tab"}.get(ch, f"'{ch}'")


# ---------------------------------------------------------------- signals, vectorised


def since_last(mask: np.ndarray) -> np.ndarray:
    """Characters since the last position where mask holds, at or before t (0 there; FAR if none)."""
    t = np.arange(len(mask))
    last = np.maximum.accumulate(np.where(mask, t, -FAR))
    return t - last


def after_mark(mask: np.ndarray, k: int) -> np.ndarray:
    """1 for the k characters after each position where mask holds (1 ≤ distance ≤ k)."""
    d = np.concatenate([[FAR], since_last(mask)[:-1] + 1])
    return d <= k


def before_mark(mask: np.ndarray, k: int) -> np.ndarray:
    """1 where mask holds within the next k characters (1 ≤ distance ≤ k)."""
    return after_mark(mask[::-1], k)[::-1]


def inside_pair(text: str, opener: str, closer: str) -> np.ndarray:
    """1 from an opener up to (not including) its closer, nesting counted. An apostrophe-like closer
    between two letters (don't) closes nothing; a mark that both opens and closes toggles, and a
    blank line ends it, as quotations re-open in each paragraph. The closer is outside, as in
    cells.inside_quotation."""
    inword = _in_word(text) if closer in "'’" else None
    return pair_depth(text, opener, closer, inword) > 0


def bracket_depth(text: str) -> np.ndarray:
    return sum(pair_depth(text, o, c, None) for o, c in PAIRS[:3]).astype(np.float64)


def position_in_word(text: str) -> np.ndarray:
    """1 at a word's first character, 2 at its second, ...; 0 outside words."""
    w = _in_word(text)
    return np.where(w, since_last(word_start(text)) + 1, 0).astype(np.float64)


def indentation(text: str) -> np.ndarray:
    """Leading spaces and tabs of the line each character is on."""
    out = np.zeros(len(text))
    for m in re.finditer(r"^[ \t]*", text, re.MULTILINE):
        end = text.find("\n", m.end())
        out[m.start() : len(text) if end < 0 else end + 1] = m.end() - m.start()
    return out


def quotation_opens(text: str) -> np.ndarray:
    inside = inside_quotation(text)
    return inside & ~np.concatenate([[False], inside[:-1]])


def quotation_closes(text: str) -> np.ndarray:
    """1 at each quotation's closing mark (the first character outside it)."""
    inside = inside_quotation(text)
    return ~inside & np.concatenate([[False], inside[:-1]])


def _capped(d: np.ndarray) -> np.ndarray:
    return np.minimum(d, CAP).astype(np.float64)


# ---------------------------------------------------------------- the library


GRAMMARS = ("full", "basic")


def library(fit_text: str, vocab_chars: str, grammar: str = "full") -> list[Candidate]:
    """Every candidate explanation for a model with this vocabulary, from the fit text only (so the
    held-out text cannot change which candidates exist).

    grammar "basic" is the issue's prototype for comparison (benchmarks/atlas.py): the named
    hypotheses and the current and previous character only."""
    if grammar not in GRAMMARS:
        raise ValueError(f"unknown grammar {grammar!r}")
    counts = {ch: fit_text.count(ch) for ch in vocab_chars}
    n = max(len(fit_text), 1)
    frequent = [ch for ch in vocab_chars if counts[ch] >= FREQUENT * n]
    out = []
    for key, (description, _) in FEATURES.items():
        reach = {"quote": "long", "after_quote": "long", "parens": "long", "line_position": "long",
                 "sentence_end": "long", "word_start": "short", "word_end": "short"}.get(key, "current")
        out.append(Candidate(f"named:{key}", description, reach, "r" if key in SCALAR else "auc", named=True))
    classes = {"letter": "a letter", "lower": "a lowercase letter", "upper": "an uppercase letter",
               "space": "whitespace", "punct": "punctuation"}
    for cls in ("letter", "lower", "consonant"):
        out.append(Candidate(f"class:{cls}", {"consonant": "a consonant", **classes}[cls], "current", "auc"))
    for ch in vocab_chars:
        out.append(Candidate(f"char:{ch}", f"the character {shown(ch)}", "current", "auc"))
    if grammar == "basic":
        named = [c for c in out if c.named]
        return named + [c for c in out if c.name.startswith("char:")] + [
            Candidate(f"prev:{ch}", f"previous character {shown(ch)}", "neighbour", "auc") for ch in vocab_chars]
    for where, word in (("prev", "previous"), ("next", "next")):
        for ch in vocab_chars:
            out.append(Candidate(f"{where}:{ch}", f"{word} character {shown(ch)}", "neighbour", "auc"))
        for cls, phrase in classes.items():
            out.append(Candidate(f"{where}class:{cls}", f"{word} character is {phrase}", "neighbour", "auc"))
    for ch in frequent:
        for k in MARK_REACH:
            group = "short" if k <= SHORT_REACH else "long"
            out.append(Candidate(f"after:{ch}:{k}", f"1–{k} characters after {shown(ch)}", group, "auc"))
            if not ch.isalnum():
                out.append(Candidate(f"before:{ch}:{k}", f"{shown(ch)} within the next {k} characters", group, "auc"))
    for opener, closer in PAIRS:
        if counts.get(opener) and counts.get(closer):
            out.append(Candidate(f"pair:{opener}{closer}", f"inside {opener} … {closer}", "long", "auc"))
    if any(counts.get(o) for o, _ in PAIRS[:3]):
        out.append(Candidate("depth", "bracket nesting depth", "long", "r"))
    if any(counts.get(o) for o in (*OPENERS, '"')):
        for k in (4, 8, 16, 32):
            if k != AFTER_QUOTE_CHARS:
                out.append(Candidate(f"afterquote:{k}", f"1–{k} characters after a quotation closes", "long", "auc"))
        for k in (4, 16):  # not 1: the opening mark alone is a current-character fact
            out.append(Candidate(f"quotestart:{k}", f"the first {k} characters of a quotation", "long", "auc"))
    for k in range(2, 7):
        out.append(Candidate(f"wordpos:{k}", f"character {k} of a word", "short", "auc"))
    out.append(Candidate("capword", "inside a capitalised word", "short", "auc"))
    out.append(Candidate("capsword", "inside a word in capitals", "short", "auc"))
    words = Counter(re.findall(r"[^\W\d_]{3,}", fit_text))
    for w, _ in sorted(words.items(), key=lambda p: (-p[1], p[0]))[:FREQUENT_WORDS]:
        out.append(Candidate(f"word:{w}", f"inside the word '{w}'", "short", "auc"))
    out += [Candidate("pos:word", "position in word", "short", "r"),
            Candidate("pos:sentence", "position in sentence (characters since . ! or ?)", "long", "r"),
            Candidate("pos:paragraph", "position in paragraph", "long", "r"),
            Candidate("until:\n", "characters until the next newline", "long", "r"),
            Candidate("until: ", "characters until the next space", "short", "r")]
    if "\n" in counts and any(re.finditer(r"^[ \t]", fit_text, re.MULTILINE)):
        out.append(Candidate("indent", "indentation of the line", "long", "r"))
    for ch in frequent:
        if not ch.isalnum() and ch != " ":
            out.append(Candidate(f"since:{ch}", f"characters since the last {shown(ch)}", "long", "r"))
    return out


def signal(candidate: Candidate, text: str, ids: dict) -> np.ndarray:
    """One candidate's value at every character of `text`: bool for yes/no, float64 for a number.
    ids: {character: boolean mask of where text has it}, shared between candidates (see masks)."""
    kind, _, arg = candidate.name.partition(":")
    T = len(text)
    none = np.zeros(T, dtype=bool)
    mask = lambda ch: ids.get(ch, none)
    shift = lambda a, by: np.concatenate([np.zeros(by, a.dtype), a[:-by]]) if by > 0 else \
        np.concatenate([a[-by:], np.zeros(-by, a.dtype)])
    classes = {"letter": lambda c: c.isalpha(), "lower": str.islower, "upper": str.isupper,
               "space": str.isspace, "punct": lambda c: c in string.punctuation,
               "consonant": lambda c: c.isalpha() and c.lower() not in "aeiou"}
    if kind == "named":
        return FEATURES[arg][1](text)
    if kind == "class":
        return _class_mask(ids, classes[arg])
    if kind == "char":
        return mask(arg)
    if kind in ("prev", "next"):
        return shift(mask(arg), 1 if kind == "prev" else -1)
    if kind in ("prevclass", "nextclass"):
        return shift(_class_mask(ids, classes[arg]), 1 if kind == "prevclass" else -1)
    if kind in ("after", "before"):
        ch, k = arg.rsplit(":", 1)
        return (after_mark if kind == "after" else before_mark)(mask(ch), int(k))
    if kind == "pair":
        return inside_pair(text, arg[0], arg[1])
    if kind == "depth":
        return bracket_depth(text)
    if kind == "afterquote":
        return after_mark(quotation_closes(text), int(arg)) & ~inside_quotation(text)
    if kind == "quotestart":
        opens = quotation_opens(text)
        return (since_last(opens) < int(arg)) & inside_quotation(text)
    if kind == "wordpos":
        return position_in_word(text) == int(arg)
    if kind in ("capword", "capsword"):
        return _word_shape(text, ids, all_capitals=kind == "capsword")
    if kind == "word":
        out = np.zeros(T, dtype=bool)
        for m in re.finditer(rf"(?<![^\W\d_]){re.escape(arg)}(?![^\W\d_])", text):
            out[m.start() : m.end()] = True
        return out
    if kind == "pos":
        if arg == "word":
            return position_in_word(text)
        if arg == "sentence":
            return _capped(since_last(_class_mask(ids, lambda c: c in ".!?")))
        paragraph = np.zeros(T, dtype=bool)
        paragraph[[m.end() - 1 for m in re.finditer(r"\n\n", text)]] = True
        return _capped(since_last(paragraph))
    if kind == "until":
        return _capped(since_last(mask(arg)[::-1])[::-1])
    if kind == "indent":
        return indentation(text)
    if kind == "since":
        return _capped(since_last(mask(arg)))
    raise ValueError(f"unknown candidate {candidate.name!r}")


def _word_shape(text: str, ids: dict, all_capitals: bool) -> np.ndarray:
    """1 inside words that start with a capital (or, all_capitals, are 2+ letters with no lowercase)."""
    w = _in_word(text)
    starts = np.flatnonzero(word_start(text))
    ends = np.flatnonzero(w & ~np.concatenate([w[1:], [False]])) + 1  # one past each word's end
    keep = _class_mask(ids, str.isupper)[starts]
    if all_capitals:
        lower = np.concatenate([[0], np.cumsum(_class_mask(ids, str.islower))])
        keep &= (lower[ends] - lower[starts] == 0) & (ends - starts >= 2)
    delta = np.zeros(len(text) + 1, dtype=np.int64)
    np.add.at(delta, starts[keep], 1)
    np.add.at(delta, ends[keep], -1)
    return np.cumsum(delta[:-1]) > 0


def _class_mask(ids: dict, pred) -> np.ndarray:
    out = None
    for ch, m in ids.items():
        if pred(ch):
            out = m.copy() if out is None else out | m
    return out if out is not None else np.zeros(len(next(iter(ids.values()))), dtype=bool)


def masks(text: str, vocab_chars: str) -> dict:
    """{character: where the text has it}, computed once for every candidate."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return {ch: codes == ord(ch) for ch in vocab_chars}


def signal_matrix(candidates: list[Candidate], text: str, vocab_chars: str, positions: np.ndarray) -> np.ndarray:
    """(len(positions), len(candidates)) float32: each candidate's signal over the whole text (its
    context is the whole text), read at `positions`. One candidate's full signal at a time."""
    ids = masks(text, vocab_chars)
    out = np.empty((len(positions), len(candidates)), dtype=np.float32)
    for j, c in enumerate(candidates):
        out[:, j] = signal(c, text, ids)[positions]
    return out


# ---------------------------------------------------------------- scoring

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


def strength(score: np.ndarray, metrics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(strength, direction) of scores (C, N): AUC folded to ≥ 0.5 and r to |r|, each divided by its
    'explained' threshold's distance from chance, so 1.0 means 'just explained' for both metrics."""
    auc = (metrics == "auc")[:, None]
    direction = np.where(auc, np.where(score >= 0.5, 1, -1), np.where(score >= 0, 1, -1)).astype(np.int8)
    folded = np.where(auc, (np.abs(score - 0.5)) / (EXPLAINED_AUC - 0.5), np.abs(score) / EXPLAINED_R)
    return folded, direction


def choose(fit_x, fit_signals, held_x, held_signals, candidates: list[Candidate], top: int = 3) -> dict:
    """Each cell's `top` explanations, chosen on the fit part, scored on the held-out part.

    fit_x (n_fit, N), held_x (n_held, N): activations of N cells; *_signals: (n, C) from
    signal_matrix. Returns arrays over cells: index (N, top) into candidates, direction (N, top)
    +1/-1, fit (N, top) and held (N, top) scores (AUC in the chosen direction, or r times it;
    held is NaN where the held-out part lacks MIN_EVIDENCE positives or negatives, and both are NaN
    where fewer than `top` candidates were eligible).
    """
    metrics = np.array([c.metric for c in candidates])
    named = np.array([c.named for c in candidates])
    fit_scores = scores(fit_x, fit_signals, metrics)
    ok = eligible(fit_signals, metrics, len(held_x))
    s, direction = strength(np.nan_to_num(fit_scores, nan=0.5), metrics)
    bonus = np.where(metrics == "auc", PREFER_NAMED / (EXPLAINED_AUC - 0.5), PREFER_NAMED / EXPLAINED_R)
    s = np.where(ok[:, None], s + (named * bonus)[:, None], -np.inf)
    k = min(top, len(candidates))
    best = np.argsort(-s, axis=0, kind="stable")[:k].T  # (N, k): candidates in the order they appear on ties
    cols = np.arange(s.shape[1])[:, None]
    chosen_dir = direction[best, cols]
    held_scores = scores(held_x, held_signals[:, np.unique(best)], metrics[np.unique(best)])
    lookup = np.full(len(candidates), -1)
    lookup[np.unique(best)] = np.arange(len(np.unique(best)))
    held = held_scores[lookup[best], cols]
    pos = held_signals.sum(axis=0)
    enough = np.where(metrics == "auc", np.minimum(pos, len(held_x) - pos) >= MIN_EVIDENCE, held_signals.std(axis=0) > 0)
    yes = metrics[best] == "auc"
    held = np.where(yes, np.where(chosen_dir > 0, held, 1 - held), held * chosen_dir)
    held = np.where(enough[best], held, np.nan)
    fit = fit_scores[best, cols]
    fit = np.where(yes, np.where(chosen_dir > 0, fit, 1 - fit), fit * chosen_dir)
    usable = np.isfinite(s[best, cols])  # fewer than `top` eligible candidates: the rest are placeholders
    return {"index": best.astype(np.int16), "direction": chosen_dir, "fit": np.where(usable, fit, np.nan).astype(np.float32),
            "held": np.where(usable, held, np.nan).astype(np.float32)}


def explained(held: np.ndarray, metric: str) -> bool:
    return bool(np.isfinite(held) and held >= (EXPLAINED_AUC if metric == "auc" else EXPLAINED_R))


def candidate_dicts(candidates: list[Candidate]) -> list[dict]:
    return [asdict(c) for c in candidates]
