"""Explanations for cells, generated from the text and scored as automated interpretability does.

An explanation predicts a cell's value at every character. It is built from predicates over the
text that we can test exactly at every character: yes/no ("inside ( … )", "1–4 characters after
','") or a number ("position in line"). The library is built from the text itself, not
hand-written per corpus:

  * the named hypotheses of cells.py (inside a quotation, first character of a word, ...);
  * the current, previous and next character, for every character and class of the vocabulary
    (the next character is what the model is about to write);
  * "within k characters after X" and "X within the next k characters", for frequent characters;
  * inside every opener/closer pair the text contains, and which pair is the innermost; frequent
    words, word shape;
  * positions: in word, line, sentence and paragraph, characters since the last X, indentation,
    bracket depth;
  * what code and markup are made of, from the text's frequent characters: the leading
    whitespace of a line, inside X … X on one line (for every mark that lines hold in pairs:
    string literals), from X to the end of the line (comments), the line begins with W (for the
    text's frequent first words).

The score is the simulation score: the Pearson r between what an explanation predicts and what
the cell does, on text that played no part in choosing it. For one yes/no predicate it is the
point-biserial r, which, unlike ROC AUC, counts how much of the cell's movement the predicate
accounts for, so a cell at an extreme on every rare ')' is not "explained" by ')' unless ')'
is most of what it does.

An explanation has up to MAX_TERMS terms, chosen by forward selection on the fit part: the
candidate with the largest |r| first, then each candidate that most raises the r of a
least-squares fit of the cell on the terms so far, joining only if it raises that r by MIN_GAIN
or more. The prediction is the fitted sum (intercept + Σ weight · signal), and its held-out r is
the score: the sign of each term is its weight's, chosen on the fit part. Rare predicates win by
chance, so a yes/no candidate is eligible only with MIN_EVIDENCE positive and negative characters
in the fit part and as many expected in the held-out part (from the fit part's rate: the held-out
text never decides eligibility). tests/test_atlas.py::test_choice_ignores_the_held_out_part
scrambles the held-out part and checks that no choice moves.

Every candidate belongs to one of four groups, by how much text it needs:
  current (the character itself), neighbour (the previous or next character), short (within
  SHORT_REACH characters) and long (more, or unbounded: pairs, positions, quotations, lines).
An explanation's group is that of its first term, the strongest alone.

No TensorFlow; the signals come from the text and the scores from arrays of activations.
"""

import functools
import re
import string
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from .cells import AFTER_QUOTE_CHARS, FEATURES, OPENERS, SCALAR, _in_word, inside_quotation, pair_depth, word_start

MIN_EVIDENCE = 30  # positive (and negative) characters a yes/no candidate needs in each part
EXPLAINED_R = 0.5  # a cell is explained when its explanation's held-out simulation r reaches this
MAX_TERMS = 3  # terms of one explanation
MIN_GAIN = 0.02  # a further term joins only if it raises the fit part's r by at least this
PREFER_NAMED = 0.01  # a named hypothesis wins a first term over a mechanical one at most this much higher in |r|
SHORT_REACH = 8  # characters of context that still count as "short"
MARK_REACH = (2, 4, 8, 16)  # k in "within k characters after X" and "X within the next k"
FREQUENT = 0.001  # a character is frequent when it is at least this share of the fit text
FREQUENT_WORDS = 30  # "inside the word W" for the text's most frequent words of 3+ letters
FIRST_WORDS = 20  # "the line begins with W" for the text's most frequent first words of a line...
MIN_LINES = 30  # ...that begin at least this many lines
PAIRED_LINES = 0.9  # a mark is "symmetric" (a string delimiter) when this share of the lines holding it hold it an even number of times
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


def _last(mask: np.ndarray) -> np.ndarray:
    """Position of the last character where mask holds, at or before t (-1 if none)."""
    return np.maximum.accumulate(np.where(mask, np.arange(len(mask)), -1))


def leading_whitespace(ids: dict, T: int) -> np.ndarray:
    """1 on the spaces and tabs before a line's first other character."""
    none = np.zeros(T, dtype=bool)
    blank = ids.get(" ", none) | ids.get("\t", none)
    newline = ids.get("\n", none)
    other = ~(blank | newline)
    return blank & (_last(newline) >= _last(other))  # equal only before both: the text's first line


