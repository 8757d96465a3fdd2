"""Coloured text as HTML: every character coloured by one value.

Two palettes: diverging, blue (low) to white to red (high), for values with a meaningful middle
(h, tanh(c), gates); and sequential, white to red, for values where only "high" matters
(surprisal: the surprising characters stand out). Text on the darkest colours turns white, so
every bin meets WCAG AA contrast (4.5:1; `contrast_ratio`, tested for every bin).

Built for thousands of characters: every character is escaped, colours come from a small set of
CSS classes defined once, and, when no per-character hover text is needed, neighbouring
characters in the same colour bin share one span. Hover text is a styled tooltip drawn by CSS
from a data attribute, so it shows at once (the browser's own `title` tooltip appears only after a delay).
No Streamlit here; pages pass the string on.
"""

import html
import unicodedata

import numpy as np

BINS = 21  # colour bins per palette
SCALES = {
    "tanh": (-1.0, 1.0),  # h, tanh(c), candidate g
    "gate": (0.0, 1.0),  # i, f, o
}
KIND_LABELS = {
    "h": "h (output)",
    "c": "c (cell state, shown as tanh(c))",
    "i": "i (input gate)",
    "f": "f (forget gate)",
    "g": "g (candidate)",
    "o": "o (output gate)",
}
BLUE, WHITE, RED = (33, 102, 172), (247, 247, 247), (178, 24, 43)  # ColorBrewer RdBu ends
DARK_TEXT, LIGHT_TEXT = (17, 17, 17), (255, 255, 255)
PALETTES = ("diverging", "sequential")
CHAR_NAMES = {" ": "space", "\n": "newline", "\t": "tab", ",": "comma", ".": "full stop", "'": "apostrophe",
              "`": "backtick", '"': "double quote", "-": "hyphen", ";": "semicolon", ":": "colon"}


def display_values(values: np.ndarray, kind: str, scale: str = "default"):
    """(values to colour, (lo, hi)) for a kind and a colour scale.

    default: tanh-valued kinds on [-1, 1] (c shown as tanh(c)), gates on [0, 1].
    sigmoid: the post's choice, sigmoid(value) on [0, 1]; only for h and c, since a gate is
    already in [0, 1] and the sigmoid would squeeze it into [0.5, 0.73].
    """
    v = np.asarray(values, dtype=np.float64)
    if kind == "c":
        v = np.tanh(v)
    if scale == "sigmoid":
        if kind not in ("h", "c"):
            raise ValueError(f"the sigmoid scale is for h and c, not the gate {kind!r}")
        return 1.0 / (1.0 + np.exp(-v)), (0.0, 1.0)
    if scale != "default":
        raise ValueError(f"unknown colour scale {scale!r}")
    return v, SCALES["gate" if kind in ("i", "f", "o") else "tanh"]


# ---------------------------------------------------------------- colours and contrast


def colour(t: float, palette: str = "diverging") -> tuple[int, int, int]:
    """t in [0, 1] -> RGB. diverging: 0 blue, 0.5 white, 1 red; sequential: 0 white, 1 red."""
    blue, white, red = np.array(BLUE), np.array(WHITE), np.array(RED)
    if palette == "sequential":
        c = white + (red - white) * t
    elif t < 0.5:
        c = blue + (white - blue) * (t / 0.5)
    else:
        c = white + (red - white) * ((t - 0.5) / 0.5)
    return tuple(int(x) for x in np.round(c))


