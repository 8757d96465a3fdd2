"""Coloured text as HTML: every character coloured by one value, blue (low) to white to red (high).

Built for thousands of characters: every character is escaped, colours come from a small set of
CSS classes defined once, and, when no per-character hover text is needed, neighbouring
characters in the same colour bin share one span. No Streamlit here; pages pass the string on.
"""

import html

import numpy as np

BINS = 21  # colour bins from blue through white to red
SCALES = {
    "tanh": (-1.0, 1.0),  # h, tanh(c), candidate g
    "gate": (0.0, 1.0),  # i, f, o
}
KIND_LABELS = {
    "h": "h (output)",
    "c": "c (cell state, shown as tanh(c))",
    "i": "i (input gate)",
    "f": "f (forget gate)",
    "o": "o (output gate)",
    "g": "g (candidate)",
}


def display_values(values: np.ndarray, kind: str, scale: str = "default"):
    """(values to colour, (lo, hi)) for a state kind and a colour scale.

    default: tanh-valued states on [-1, 1] (c shown as tanh(c)), gates on [0, 1].
    sigmoid: the post's choice, sigmoid(value) on [0, 1].
    """
    v = np.asarray(values, dtype=np.float64)
    if kind == "c":
        v = np.tanh(v)
    if scale == "sigmoid":
        return 1.0 / (1.0 + np.exp(-v)), (0.0, 1.0)
    if scale != "default":
        raise ValueError(f"unknown colour scale {scale!r}")
    return v, SCALES["gate" if kind in ("i", "f", "o") else "tanh"]


def _rgb(t: float) -> str:
    """t in [0, 1]: 0 blue, 0.5 white, 1 red (a diverging scale like ColorBrewer RdBu)."""
    blue, white, red = np.array([33, 102, 172]), np.array([247, 247, 247]), np.array([178, 24, 43])
    c = blue + (white - blue) * (t / 0.5) if t < 0.5 else white + (red - white) * ((t - 0.5) / 0.5)
    return "rgb({},{},{})".format(*np.round(c).astype(int))


def css(prefix: str = "cm") -> str:
    """The stylesheet: one class per bin, a highlight class, and the text box."""
    rules = [f".{prefix}-{b}{{background:{_rgb(b / (BINS - 1))}}}" for b in range(BINS)]
    rules += [
        f".{prefix}-text{{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;"
        "overflow-wrap:anywhere;line-height:1.7;font-size:0.92rem;color:#111}",
        f".{prefix}-text span{{border-radius:2px}}",
        f".{prefix}-sel{{box-shadow:inset 0 -3px 0 #111;font-weight:600}}",
        f".{prefix}-nl{{color:#888}}",
        f".{prefix}-legend{{display:flex;align-items:center;gap:6px;font-size:0.8rem;margin:4px 0 8px}}",
        f".{prefix}-bar{{display:inline-flex;height:12px}}",
        f".{prefix}-bar span{{width:10px;height:12px;display:inline-block}}",
    ]
    return "<style>" + "".join(rules) + "</style>"


def bins(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(np.rint(np.nan_to_num(t, nan=0.5) * (BINS - 1)), 0, BINS - 1).astype(int)


def _char(ch: str, prefix: str) -> str:
    if ch == "\n":
        return f'<span class="{prefix}-nl">↵</span>\n'
    return html.escape(ch)


def coloured_text(
    text: str,
    values: np.ndarray,
    lo: float,
    hi: float,
    titles: list[str] | None = None,
    selected: tuple[int, int] | None = None,
    prefix: str = "cm",
) -> str:
    """HTML for `text` with character t coloured by values[t] on [lo, hi].

    titles: optional hover text per character (forces one span per character).
    selected: optional (start, end) range, end exclusive, outlined in the text.
    """
    if len(values) != len(text):
        raise ValueError(f"{len(values)} values for {len(text)} characters")
    b = bins(values, lo, hi)
    sel = np.zeros(len(text), bool)
    if selected is not None:
        sel[max(selected[0], 0) : max(selected[1], 0)] = True
    out = [f'<div class="{prefix}-text">']
    t = 0
    while t < len(text):
        end = t + 1
        if titles is None:  # merge neighbours with the same bin and selection
            while end < len(text) and b[end] == b[t] and sel[end] == sel[t]:
                end += 1
        cls = f"{prefix}-{b[t]}" + (f" {prefix}-sel" if sel[t] else "")
        title = f' title="{html.escape(titles[t], quote=True)}"' if titles is not None else ""
        body = "".join(_char(ch, prefix) for ch in text[t:end])
        out.append(f'<span class="{cls}"{title}>{body}</span>')
        t = end
    out.append("</div>")
    return "".join(out)


def legend(lo: float, hi: float, label: str, prefix: str = "cm") -> str:
    swatches = "".join(f'<span class="{prefix}-{b}"></span>' for b in range(BINS))
    return (f'<div class="{prefix}-legend"><span>{html.escape(label)}</span><span>{lo:g}</span>'
            f'<span class="{prefix}-bar">{swatches}</span><span>{hi:g}</span></div>')


def next_guesses(top_chars: list[list[str]], top_probs: np.ndarray) -> list[str]:
    """Per character: the model's top next-character guesses, as hover text ("next: e 31%, ...")."""
    return ["next: " + ", ".join(f"{show_char(c)} {p:.0%}" for c, p in zip(chars, probs))
            for chars, probs in zip(top_chars, top_probs)]


def hover_titles(text: str, values: np.ndarray, guesses: list[str], label: str = "value") -> list[str]:
    """Per-character hover text: position, character, the value, and the next-character guesses."""
    return [f"#{t} {show_char(ch)}  {label} = {v:+.3f}\n{g}" for t, (ch, v, g) in enumerate(zip(text, values, guesses))]


def show_char(ch: str) -> str:
    return {"\n": "↵", " ": "␣", "\t": "⇥"}.get(ch, ch)