def _for_the_last_text(fn):
    """Memoise fn(text, *args) for the last text only: every candidate of one kind reads the same
    pass over the text (the fit part's, then the held-out part's)."""
    memo = {}

    @functools.wraps(fn)
    def wrapper(text: str, *args):
        key = (len(text), hash(text), args)
        if key not in memo:
            memo.clear()
            memo[key] = fn(text, *args)
        return memo[key]

    return wrapper


STRING_MARKS = ("'", '"', "`")  # marks that may delimit strings, when the text holds them in pairs


def _apostrophe(text: str, a: int) -> bool:
    """An apostrophe between two letters or digits (it's) opens and closes nothing."""
    return 0 < a < len(text) - 1 and text[a] in "'’" and text[a - 1].isalnum() and text[a + 1].isalnum()


@_for_the_last_text
def string_state(text: str, marks: str) -> np.ndarray:
    """A small lexer for string literals in any language. Per character: 0 outside strings; 1 + i
    inside a string opened by marks[i] alone (from the opening mark to the closing one, both
    included; a newline ends it unclosed); -(1 + i) inside marks[i] tripled (a block such as a
    docstring, across lines, to the next tripled mark). A backslash escapes the next character;
    inside a string the other marks are plain characters; see _apostrophe."""
    tokens = "|".join([re.escape(m * 3) for m in marks] + [re.escape(m) for m in marks])
    state = np.zeros(len(text), dtype=np.int8)
    cur, opened = 0, 0
    for t in re.finditer(r"\\.|\n|" + tokens, text, re.S):
        tok = t.group()
        if tok[0] == "\\" or (cur == 0 and tok == "\n"):
            continue
        if cur == 0:
            if len(tok) == 1 and _apostrophe(text, t.start()):
                continue
            cur = (-1 if len(tok) == 3 else 1) * (1 + marks.index(tok[0]))
            opened = t.start()
        elif (cur > 0 and tok in ("\n", marks[cur - 1])) or (cur < 0 and tok == marks[-cur - 1] * 3):
            state[opened : t.start() if tok == "\n" else t.end()] = cur
            cur = 0
    if cur:
        state[opened:] = cur
    return state


def string_marks(text: str) -> str:
    """The marks of STRING_MARKS that this text uses as string delimiters: of the lines holding the
    mark (once escapes, tripled marks and apostrophes inside words are set aside), at least
    PAIRED_LINES hold it an even number of times, and at least MIN_LINES hold it at all."""
    out = ""
    lines = text.split("\n")
    for ch in STRING_MARKS:
        inside_word = r"|(?<=[^\W_])'(?=[^\W_])" if ch == "'" else ""  # as _apostrophe
        plain = re.compile(r"\\.|" + re.escape(ch * 3) + inside_word)
        held = [n for n in (plain.sub("", line).count(ch) for line in lines if ch in line) if n]
        if len(held) >= MIN_LINES and sum(n % 2 == 0 for n in held) >= PAIRED_LINES * len(held):
            out += ch
    return out


def line_bracket(text: str, opener: str, closer: str) -> np.ndarray:
    """1 inside opener … closer opened on this line: the count of openers not yet closed since the
    line began is positive (a newline resets it; a closer with none open closes nothing)."""
    out = np.zeros(len(text), dtype=bool)
    depth, since = 0, 0
    for t in re.finditer(f"[{re.escape(opener + closer)}\n]", text):
        tok, at = t.group(), t.start()
        if tok == "\n":
            if depth:
                out[since:at] = True
            depth = 0
        elif tok == opener:
            since = at if depth == 0 else since
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                out[since : at + 1] = True
    if depth:
        out[since:] = True
    return out


def to_end_of_line(mark: np.ndarray, newline: np.ndarray) -> np.ndarray:
    """1 from the line's first mark up to (not including) its newline."""
    return _last(mark) > _last(newline)


@_for_the_last_text
def innermost_bracket(text: str) -> np.ndarray:
    """After reading each character, which bracket is the innermost open one: 1 + its index in
    PAIRS[:3], or 0 outside every bracket. A closer closes the innermost opener of its own kind;
    an unmatched closer closes nothing. Brackets nest across lines."""
    kinds = {c: i + 1 for i, pair in enumerate(PAIRS[:3]) for c in pair}
    top = np.zeros(len(text) + 1, dtype=np.int8)
    stack, marks, values = [], [0], [0]
    for m in re.finditer(r"[()\[\]{}]", text):
        k = kinds[m.group()]
        if m.group() in "([{":
            stack.append(k)
        elif k in stack:
            del stack[len(stack) - 1 - stack[::-1].index(k)]
        else:
            continue
        marks.append(m.start())
        values.append(stack[-1] if stack else 0)
    marks.append(len(text))
    for a, b, v in zip(marks[:-1], marks[1:], values):
        top[a:b] = v
    return top[: len(text)]


