"""Predicates over a text, exact at every character, as NumPy arrays: where each character sits
relative to marks, pairs, words, lines and strings. What candidates.py builds its signals from."""

import functools
import re

import numpy as np

from charmodel.analysis.cells import _in_word, inside_quotation, pair_depth, word_start

FAR = 1 << 40  # "no such character yet"
CAP = 200  # distances and positions are capped here, so one long line does not dominate r
MIN_LINES = 30  # a string mark or first word counts when at least this many lines hold it
PAIRED_LINES = 0.9  # a mark is "symmetric" (a string delimiter) when this share of the lines holding it hold it an even number of times
PAIRS = (("(", ")"), ("[", "]"), ("{", "}"), ("<", ">"), ("`", "'"), ('"', '"'), ("‘", "’"), ("“", "”"))


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


def capped(d: np.ndarray) -> np.ndarray:
    return np.minimum(d, CAP).astype(np.float64)


# ---------------------------------------------------------------- the library


def word_shape(text: str, ids: dict, all_capitals: bool) -> np.ndarray:
    """1 inside words that start with a capital (or, all_capitals, are 2+ letters with no lowercase)."""
    w = _in_word(text)
    starts = np.flatnonzero(word_start(text))
    ends = np.flatnonzero(w & ~np.concatenate([w[1:], [False]])) + 1  # one past each word's end
    keep = class_mask(ids, str.isupper)[starts]
    if all_capitals:
        lower = np.concatenate([[0], np.cumsum(class_mask(ids, str.islower))])
        keep &= (lower[ends] - lower[starts] == 0) & (ends - starts >= 2)
    delta = np.zeros(len(text) + 1, dtype=np.int64)
    np.add.at(delta, starts[keep], 1)
    np.add.at(delta, ends[keep], -1)
    return np.cumsum(delta[:-1]) > 0


def class_mask(ids: dict, pred) -> np.ndarray:
    out = None
    for ch, m in ids.items():
        if pred(ch):
            out = m.copy() if out is None else out | m
    return out if out is not None else np.zeros(len(next(iter(ids.values()))), dtype=bool)
