"""Studying cells beyond ranking: select-and-match (LSTMVis), one cell in depth, gate
saturation (Karpathy, Johnson and Fei-Fei 2015), and export to LSTMVis's file format.

All of it works on state arrays of shape (T, units) from the NumPy engine; no TensorFlow.
"""

import json
from pathlib import Path

import numpy as np

from charmodel.engine import layer_number
from charmodel.errors import CharModelError

# ---------------------------------------------------------------- select and match (LSTMVis)


def cells_on_in_span(activations: np.ndarray, start: int, end: int, threshold: float) -> np.ndarray:
    """Cells at or above `threshold` at every character of [start, end) and below it just before
    and just after the span (where those characters exist). activations: (T, units)."""
    T = len(activations)
    if not 0 <= start < end <= T:
        raise CharModelError(f"span {start}–{end} is outside the text (0–{T}); pick characters inside it.")
    on = (activations[start:end] >= threshold).all(axis=0)
    if start > 0:
        on &= activations[start - 1] < threshold
    if end < T:
        on &= activations[end] < threshold
    return np.flatnonzero(on)


def match_passages(activations: np.ndarray, cells: np.ndarray, threshold, span_len: int,
                   exclude: tuple[int, int] | None = None, top: int = 20) -> list[dict]:
    """Other places where the same set of cells is on together.

    A match is a maximal run of characters where every selected cell is at or above the
    threshold. Runs are ranked by how close their length is to the selected span's, then by the
    mean fraction of *other* cells that are off (a more specific pattern ranks higher).
    Returns [{start, end, score}], best first; `exclude` drops the user's own span. threshold: one
    for every cell, or one per cell.
    """
    if len(cells) == 0:
        return []
    all_on = (activations[:, cells] >= threshold).all(axis=1)  # (T,)
    edges = np.diff(np.concatenate([[0], all_on.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = []
    for s, e in zip(starts, ends):
        if exclude and s < exclude[1] and e > exclude[0]:
            continue
        length_fit = min(e - s, span_len) / max(e - s, span_len)
        out.append({"start": int(s), "end": int(e), "score": round(float(length_fit), 4)})
    out.sort(key=lambda d: (-d["score"], d["start"]))
    return out[:top]


def span_cells(activations: np.ndarray, start: int, end: int, top: int = 10) -> list[dict]:
    """The cells whose values inside text[start:end] differ most from outside it: the standardised
    mean difference (inside minus outside, over the pooled standard deviation), largest |d| first.
    activations: (T, units). Returns [{cell, d, inside, outside}]."""
    T = len(activations)
    if not 0 <= start < end <= T or end - start == T:
        raise CharModelError(f"span {start}–{end} must lie inside the text (0–{T}) and leave some of it outside.")
    x = np.asarray(activations, dtype=np.float64)
    inside, outside = x[start:end], np.concatenate([x[:start], x[end:]])
    n1, n0 = len(inside), len(outside)
    pooled = np.sqrt(((n1 - 1) * inside.var(axis=0, ddof=1 if n1 > 1 else 0) +
                      (n0 - 1) * outside.var(axis=0, ddof=1 if n0 > 1 else 0)) / max(n1 + n0 - 2, 1))
    d = (inside.mean(axis=0) - outside.mean(axis=0)) / np.where(pooled > 0, pooled, np.inf)
    order = np.argsort(-np.abs(d), kind="stable")[:top]
    return [{"cell": int(c), "d": round(float(d[c]), 3), "inside": round(float(inside[:, c].mean()), 4),
             "outside": round(float(outside[:, c].mean()), 4)} for c in order]


# ---------------------------------------------------------------- one cell in depth


def top_contexts(values: np.ndarray, text: str, k: int = 10, radius: int = 20) -> list[dict]:
    """The k highest values of one cell, at least `radius` characters apart, with ±radius context."""
    order = np.argsort(-values, kind="stable")
    taken: list[int] = []
    for t in order:
        if all(abs(int(t) - u) > radius for u in taken):
            taken.append(int(t))
            if len(taken) == k:
                break
    return [{"position": t, "value": float(values[t]), "before": text[max(0, t - radius) : t], "char": text[t],
             "after": text[t + 1 : t + 1 + radius]} for t in taken]


def histogram(values: np.ndarray, bins: int = 40, lo: float | None = None, hi: float | None = None) -> list[dict]:
    lo = float(values.min()) if lo is None else lo
    hi = float(values.max()) if hi is None else hi
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi if hi > lo else lo + 1e-6))
    return [{"from": float(a), "to": float(b), "count": int(c)} for a, b, c in zip(edges[:-1], edges[1:], counts)]


# ---------------------------------------------------------------- gate saturation


def gate_saturation(gates: np.ndarray, left: float = 0.1, right: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: fraction of characters where the gate is left-saturated (< left) and
    right-saturated (> right). gates: (T, units)."""
    return (gates < left).mean(axis=0), (gates > right).mean(axis=0)


# ---------------------------------------------------------------- LSTMVis export

_SPECIAL = {" ": "<space>", "\n": "<newline>", "\t": "<tab>"}
EXPORT_ROWS = 4096  # characters written to states.h5 per block


def word_name(ch: str) -> str:
    """A character's entry in words.dict. LSTMVis splits each line on whitespace, so every
    whitespace character (U+00A0, U+2028, ...) gets a name, or its entry would be lost."""
    if ch in _SPECIAL:
        return _SPECIAL[ch]
    return f"<U+{ord(ch):04X}>" if ch.isspace() or not ch.isprintable() else ch


def export_lstmvis(folder, text: str, vocab_chars: str, activations: dict, name: str = "charmodel",
                   description: str = "", unsigned: bool = False) -> list[Path]:
    """Write states.h5, train.h5, words.dict and lstm.yml for LSTMVis.

    activations: {(layer from 0, kind): (T, units)} with kinds "c" (LSTMVis type state) and "h" (type
    output). A character is a word; whitespace gets a name, since LSTMVis splits on spaces.
    unsigned: LSTMVis selects and matches only values at or above its threshold, so a cell that
    is low where a pattern holds cannot be found. With unsigned, each array is (T, 2 x units):
    cell k is max(x_k, 0) and cell k + units is max(-x_k, 0), the layout of LSTMVis's own
    signed_to_unsigned tool, and lstm.yml says `unsigned: true`.
    """
    import h5py

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = {ch: i for i, ch in enumerate(vocab_chars)}
    ids = np.array([index[ch] for ch in text], dtype=np.int32)
    with h5py.File(folder / "train.h5", "w") as f:
        f.create_dataset("words", data=ids)
    types = []
    with h5py.File(folder / "states.h5", "w") as f:
        for (layer, kind), v in sorted(activations.items()):
            path = f"{'states' if kind == 'c' else 'output'}{layer_number(layer)}"
            T, U = v.shape
            d = f.create_dataset(path, shape=(T, 2 * U if unsigned else U), dtype=np.float32)
            for t in range(0, T, EXPORT_ROWS):  # a block at a time: no float32 copy of the whole array
                block = np.asarray(v[t : t + EXPORT_ROWS], dtype=np.float32)
                d[t : t + EXPORT_ROWS] = np.hstack([np.maximum(block, 0), np.maximum(-block, 0)]) if unsigned else block
            types.append(f"    {{type: {'state' if kind == 'c' else 'output'}, layer: {layer_number(layer)}, path: {path}}}")
    lines = [f"{word_name(ch)} {i}" for i, ch in enumerate(vocab_chars)]
    (folder / "words.dict").write_text("\n".join(lines) + "\n", encoding="utf-8")
    description = description or "character-level LSTM states exported by charmodel" + (
        "; cells k + units are the negative parts" if unsigned else "")
    yml = "\n".join([
        f"name: {json.dumps(name)}",  # quoted: a run named yes or 1.0 stays a string
        f"description: {json.dumps(description)}",
        *(["unsigned: true"] if unsigned else []),
        "files:",
        "  states: states.h5",
        "  train: train.h5",
        "  words: words.dict",
        "word_sequence:",
        "  file: train",
        "  path: words",
        "  dict_file: words",
        "states:",
        "  file: states",
        "  types: [",
        ",\n".join(types),
        "  ]",
    ])
    (folder / "lstm.yml").write_text(yml + "\n", encoding="utf-8")
    return [folder / n for n in ("states.h5", "train.h5", "words.dict", "lstm.yml")]


def export_size(chars: int, units: int, datasets: int, unsigned: bool = False) -> int:
    """Bytes of states.h5 (float32) for `datasets` (layer, kind) arrays: what a download will weigh."""
    return chars * units * datasets * 4 * (2 if unsigned else 1)


def export_lstmvis_zip(zip_path, text: str, vocab_chars: str, activations: dict, name: str = "charmodel",
                       unsigned: bool = False) -> Path:
    """The LSTMVis files in one zip at `zip_path`, under the folder `name`/.

    The files are written to a temporary folder on disk and copied into the zip from there, so
    states.h5 is never held in memory whole.
    """
    import tempfile
    import zipfile

    zip_path = Path(zip_path)
    with tempfile.TemporaryDirectory(prefix="charmodel-lstmvis-") as tmp:
        files = export_lstmvis(Path(tmp) / name, text, vocab_chars, activations, name=name, unsigned=unsigned)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                z.write(f, f"{name}/{f.name}")
    return zip_path