def line_begins_with(text: str, word: str) -> np.ndarray:
    """1 from the line's first word, when it is `word`, up to (not including) the newline."""
    delta = np.zeros(len(text) + 1, dtype=np.int32)
    tail = r"(?!\w)" if word[-1].isalnum() or word[-1] == "_" else ""
    spans = [(m.start(1), m.end()) for m in re.finditer(rf"^[ \t]*({re.escape(word)}){tail}[^\n]*", text, re.MULTILINE)]
    if spans:
        a, b = np.array(spans).T
        np.add.at(delta, a, 1)
        np.add.at(delta, b, -1)
    return np.cumsum(delta[:-1]) > 0


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
    return out + code_candidates(fit_text, frequent, counts)


def code_candidates(fit_text: str, frequent: list[str], counts: dict) -> list[Candidate]:
    """What code and markup are made of, for the characters and words this text actually has."""
    out = []
    if re.search(r"^[ \t]+\S", fit_text, re.MULTILINE):
        out.append(Candidate("lead", "in the leading whitespace of a line", "long", "auc"))
    marks = [ch for ch in frequent if not (ch.isalnum() or ch.isspace())]
    strings = string_marks(fit_text)
    for ch in strings:
        out.append(Candidate(f"string:{ch}{strings}", f"inside a {ch} … {ch} string", "long", "auc"))
        if fit_text.count(ch * 3) >= 2 * MIN_LINES:
            out.append(Candidate(f"block:{ch}{strings}", f"inside a {ch * 3} … {ch * 3} block", "long", "auc"))
    if len(strings) > 1:
        out.append(Candidate(f"string:*{strings}", "inside a one-line string", "long", "auc"))
    for ch in marks:
        out.append(Candidate(f"toeol:{ch}", f"from {shown(ch)} to the end of the line", "long", "auc"))
    present = [(o, c) for o, c in PAIRS[:3] if counts.get(o) and counts.get(c)]
    for o, c in present:
        out.append(Candidate(f"linepair:{o}{c}", f"inside {o} … {c} opened on this line", "long", "auc"))
    if len(present) > 1:  # with one kind of bracket, "innermost" is "inside"
        for o, c in present:
            out.append(Candidate(f"innermost:{o}{c}", f"the innermost open bracket is {o} … {c}", "long", "auc"))
    first = Counter(re.findall(r"^[ \t]*([^\W\d]\w*|#)", fit_text, re.MULTILINE))
    for w, n in sorted(first.items(), key=lambda p: (-p[1], p[0]))[:FIRST_WORDS]:
        if n >= MIN_LINES:
            out.append(Candidate(f"linestart:{w}", f"the line begins with '{w}'", "long", "auc"))
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
    if kind == "lead":
        return leading_whitespace(ids, T)
    if kind in ("string", "block"):  # arg: the mark (or * for any), then every string mark of the text
        state = string_state(text, arg[1:])
        if arg[0] == "*":
            return state > 0
        return state == (1 if kind == "string" else -1) * (1 + arg[1:].index(arg[0]))
    if kind == "linepair":
        return line_bracket(text, arg[0], arg[1])
    if kind == "toeol":
        return to_end_of_line(mask(arg), mask("\n"))
    if kind == "innermost":
        return innermost_bracket(text) == PAIRS.index((arg[0], arg[1])) + 1
    if kind == "linestart":
        return line_begins_with(text, arg)
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


