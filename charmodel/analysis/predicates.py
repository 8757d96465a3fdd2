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
    after a letter closes at the next character unless that is a letter (don't; see
    cells.pair_depth); a mark that both opens and closes toggles, and a
    blank line ends it, as quotations re-open in each paragraph. The closer is outside, as in
    cells.inside_quotation."""
    return pair_depth(text, opener, closer, apostrophe=closer in "'’") > 0


def bracket_depth(text: str) -> np.ndarray:
    return sum(pair_depth(text, o, c) for o, c in PAIRS[:3]).astype(np.float64)


def position_in_word(text: str) -> np.ndarray:
    """1 at a word's first character, 2 at its second, ...; 0 outside words."""
    w = _in_word(text)
    return np.where(w, since_last(word_start(text)) + 1, 0).astype(np.float64)


def indentation(text: str) -> np.ndarray:
    """Leading spaces and tabs of the line each character is on, as read so far: on the leading
    whitespace itself, how much of it has been read (causal); the newline ends its own line."""
    out = np.zeros(len(text))
    for m in re.finditer(r"^[ \t]*", text, re.MULTILINE):
        end = text.find("\n", m.end())
        out[m.start() : len(text) if end < 0 else end + 1] = m.end() - m.start()
        out[m.start() : m.end()] = np.arange(1, m.end() - m.start() + 1)
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


PREFIX = re.compile(r"(?:^|\W)(?:[rRbBuUfF]|[rR][bBfF]|[bBfF][rR])$")  # a string's prefix: r'…', rb'…', f'…'


def _apostrophe(text: str, a: int) -> bool:
    """An apostrophe right after a letter or digit (it's) opens nothing, unless what precedes it is
    a string prefix (r'…'): decided from what came before."""
    return a > 0 and text[a] in "'’" and text[a - 1].isalnum() and not PREFIX.search(text[max(0, a - 3) : a])


@_for_the_last_text
def string_state(text: str, marks: str) -> np.ndarray:
    """A small lexer for string literals in any language, decided at each character from the text
    read so far (causal). Per character: 0 outside strings; 1 + i inside a string opened by marks[i]
    alone (from the opening mark to the closing one, both included; a newline ends it unclosed);
    -(1 + i) inside marks[i] tripled (a block such as a docstring, across lines, to the next
    tripled mark). A tripled opening reads first as an empty string, then as a block from its third
    mark on. A backslash escapes the next character; inside a string the other marks are plain
    characters; see _apostrophe."""
    state = np.zeros(len(text), dtype=np.int8)
    cur, opened, empty, run, last = 0, 0, -2, 0, -2  # empty: where an empty string last closed; run: marks in a row
    for t in re.finditer(r"\\.|\n|[" + re.escape(marks) + "]", text, re.S):
        tok, at = t.group(), t.start()
        if cur == 0:
            if tok[0] == "\\" or tok == "\n" or _apostrophe(text, at):
                continue
            k = 1 + marks.index(tok)
            cur, opened = (-k, at) if empty == at - 1 and text[empty] == tok else (k, at)
            run, last = (0, -2)
        elif cur > 0:
            if tok == "\n" or tok == marks[cur - 1]:
                state[opened : at if tok == "\n" else at + 1] = cur
                empty = at if tok != "\n" and at == opened + 1 else -2
                cur = 0
        elif tok == marks[-cur - 1]:
            run, last = (run + 1 if last == at - 1 else 1), at
            if run == 3:
                state[opened : at + 1] = cur
                cur, empty = 0, -2
        else:
            run, last = 0, -2
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
    """1 once the line's first word is known to be `word`, up to (not including) the newline: from
    the character after it for a word that could go on (def, not define), from its last character
    for a mark (#). Causal: decided from the text read so far."""
    delta = np.zeros(len(text) + 1, dtype=np.int32)
    open_ended = word[-1].isalnum() or word[-1] == "_"
    tail = r"(?!\w)" if open_ended else ""
    spans = [(m.end(1) - (not open_ended), m.end()) for m in
             re.finditer(rf"^[ \t]*({re.escape(word)}){tail}[^\n]*", text, re.MULTILINE)]
    spans = [(a, b) for a, b in spans if a < b]
    if spans:
        a, b = np.array(spans).T
        np.add.at(delta, a, 1)
        np.add.at(delta, b, -1)
    return np.cumsum(delta[:-1]) > 0


def capped(d: np.ndarray) -> np.ndarray:
    return np.minimum(d, CAP).astype(np.float64)


# ---------------------------------------------------------------- the library


def word_shape(text: str, ids: dict, all_capitals: bool) -> np.ndarray:
    """1 inside a word that starts with a capital, from its first character on (or, all_capitals,
    where the word so far has 2+ characters and no lowercase letter). Causal: the word so far."""
    w = _in_word(text)
    start = since_last(word_start(text))  # characters since the word began
    first = np.arange(len(text)) - start  # where the current word began
    upper = class_mask(ids, str.isupper)
    out = w & upper[np.clip(first, 0, max(len(text) - 1, 0))] if len(text) else w
    if all_capitals:
        lower = np.concatenate([[0], np.cumsum(class_mask(ids, str.islower))])
        t = np.arange(len(text))
        out = out & (lower[t + 1] - lower[np.clip(first, 0, None)] == 0) & (start >= 1)
    return out


def class_mask(ids: dict, pred) -> np.ndarray:
    out = None
    for ch, m in ids.items():
        if pred(ch):
            out = m.copy() if out is None else out | m
    return out if out is not None else np.zeros(len(next(iter(ids.values()))), dtype=bool)


# ---------------------------------------------------------------- words, as read so far


@_for_the_last_text
def word_spans(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the words (cells._in_word's runs; ends one past the last character)."""
    w = np.concatenate([[False], _in_word(text), [False]]).astype(np.int8)
    edges = np.diff(w)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def word_so_far(text: str, word: str) -> np.ndarray:
    """1 where the word read so far is exactly `word`: at its last character, when the word began
    there (it may still go on: 'the' in 'them')."""
    out = np.zeros(len(text), dtype=bool)
    starts, _ = word_spans(text)
    n = len(word)
    hits = [s + n - 1 for s in starts if text.startswith(word, s)]
    out[np.array(hits, dtype=np.int64)] = True
    return out


def previous_word(text: str, word: str) -> np.ndarray:
    """1 where the last finished word is `word` (a trailing apostrophe aside): from the character
    that ends it (the first one outside it) up to the end of the next word, so through the gap and
    the next word as it is read. Causal: a word is finished once a character outside it is read."""
    starts, ends = word_spans(text)
    delta = np.zeros(len(text) + 1, dtype=np.int32)
    for i, (s, e) in enumerate(zip(starts, ends)):
        if e < len(text) and text[s:e].rstrip("'’") == word:
            delta[e] += 1
            delta[ends[i + 1] if i + 1 < len(ends) and ends[i + 1] < len(text) else len(text)] -= 1
    return np.cumsum(delta[:-1]) > 0


def words_since(mask: np.ndarray, text: str) -> np.ndarray:
    """Words begun since the last position where mask holds (at or before t), capped at CAP; CAP
    before the first."""
    begun = np.cumsum(word_start(text))
    last = _last(mask)
    out = begun - np.where(last >= 0, begun[np.maximum(last, 0)], -CAP)
    return np.minimum(out, CAP).astype(np.float64)
