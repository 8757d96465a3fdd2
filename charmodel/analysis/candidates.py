"""Candidate explanations: predicates over the text, tested exactly at every character.

A candidate is yes/no ("inside ( … )", "1–4 characters after ','") or a number ("position in
line"), and has a stable name (stored in atlas files), the phrase a person reads, and a group by
how much text it needs: current (the character itself), neighbour (the previous one),
short (within SHORT_REACH characters) or long. The library is built from the text itself, not
written per corpus; each kind of candidate is one block in the registry below.

Every signal is causal: its value at character t depends on the text up to t and nothing after
(tests/analysis/test_causal.py cuts the text after t and checks). What a cell anticipates is not a
term of its explanation.
"""

import re
import string
from collections import Counter
from dataclasses import dataclass

import numpy as np

from charmodel.analysis.cells import AFTER_QUOTE_CHARS, FEATURES, LOOKAHEAD, OPENERS, SCALAR, inside_quotation
from charmodel.analysis.predicates import (MIN_LINES, PAIRS, after_mark, bracket_depth, capped, class_mask,
                                           indentation, innermost_bracket, inside_pair, leading_whitespace,
                                           line_begins_with, line_bracket, position_in_word, quotation_closes,
                                           quotation_opens, since_last, string_marks, string_state, to_end_of_line,
                                           word_shape, word_so_far, previous_word, words_since)

SHORT_REACH = 8  # characters of context that still count as "short"
MARK_REACH = (2, 4, 8, 16)  # k in "within k characters after X" and "X within the next k"
FREQUENT = 0.001  # a character is frequent when it is at least this share of the fit text
FREQUENT_WORDS = 30  # "after the word W" for the text's most frequent words
WORD_PREFIXES = 40  # "the word so far is W" for the text's most frequent beginnings of words, of 3+ letters
FIRST_WORDS = 20  # "the line begins with W" for the text's most frequent first words of a line (of MIN_LINES+)
GROUPS = ("current", "neighbour", "short", "long")


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


GRAMMARS = ("full", "basic")
BASIC = ("named", "char", "prev")  # the "basic" grammar: the issue-17 prototype, for comparison (benchmarks/atlas.py)


# ---------------------------------------------------------------- the registry
# Each kind of candidate is one block below: a function that offers its candidates for a fit text
# (stable name, phrase, group, metric), registered in library order, and the signal of each name
# prefix it writes. A new kind is one more block.

@dataclass(frozen=True)
class Fit:
    """What the offers may read: the fit text only, so the held-out text cannot change which
    candidates exist."""

    text: str
    vocab: str
    counts: dict  # character -> occurrences in the fit text
    frequent: list  # characters that are at least FREQUENT of the fit text


OFFERS = []  # the offer functions, in library order
SIGNALS = {}  # name prefix -> signal(arg, text, ids) -> (T,) bool or float64


def offers(fn):
    OFFERS.append(fn)
    return fn


def library(fit_text: str, vocab_chars: str, grammar: str = "full") -> list[Candidate]:
    """Every candidate explanation for a model with this vocabulary, from the fit text only."""
    if grammar not in GRAMMARS:
        raise ValueError(f"unknown grammar {grammar!r}")
    counts = {ch: fit_text.count(ch) for ch in vocab_chars}
    n = max(len(fit_text), 1)
    fit = Fit(fit_text, vocab_chars, counts, [ch for ch in vocab_chars if counts[ch] >= FREQUENT * n])
    out = [c for offer in OFFERS for c in offer(fit)]
    if grammar == "basic":
        return [c for c in out if c.name.partition(":")[0] in BASIC]
    return out


def signal(candidate: Candidate, text: str, ids: dict) -> np.ndarray:
    """One candidate's value at every character of `text`: bool for yes/no, float64 for a number.
    ids: {character: boolean mask of where text has it}, shared between candidates (see masks)."""
    prefix, _, arg = candidate.name.partition(":")
    if prefix not in SIGNALS:
        raise ValueError(f"unknown candidate {candidate.name!r}")
    return SIGNALS[prefix](arg, text, ids)


def _mask(ids: dict, ch: str, T: int) -> np.ndarray:
    return ids[ch] if ch in ids else np.zeros(T, dtype=bool)


