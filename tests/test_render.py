"""Coloured text: readable colours, escaping, the prime, the tooltip and character names."""

import numpy as np
import pytest

from charmodel.view.render import (BINS, DARK_TEXT, LIGHT_TEXT, char_name, colour, coloured_text, contrast_ratio, css,
                                   display_values, markdown_text, next_guesses, text_colour)


def test_contrast_ratio_matches_the_wcag_definition():
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio((255, 255, 255), (255, 255, 255)) == pytest.approx(1.0)
    assert contrast_ratio((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)  # the AA grey


@pytest.mark.parametrize("palette", ["diverging", "sequential"])
def test_text_on_every_colour_bin_meets_wcag_aa(palette):
    for b in range(BINS):
        bg = colour(b / (BINS - 1), palette)
        assert contrast_ratio(text_colour(bg), bg) >= 4.5, (palette, b, bg)
    assert text_colour(colour(1.0, palette)) == LIGHT_TEXT and text_colour(colour(0.5, "diverging")) == DARK_TEXT
    rules = css()
    assert f"color:rgb{LIGHT_TEXT}".replace(" ", "") in rules.replace(" ", "")


def test_surprisal_palette_runs_from_white_to_red():
    assert colour(0.0, "sequential") == (247, 247, 247) and colour(1.0, "sequential") == (178, 24, 43)
    html = coloured_text("ab", np.array([0.0, 8.0]), 0.0, 8.0, palette="sequential")
    assert 'class="cm-s0"' in html and f'class="cm-s{BINS - 1}"' in html


def test_coloured_text_escapes_markup_and_marks_the_prime():
    html = coloured_text('<b>&"x', np.zeros(6), -1, 1, prime="<i>")
    assert "<b>" not in html and "&lt;b&gt;&amp;&quot;x" in html  # one merged span: same bin
    assert '<span class="cm-prime"' in html and "&lt;i&gt;" in html and "<i>" not in html
    tips = coloured_text("ab", np.zeros(2), -1, 1, titles=['"<t>&', "ok"])
    assert 'data-tip="&quot;&lt;t&gt;&amp;"' in tips  # hover text escaped inside the attribute


def test_sigmoid_scale_is_for_h_and_c_only():
    v, (lo, hi) = display_values(np.array([0.0, 2.0]), "h", "sigmoid")
    assert (lo, hi) == (0, 1) and v[0] == pytest.approx(0.5) and v[1] == pytest.approx(1 / (1 + np.exp(-2)))
    c, _ = display_values(np.array([2.0]), "c", "sigmoid")
    assert c[0] == pytest.approx(1 / (1 + np.exp(-np.tanh(2))))  # c is shown as tanh(c) first
    with pytest.raises(ValueError, match="for h and c"):
        display_values(np.array([0.5]), "f", "sigmoid")


def test_guesses_name_invisible_and_ambiguous_characters():
    assert [char_name(c) for c in " \n,\u00a0e"] == ["space", "newline", "comma", "U+00A0", "e"]
    assert next_guesses([[" ", ","]], np.array([[0.31, 0.01]])) == ["next: space 31%, comma 1%"]


def test_corpus_text_in_markdown_shows_as_itself():
    assert markdown_text("`the' *a_b* [x](y) 1. #") == "\\`the' \\*a\\_b\\* \\[x\\]\\(y\\) 1\\. \\#"
    assert markdown_text("plain words") == "plain words"