def _luminance(rgb) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""
    lin = [(c / 255) / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast_ratio(a, b) -> float:
    """WCAG 2 contrast ratio of two colours, from 1 (none) to 21 (black on white)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(background) -> tuple[int, int, int]:
    """Dark or white text, whichever contrasts more with `background`."""
    return max((DARK_TEXT, LIGHT_TEXT), key=lambda fg: contrast_ratio(fg, background))


def _rgb(c) -> str:
    return "rgb({},{},{})".format(*c)


def css(prefix: str = "cm") -> str:
    """The stylesheet: one class per bin and palette, the tooltip, highlight and prime classes."""
    rules = []
    for palette, letter in (("diverging", ""), ("sequential", "s")):
        for b in range(BINS):
            bg = colour(b / (BINS - 1), palette)
            rules.append(f".{prefix}-{letter}{b}{{background:{_rgb(bg)};color:{_rgb(text_colour(bg))}}}")
    rules += [
        f".{prefix}-text{{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;"
        "overflow-wrap:anywhere;line-height:1.7;font-size:0.92rem;color:#111}",
        f".{prefix}-text span{{border-radius:2px}}",
        f".{prefix}-text span[data-tip]{{position:relative}}",
        f".{prefix}-text span[data-tip]:hover{{outline:2px solid #111;z-index:2}}",
        f".{prefix}-text span[data-tip]:hover::after{{content:attr(data-tip);position:absolute;left:0;top:1.9em;"
        "z-index:3;background:#222;color:#fff;padding:4px 8px;border-radius:4px;font-size:0.8rem;"
        "line-height:1.4;white-space:pre;pointer-events:none;box-shadow:0 2px 6px rgba(0,0,0,.3)}",
        f".{prefix}-sel{{box-shadow:inset 0 -3px 0 #111;font-weight:600}}",
        f".{prefix}-nl{{opacity:.6}}",
        f".{prefix}-us{{box-shadow:inset 0 -2px 0 currentColor}}",  # an underscore drawn inside the box
        f".{prefix}-prime{{color:#555;background:#e8e8e8;border-bottom:2px dashed #888}}",
        f".{prefix}-legend{{display:flex;align-items:center;gap:6px;font-size:0.8rem;margin:4px 0 8px}}",
        f".{prefix}-bar{{display:inline-flex;height:12px}}",
        f".{prefix}-bar span{{width:10px;height:12px;display:inline-block}}",
    ]
    return "<style>" + "".join(rules) + "</style>"


def bins(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(np.rint(np.nan_to_num(t, nan=0.5) * (BINS - 1)), 0, BINS - 1).astype(int)


# ---------------------------------------------------------------- text


def _char(ch: str, prefix: str) -> str:
    if ch == "\n":
        return f'<span class="{prefix}-nl">↵</span>\n'
    if ch == "_":  # the font's own underscore sits below the coloured box, where it is lost at 1x
        return f'<span class="{prefix}-us">_</span>'
    return html.escape(ch)


def coloured_text(
    text: str,
    values: np.ndarray,
    lo: float,
    hi: float,
    titles: list[str] | None = None,
    selected: tuple[int, int] | None = None,
    prefix: str = "cm",
    palette: str = "diverging",
    prime: str = "",
) -> str:
    """HTML for `text` with character t coloured by values[t] on [lo, hi].

    titles: optional hover text per character (forces one span per character).
    selected: optional (start, end) range, end exclusive, outlined in the text.
    palette: "diverging" (blue-white-red) or "sequential" (white-red).
    prime: text shown uncoloured before `text`, marked as the prime (the text the model was given).
    """
    if len(values) != len(text):
        raise ValueError(f"{len(values)} values for {len(text)} characters")
    if palette not in PALETTES:
        raise ValueError(f"unknown palette {palette!r}")
    letter = "s" if palette == "sequential" else ""
    b = bins(values, lo, hi)
    sel = np.zeros(len(text), bool)
    if selected is not None:
        sel[max(selected[0], 0) : max(selected[1], 0)] = True
    out = [f'<div class="{prefix}-text">']
    if prime:
        body = "".join(_char(ch, prefix) for ch in prime)
        out.append(f'<span class="{prefix}-prime" data-tip="the prime: given to the model, not generated">{body}</span>')
    t = 0
    while t < len(text):
        end = t + 1
        if titles is None:  # merge neighbours with the same bin and selection
            while end < len(text) and b[end] == b[t] and sel[end] == sel[t]:
                end += 1
        cls = f"{prefix}-{letter}{b[t]}" + (f" {prefix}-sel" if sel[t] else "")
        tip = f' data-tip="{html.escape(titles[t], quote=True)}"' if titles is not None else ""
        body = "".join(_char(ch, prefix) for ch in text[t:end])
        out.append(f'<span class="{cls}"{tip}>{body}</span>')
        t = end
    out.append("</div>")
    return "".join(out)


def legend(lo: float, hi: float, label: str, prefix: str = "cm", palette: str = "diverging") -> str:
    letter = "s" if palette == "sequential" else ""
    swatches = "".join(f'<span class="{prefix}-{letter}{b}"></span>' for b in range(BINS))
    return (f'<div class="{prefix}-legend"><span>{html.escape(label)}</span><span>{lo:g}</span>'
            f'<span class="{prefix}-bar">{swatches}</span><span>{hi:g}</span></div>')


def char_name(ch: str) -> str:
    """A character as a user can read it in a list: invisible and easily confused ones by name."""
    if ch in CHAR_NAMES:
        return CHAR_NAMES[ch]
    if ch.isspace() or unicodedata.category(ch).startswith("C"):
        return f"U+{ord(ch):04X}"
    return ch


def next_guesses(top_chars: list[list[str]], top_probs: np.ndarray) -> list[str]:
    """Per character: the model's top next-character guesses ("next: space 31%, e 12%, ...")."""
    return ["next: " + ", ".join(f"{char_name(c)} {p:.0%}" for c, p in zip(chars, probs))
            for chars, probs in zip(top_chars, top_probs)]


def hover_titles(text: str, values: np.ndarray, guesses: list[str], label: str = "value") -> list[str]:
    """Per-character hover text: position, character, the value, and the next-character guesses."""
    return [f"#{t} {char_name(ch)}  {label} = {v:+.3f}\n{g}" for t, (ch, v, g) in enumerate(zip(text, values, guesses))]


def show_char(ch: str) -> str:
    return {"\n": "↵", " ": "␣", "\t": "⇥"}.get(ch, ch)


MARKDOWN_MARKS = "\\`*_{}[]()<>#+-.!|~$"


def markdown_text(text: str) -> str:
    """`text` with every character Streamlit's markdown would read as a mark backslash-escaped, so
    a backtick or an asterisk from the corpus shows as itself."""
    return "".join("\\" + ch if ch in MARKDOWN_MARKS else ch for ch in text)