def _shift(a: np.ndarray, by: int) -> np.ndarray:
    """a moved `by` characters later (by > 0: the previous character's value) or earlier (by < 0)."""
    if by > 0:
        return np.concatenate([np.zeros(by, a.dtype), a[:-by]])
    return np.concatenate([a[-by:], np.zeros(-by, a.dtype)])


CLASSES = {"letter": ("a letter", lambda c: c.isalpha()), "lower": ("a lowercase letter", str.islower),
           "upper": ("an uppercase letter", str.isupper), "space": ("whitespace", str.isspace),
           "punct": ("punctuation", lambda c: c in string.punctuation),
           "consonant": ("a consonant", lambda c: c.isalpha() and c.lower() not in "aeiou")}
NEIGHBOUR_CLASSES = ("letter", "lower", "upper", "space", "punct")
NAMED_REACH = {"quote": "long", "after_quote": "long", "parens": "long", "line_position": "long",
               "sentence_end": "long", "word_start": "short", "word_end": "short"}


# ---------------------------------------------------------------- the kinds, in library order

@offers
def _named(fit):
    for key, (description, _) in FEATURES.items():
        if key in LOOKAHEAD:
            continue
        yield Candidate(f"named:{key}", description, NAMED_REACH.get(key, "current"), "r" if key in SCALAR else "auc",
                        named=True)


def _named_signal(arg, text, ids):
    return FEATURES[arg][1](text)


SIGNALS["named"] = _named_signal


@offers
def _class(fit):
    for cls in ("letter", "lower", "consonant"):
        yield Candidate(f"class:{cls}", CLASSES[cls][0], "current", "auc")


def _class_signal(arg, text, ids):
    return class_mask(ids, CLASSES[arg][1])


SIGNALS["class"] = _class_signal


@offers
def _char(fit):
    for ch in fit.vocab:
        yield Candidate(f"char:{ch}", f"the character {shown(ch)}", "current", "auc")


def _char_signal(arg, text, ids):
    return _mask(ids, arg, len(text))


SIGNALS["char"] = _char_signal


@offers
def _neighbours(fit):
    for ch in fit.vocab:
        yield Candidate(f"prev:{ch}", f"previous character {shown(ch)}", "neighbour", "auc")
    for cls in NEIGHBOUR_CLASSES:
        yield Candidate(f"prevclass:{cls}", f"previous character is {CLASSES[cls][0]}", "neighbour", "auc")


SIGNALS["prev"] = lambda arg, text, ids: _shift(_mask(ids, arg, len(text)), 1)
SIGNALS["prevclass"] = lambda arg, text, ids: _shift(class_mask(ids, CLASSES[arg][1]), 1)


@offers
def _marks(fit):
    for ch in fit.frequent:
        for k in MARK_REACH:
            group = "short" if k <= SHORT_REACH else "long"
            yield Candidate(f"after:{ch}:{k}", f"1–{k} characters after {shown(ch)}", group, "auc")


def _after_signal(arg, text, ids):
    ch, k = arg.rsplit(":", 1)
    return after_mark(_mask(ids, ch, len(text)), int(k))


SIGNALS["after"] = _after_signal


@offers
def _pairs(fit):
    for opener, closer in PAIRS:
        if fit.counts.get(opener) and fit.counts.get(closer):
            yield Candidate(f"pair:{opener}{closer}", f"inside {opener} … {closer}", "long", "auc")
    if any(fit.counts.get(o) for o, _ in PAIRS[:3]):
        yield Candidate("depth", "bracket nesting depth", "long", "r")


SIGNALS["pair"] = lambda arg, text, ids: inside_pair(text, arg[0], arg[1])
SIGNALS["depth"] = lambda arg, text, ids: bracket_depth(text)


@offers
def _quotations(fit):
    if any(fit.counts.get(o) for o in (*OPENERS, '"')):
        for k in (4, 8, 16, 32):
            if k != AFTER_QUOTE_CHARS:
                yield Candidate(f"afterquote:{k}", f"1–{k} characters after a quotation closes", "long", "auc")
        for k in (4, 16):  # not 1: the opening mark alone is a current-character fact
            yield Candidate(f"quotestart:{k}", f"the first {k} characters of a quotation", "long", "auc")