def signal_matrix(candidates: list[Candidate], text: str, vocab_chars: str, *positions: np.ndarray):
    """(len(positions), len(candidates)) float32 for each array of positions given: each
    candidate's signal over the whole text (its context is the whole text), read at those
    positions. One candidate's full signal at a time, computed once for every array."""
    ids = masks(text, vocab_chars)
    out = [np.empty((len(p), len(candidates)), dtype=np.float32) for p in positions]
    for j, c in enumerate(candidates):
        full = signal(c, text, ids)
        for o, p in zip(out, positions):
            o[:, j] = full[p]
    return out[0] if len(out) == 1 else out


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
                   min_gain: float = MIN_GAIN) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's terms by forward selection, on correlations alone (no pass over the text).

    r: (C, N) correlations of candidates with cells; gram: (C, C) correlations between candidates;
    ok: (C,) eligible. The first term is the largest |r| (a named candidate wins within
    PREFER_NAMED). Each later step adds the candidate whose part not already explained by the terms
    so far (its residual) best predicts the cell: the gain in R² is cov(cell, residual)² /
    var(residual), kept up to date by Gram-Schmidt on the correlations (rr, vv below). A term joins
    only if the fit's r, sqrt(R²), rises by min_gain. Returns (terms (N, max_terms) int, -1 where
    none; fit r (N,))."""
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
            join = active & np.isfinite(best) & (np.sqrt(new_r2) - np.sqrt(r2) >= min_gain)
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


def choose(fit_x, fit_signals, held_x, held_signals, candidates: list[Candidate]) -> dict:
    """Each cell's explanation, chosen on the fit part and scored on the held-out part.

    fit_x (n_fit, N), held_x (n_held, N): activations of N cells; *_signals: (n, C) from
    signal_matrix. Returns arrays over cells: terms (N, MAX_TERMS) indices into candidates (-1:
    none; all -1 where no candidate was eligible), weights (N, MAX_TERMS) and intercept (N,) of
    the prediction, fit_r (N,), simulation_r (N,) held out, term_r (N, MAX_TERMS) each term's own
    held-out r in its sign, and auc (N,): the held-out ROC AUC of a one-term yes/no explanation in
    its sign (NaN otherwise, or where the held-out part lacks MIN_EVIDENCE of either side).
    """
    metrics = np.array([c.metric for c in candidates])
    named = np.array([c.named for c in candidates])
    ok = eligible(fit_signals, metrics, len(held_x))
    r = correlations(fit_x, fit_signals)
    zs, sig_mean, sig_sd = _standardised(fit_signals)
    gram = (zs.T.astype(np.float64) @ zs) / len(zs)
    del zs
    terms, fit_r = forward_select(r, gram, ok, named)
    x_mean, x_sd = moments(fit_x)
    weights, intercept = least_squares(terms, r, gram, sig_mean, sig_sd, x_mean, x_sd)
    sim, alone = held_out(terms, weights, held_x, held_signals)
    sim = np.where(terms[:, 0] >= 0, sim, np.nan)
    # the AUC column: one yes/no term, where the held-out part has enough of both sides
    single = (terms[:, 0] >= 0) & (terms[:, 1] < 0) & (metrics[np.maximum(terms[:, 0], 0)] == "auc")
    auc = np.full(len(terms), np.nan)
    if single.any():
        which = np.unique(terms[single, 0])
        pos = held_signals[:, which].sum(axis=0)
        enough = np.minimum(pos, len(held_x) - pos) >= MIN_EVIDENCE
        lookup = np.full(len(candidates), -1)
        lookup[which] = np.arange(len(which))
        cells = np.flatnonzero(single)
        got = scores(held_x[:, cells], held_signals[:, which], metrics[which])  # (len(which), len(cells))
        row = lookup[terms[cells, 0]]
        a = got[row, np.arange(len(cells))]
        a = np.where(weights[cells, 0] > 0, a, 1 - a)
        auc[cells] = np.where(enough[row], a, np.nan)
    return {"terms": terms.astype(np.int16), "weights": weights.astype(np.float32),
            "intercept": intercept.astype(np.float32), "fit_r": np.where(terms[:, 0] >= 0, fit_r, np.nan).astype(np.float32),
            "simulation_r": sim.astype(np.float32), "term_r": alone.astype(np.float32), "auc": auc.astype(np.float32)}


def explained(simulation_r) -> bool:
    return bool(np.isfinite(simulation_r) and simulation_r >= EXPLAINED_R)


SIGNS = {1: "+", -1: "−"}


def phrase(terms: list[dict]) -> str:
    """'vowel (+) · after whitespace (−)': each term with the sign of its weight."""
    return " · ".join(f"{t['explanation']} ({SIGNS[t['sign']]})" for t in terms)


def predict(candidates: list[Candidate], terms, weights, intercept: float, text: str, vocab_chars: str) -> np.ndarray:
    """What an explanation predicts at every character of `text`: intercept + Σ weight · signal."""
    ids = masks(text, vocab_chars)
    out = np.full(len(text), float(intercept))
    for j, w in zip(terms, weights):
        if j >= 0:
            out += float(w) * signal(candidates[j], text, ids).astype(np.float64)
    return out


def candidate_dicts(candidates: list[Candidate]) -> list[dict]:
    return [asdict(c) for c in candidates]
