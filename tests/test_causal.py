"""No explanation term reads ahead: every candidate kind of every grammar, on prose and on code,
has the same value at character t whether the text goes on after t or is cut there."""

import numpy as np
import pytest

from charmodel.analysis import candidates
from charmodel.analysis.cells import FEATURES, LOOKAHEAD, inside_quotation
from charmodel.run.corpus import clean, read_text

from .conftest import ROOT

PROSE = ("`I don't know,' said Alice. `Nor I know' she went on, `what \"Alice's\" cat\n\nmeans (if (any)).'\n"
         "The CAT-- `THAT'S it!' The little Rabbit's house; 'twas--\n")
CODE = ('def f(x, y):\n    """Doc: it\'s a \'string\'."""\n    s = r\'a\\\'b\' + "c" + \'\'  # it\'s\n'
        "    if (x[0] and {y: (1,\n            2)}):\n        return '''block\n  ''' + f'{x}'\n\nclass A:\n    pass\n")


def _cut_mismatches(fit: str, text: str) -> dict:
    vocab = "".join(sorted(set(fit + text)))
    library = candidates.library(fit, vocab) + [candidates.character_set("aeiou ", previous) for previous in (False, True)]
    full = {c.name: np.asarray(candidates.signal(c, text, candidates.masks(text, vocab)), float) for c in library}
    bad = {}
    for t in range(len(text)):
        cut = text[: t + 1]
        ids = candidates.masks(cut, vocab)
        for c in library:
            if not np.array_equal(np.asarray(candidates.signal(c, cut, ids), float), full[c.name][: t + 1]):
                bad.setdefault(c.name, t)
    return bad, {c.name.partition(":")[0] for c in library}


@pytest.mark.parametrize("corpus,piece", [("alice.txt", PROSE), ("python.txt", CODE)])
def test_cutting_the_text_after_t_changes_no_signal_at_t(corpus, piece):
    fit = clean(read_text(ROOT / "data" / corpus))[:60000] + piece
    bad, kinds = _cut_mismatches(fit, piece)
    assert not bad, f"signals that read ahead (name: first position): {bad}"
    assert {"named", "pair", "afterquote", "quotestart", "wordpos", "capword", "capsword", "prevword", "sofar",
            "pos", "since", "wordssince", "charset", "prevset"} <= kinds
    if corpus == "python.txt":
        assert {"string", "block", "indent", "linestart", "lead", "linepair", "innermost", "toeol"} <= kinds


def test_the_cut_test_catches_a_signal_that_reads_ahead():
    """The test above is not vacuous: a look-ahead hypothesis fails it at once."""
    text = "abc. def"
    full = FEATURES["sentence_end"][1](text)
    assert "sentence_end" in LOOKAHEAD
    assert any(not np.array_equal(FEATURES["sentence_end"][1](text[: t + 1]), full[: t + 1]) for t in range(len(text)))


def test_an_apostrophe_after_a_letter_is_decided_by_the_next_character():
    # don't: the t shows the apostrophe was inside a word; the final apostrophe, after a letter, is inside
    # until the space shows it closed the quotation; after '!' a closing mark is outside at once
    assert "".join("1" if v else "0" for v in inside_quotation("`don't' x")) == "1111111" + "00"
    assert "".join("1" if v else "0" for v in inside_quotation("`no!' x")) == "1111" + "000"