SIGNALS["afterquote"] = lambda arg, text, ids: after_mark(quotation_closes(text), int(arg)) & ~inside_quotation(text)
SIGNALS["quotestart"] = lambda arg, text, ids: (since_last(quotation_opens(text)) < int(arg)) & inside_quotation(text)


@offers
def _words(fit):
    for k in range(2, 7):
        yield Candidate(f"wordpos:{k}", f"character {k} of a word", "short", "auc")
    for k in range(4, 9, 2):
        yield Candidate(f"wordlen:{k}", f"{k} or more characters into a word", "short", "auc")
    yield Candidate("capword", "inside a capitalised word", "short", "auc")
    yield Candidate("capsword", "the word so far is in capitals", "short", "auc")
    words = Counter(m.rstrip("'’") for m in re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)*", fit.text))
    for w, _ in _most(words, FREQUENT_WORDS):
        yield Candidate(f"prevword:{w}", f"after the word '{w}'", "long", "auc")
    prefixes = Counter()
    for w, n in words.items():
        for k in range(3, len(w) + 1):
            prefixes[w[:k]] += n
    for w, _ in _most(prefixes, WORD_PREFIXES):
        yield Candidate(f"sofar:{w}", f"the word so far is '{w}'", "short" if len(w) <= SHORT_REACH else "long", "auc")


def _most(counts: Counter, k: int) -> list:
    return sorted(counts.items(), key=lambda p: (-p[1], p[0]))[:k]


SIGNALS["wordpos"] = lambda arg, text, ids: position_in_word(text) == int(arg)
SIGNALS["wordlen"] = lambda arg, text, ids: position_in_word(text) >= int(arg)
SIGNALS["capword"] = lambda arg, text, ids: word_shape(text, ids, all_capitals=False)
SIGNALS["capsword"] = lambda arg, text, ids: word_shape(text, ids, all_capitals=True)
SIGNALS["prevword"] = lambda arg, text, ids: previous_word(text, arg)
SIGNALS["sofar"] = lambda arg, text, ids: word_so_far(text, arg)


@offers
def _positions(fit):
    yield from (Candidate("pos:word", "position in word", "short", "r"),
                Candidate("pos:sentence", "position in sentence (characters since . ! or ?)", "long", "r"),
                Candidate("pos:paragraph", "position in paragraph", "long", "r"))
    if "\n" in fit.counts and any(re.finditer(r"^[ \t]", fit.text, re.MULTILINE)):
        yield Candidate("indent", "indentation of the line", "long", "r")
    for ch in fit.frequent:
        if not ch.isalnum() and ch != " ":
            yield Candidate(f"since:{ch}", f"characters since the last {shown(ch)}", "long", "r")
            yield Candidate(f"wordssince:{ch}", f"words since the last {shown(ch)}", "long", "r")


def _position_signal(arg, text, ids):
    if arg == "word":
        return position_in_word(text)
    if arg == "sentence":
        return capped(since_last(class_mask(ids, lambda c: c in ".!?")))
    paragraph = np.zeros(len(text), dtype=bool)
    paragraph[[m.end() - 1 for m in re.finditer(r"\n\n", text)]] = True
    return capped(since_last(paragraph))


SIGNALS["pos"] = _position_signal


SIGNALS["wordssince"] = lambda arg, text, ids: words_since(_mask(ids, arg, len(text)), text)
SIGNALS["indent"] = lambda arg, text, ids: indentation(text)
SIGNALS["since"] = lambda arg, text, ids: capped(since_last(_mask(ids, arg, len(text))))


# What code and markup are made of, for the characters and words this text actually has.

@offers
def _leading_whitespace(fit):
    if re.search(r"^[ \t]+\S", fit.text, re.MULTILINE):
        yield Candidate("lead", "in the leading whitespace of a line", "long", "auc")


SIGNALS["lead"] = lambda arg, text, ids: leading_whitespace(ids, len(text))


@offers
def _strings(fit):
    strings = string_marks(fit.text)
    for ch in strings:
        yield Candidate(f"string:{ch}{strings}", f"inside a {ch} … {ch} string", "long", "auc")
        if fit.text.count(ch * 3) >= 2 * MIN_LINES:
            yield Candidate(f"block:{ch}{strings}", f"inside a {ch * 3} … {ch * 3} block", "long", "auc")
    if len(strings) > 1:
        yield Candidate(f"string:*{strings}", "inside a one-line string", "long", "auc")


def _in_strings(block: bool):
    """arg: the mark (or * for any), then every string mark of the text."""
    def signal_(arg, text, ids):
        state = string_state(text, arg[1:])
        if arg[0] == "*":
            return state > 0
        return state == (-1 if block else 1) * (1 + arg[1:].index(arg[0]))
    return signal_


SIGNALS["string"], SIGNALS["block"] = _in_strings(False), _in_strings(True)


@offers
def _to_end_of_line(fit):
    for ch in fit.frequent:
        if not (ch.isalnum() or ch.isspace()):
            yield Candidate(f"toeol:{ch}", f"from {shown(ch)} to the end of the line", "long", "auc")


SIGNALS["toeol"] = lambda arg, text, ids: to_end_of_line(_mask(ids, arg, len(text)), _mask(ids, "\n", len(text)))


@offers
def _line_brackets(fit):
    present = [(o, c) for o, c in PAIRS[:3] if fit.counts.get(o) and fit.counts.get(c)]
    for o, c in present:
        yield Candidate(f"linepair:{o}{c}", f"inside {o} … {c} opened on this line", "long", "auc")
    if len(present) > 1:  # with one kind of bracket, "innermost" is "inside"
        for o, c in present:
            yield Candidate(f"innermost:{o}{c}", f"the innermost open bracket is {o} … {c}", "long", "auc")


SIGNALS["linepair"] = lambda arg, text, ids: line_bracket(text, arg[0], arg[1])
SIGNALS["innermost"] = lambda arg, text, ids: innermost_bracket(text) == PAIRS.index((arg[0], arg[1])) + 1


@offers
def _line_starts(fit):
    first = Counter(re.findall(r"^[ \t]*([^\W\d]\w*|#)", fit.text, re.MULTILINE))
    for w, n in sorted(first.items(), key=lambda p: (-p[1], p[0]))[:FIRST_WORDS]:
        if n >= MIN_LINES:
            yield Candidate(f"linestart:{w}", f"the line begins with '{w}'", "long", "auc")


SIGNALS["linestart"] = lambda arg, text, ids: line_begins_with(text, arg)


# Sets of characters, fitted to the cells on the fit part (explain.character_sets offers them): one
# yes/no predicate each, "the character is one of a e i o u", read in one breath.

SET_CHARS = 6  # characters at most in one set
SET_NAMES = {" ": "space", "\n": "newline", "\t": "tab"}


def character_set(chars: str, previous: bool) -> Candidate:
    listed = " ".join(SET_NAMES.get(ch, ch) for ch in chars)  # one character each, invisible ones by name
    if previous:
        return Candidate(f"prevset:{chars}", f"the previous character is one of {listed}", "neighbour", "auc")
    return Candidate(f"charset:{chars}", f"the character is one of {listed}", "current", "auc")


def _in_set(arg: str, ids: dict, T: int) -> np.ndarray:
    out = np.zeros(T, dtype=bool)
    for ch in arg:
        out |= _mask(ids, ch, T)
    return out


def from_phrase(phrase: str, fit_text: str, vocab_chars: str) -> Candidate | None:
    """The candidate a person copied from an explanation (its phrase, without its sign): one of the
    library's for this fit text, or a set of characters; None if neither."""
    for c in library(fit_text, vocab_chars):
        if c.phrase == phrase:
            return c
    for previous, lead in ((True, "the previous character is one of "), (False, "the character is one of ")):
        if phrase.startswith(lead):
            names = {name: ch for ch, name in SET_NAMES.items()}
            chars = [names.get(w, w) for w in phrase[len(lead):].split(" ")]
            if chars and all(len(ch) == 1 and ch in vocab_chars for ch in chars):
                return character_set("".join(chars), previous)
    return None


SIGNALS["charset"] = lambda arg, text, ids: _in_set(arg, ids, len(text))
SIGNALS["prevset"] = lambda arg, text, ids: _shift(_in_set(arg, ids, len(text)), 1)


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
