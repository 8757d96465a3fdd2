"""Altair charts and the small pieces of logic behind their selections.

Kept out of the pages so they can be tested with plain pytest: AppTest cannot fire a chart
selection, but it can call `brush_range` and `picked_cell` on the selection dicts Streamlit returns.
"""

import math

import altair as alt
import numpy as np
import pandas as pd

from charmodel.engine import LN2
from charmodel.view.render import show_char

BRUSH = "brush"  # interval selection on the trace
PICK = "pick"  # point selection of a cell (heatmap, saturation scatter)
HEATMAP_CELLS = 64  # rows in the heatmap: the cells that vary most over the passage
HEATMAP_COLUMNS = 75  # position bins; 64 x 75 = 4,800 rows, under Altair's 5,000-row default


def trace(values: np.ndarray, text: str, label: str, domain: tuple[float, float], height: int = 320):
    """Line plot of one cell across the text, with an x-interval brush named BRUSH."""
    df = pd.DataFrame({"position": np.arange(len(text)), "value": np.asarray(values, dtype=float),
                       "char": [show_char(c) for c in text]})
    brush = alt.selection_interval(name=BRUSH, encodings=["x"])
    return (
        alt.Chart(df, height=height)
        .mark_line(strokeWidth=1.2)
        .encode(
            x=alt.X("position:Q", title="character position", scale=alt.Scale(domain=[0, max(len(text) - 1, 1)])),
            y=alt.Y("value:Q", title=label, scale=alt.Scale(domain=list(domain))),
            tooltip=["position", "char", alt.Tooltip("value:Q", format="+.3f")],
        )
        .add_params(brush)
    )


def brush_range(selection: dict | None, n: int) -> tuple[int, int] | None:
    """The selection state of `trace` -> (start, end) character range, end exclusive, or None."""
    if not selection:
        return None
    interval = (selection.get(BRUSH) or {}).get("position")
    if not interval or len(interval) != 2:
        return None
    lo, hi = sorted(interval)
    start, end = max(0, math.ceil(lo)), min(n, math.floor(hi) + 1)
    return (start, end) if end > start else None


def heatmap_frame(activations: np.ndarray, cells: int = HEATMAP_CELLS, columns: int = HEATMAP_COLUMNS) -> pd.DataFrame:
    """(T, units) -> long frame of the `cells` most variable cells, averaged over position bins."""
    T, U = activations.shape
    activations = np.asarray(activations, dtype=np.float32)
    order = np.argsort(-activations.std(axis=0))[: min(cells, U)]
    edges = np.linspace(0, T, min(columns, T) + 1).astype(int)
    sums = np.add.reduceat(activations[:, order], edges[:-1], axis=0)  # (bins, cells)
    means = sums / np.diff(edges)[:, None]
    n_bins = len(edges) - 1
    return pd.DataFrame({"cell": np.tile(order, n_bins), "start": np.repeat(edges[:-1], len(order)),
                         "end": np.repeat(edges[1:], len(order)), "value": means.ravel()})


def heatmap(df: pd.DataFrame, domain: tuple[float, float], label: str):
    pick = alt.selection_point(name=PICK, fields=["cell"], on="click")
    order = list(dict.fromkeys(df["cell"]))
    return (
        alt.Chart(df, height=min(12 * len(order), 640))
        .mark_rect()
        .encode(
            x=alt.X("start:Q", title="character position", bin=None),
            x2="end:Q",
            y=alt.Y("cell:O", sort=order, title=f"cell (the {len(order)} that vary most)"),
            color=alt.Color("value:Q", title=label, scale=alt.Scale(scheme="redblue", reverse=True, domain=list(domain))),
            tooltip=["cell", "start", "end", alt.Tooltip("value:Q", format="+.3f")],
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.55)),
        )
        .add_params(pick)
    )


def picked_cell(selection: dict | None) -> int | None:
    """The selection state of `heatmap` (or any chart with a PICK point on 'cell') -> cell index."""
    if not selection:
        return None
    points = selection.get(PICK) or []
    if points and "cell" in points[0]:
        return int(points[0]["cell"])
    return None


def batch_frame(batches: list) -> pd.DataFrame:
    """(epoch, batch, steps, loss) rows -> step, bpc, series: the per-batch training curve."""
    b = pd.DataFrame(batches, columns=["epoch", "batch", "steps", "loss"])
    return pd.DataFrame({"step": (b["epoch"] - 1) * b["steps"] + b["batch"], "bpc": b["loss"] / LN2,
                         "series": "train (per batch)"})


def epoch_frame(rows: list[dict], train: str = "train", validation: str = "validation") -> pd.DataFrame:
    """History rows -> epoch, bpc, series: training and validation bits per character per epoch,
    for the Train page and the model card alike."""
    h = pd.DataFrame(rows)
    return pd.concat([pd.DataFrame({"epoch": h["epoch"], "bpc": h["train_loss"] / LN2, "series": train}),
                      pd.DataFrame({"epoch": h["epoch"], "bpc": h["val_bpc"], "series": validation})])


def loss_chart(df: pd.DataFrame, x: str, title: str, height: int = 260, to_beat: tuple[str, float] | None = None):
    """Lines of bits per character; `df` has columns x, 'bpc' and 'series'. to_beat: (name, bpc)
    of a baseline on the same validation split (`scoring.best_baseline`), drawn as a dashed line."""
    lines = (
        alt.Chart(df, height=height, title=title)
        .mark_line(point=len(df) < 60)
        .encode(x=alt.X(f"{x}:Q", title=x, axis=alt.Axis(format="d", tickMinStep=1)), y=alt.Y("bpc:Q", title="bits per character", scale=alt.Scale(zero=False)),
                color=alt.Color("series:N", title=None), tooltip=[x, "series", alt.Tooltip("bpc:Q", format=".3f")])
    )
    if to_beat is None:
        return lines
    line = pd.DataFrame({"bpc": [to_beat[1]], "label": [f"{to_beat[0]}: {to_beat[1]:.3f} (to beat)"]})
    rule = alt.Chart(line).mark_rule(strokeDash=[6, 4], color="gray").encode(
        y="bpc:Q", tooltip=["label", alt.Tooltip("bpc:Q", format=".3f")])
    text = alt.Chart(line).mark_text(align="left", dx=4, dy=-6, color="gray").encode(
        y="bpc:Q", x=alt.value(0), text="label")
    return lines + rule + text


def histogram_chart(bins: list[dict], label: str, height: int = 200):
    """Bars of a cell's value histogram (`study.histogram`'s rows: from, to, count)."""
    return alt.Chart(pd.DataFrame(bins), height=height, title="its values").mark_bar().encode(
        x=alt.X("from:Q", bin="binned", title=label), x2="to:Q", y=alt.Y("count:Q"))


def checkpoint_traces(traces: dict[int, np.ndarray], height: int = 240):
    """One line per kept epoch: the same cell over the same passage, coloured by epoch."""
    df = pd.concat([pd.DataFrame({"position": np.arange(len(v)), "value": np.asarray(v, dtype=float), "epoch": epoch})
                    for epoch, v in traces.items()])
    return (alt.Chart(df, height=height, title="the same passage at each kept checkpoint")
            .mark_line(strokeWidth=1)
            .encode(x="position:Q", y="value:Q", color=alt.Color("epoch:O", scale=alt.Scale(scheme="viridis"))))


def saturation(fractions: dict[str, tuple[np.ndarray, np.ndarray]], layer: int):
    """Per gate, a scatter of each cell's left- against right-saturated fraction, with a PICK on cells."""
    df = pd.concat([pd.DataFrame({"cell": np.arange(len(left)), "left": left, "right": right, "gate": gate})
                    for gate, (left, right) in fractions.items()])
    pick = alt.selection_point(name=PICK, fields=["cell"], on="click")
    return (alt.Chart(df, width=260, height=260).mark_circle(size=22, opacity=0.6)
            .encode(x=alt.X("left:Q", title="fraction left-saturated", scale=alt.Scale(domain=[0, 1])),
                    y=alt.Y("right:Q", title="fraction right-saturated", scale=alt.Scale(domain=[0, 1])),
                    tooltip=["gate", "cell", alt.Tooltip("left:Q", format=".2f"), alt.Tooltip("right:Q", format=".2f")])
            .add_params(pick).facet(column=alt.Column("gate:N", title=f"layer {layer} gates")))


def char_profile(rows: list[dict], label: str, height: int = 200):
    """A cell's mean value for each current character (atlas dossier rows: char, mean), in vocabulary order."""
    df = pd.DataFrame(rows)
    df["shown"] = [show_char(c) for c in df["char"]]
    title = alt.Title("its mean after each character", anchor="middle")  # centred: a start anchor was clipped
    return alt.Chart(df, height=height, title=title).mark_bar().encode(
        x=alt.X("shown:N", sort=None, title="current character"), y=alt.Y("mean:Q", title=label),
        color=alt.condition("datum.mean > 0", alt.value("#b2182b"), alt.value("#2166ac")),
        tooltip=["char", alt.Tooltip("mean:Q", format="+.3f")])


def sweep_chart(rows: list[dict], label: str, top: int = 40, height: int = 260):
    """The `top` cells whose ablation costs most (charmodel.analysis.ablate.sweep's rows), largest first."""
    df = pd.DataFrame(rows[:top])
    return alt.Chart(df, height=height, title=f"{label}: bits per character lost without each cell").mark_bar().encode(
        x=alt.X("cell:N", sort=None, title=f"cell (the {min(top, len(rows))} that cost most)"),
        y=alt.Y("delta:Q", title="Δ bpc"), tooltip=["cell", alt.Tooltip("delta:Q", format="+.4f")])


def probe_chart(curve: list[dict], single_auc: float, height: int = 260):
    """Held-out AUC against the number of cells the probe uses, with the best single cell as a rule."""
    df = pd.DataFrame(curve)
    line = alt.Chart(df, height=height, title="held-out AUC against the cells a probe uses").mark_line(point=True).encode(
        x=alt.X("cells:Q", scale=alt.Scale(type="log"), title="cells with a non-zero weight (log scale)"),
        y=alt.Y("auc:Q", scale=alt.Scale(zero=False), title="held-out AUC"),
        tooltip=["cells", alt.Tooltip("auc:Q", format=".3f"), alt.Tooltip("C:Q", format="g")])
    rule = alt.Chart(pd.DataFrame({"auc": [single_auc]})).mark_rule(strokeDash=[4, 4]).encode(y="auc:Q")
    return line + rule


def similarity_chart(rows: list[dict], height: int = 200):
    """Linear CKA per layer and kind between two checkpoints (rows: layer counted from 1, kind, cka)."""
    df = pd.DataFrame(rows)
    df["part"] = [f"layer {r['layer']} {r['kind']}" for r in rows]
    return alt.Chart(df, height=height, title="layer similarity (linear CKA)").mark_bar().encode(
        x=alt.X("part:N", sort=None, title=None), y=alt.Y("cka:Q", scale=alt.Scale(domain=[0, 1]), title="CKA"),
        tooltip=["part", alt.Tooltip("cka:Q", format=".3f")])


def simulation_histogram(r: np.ndarray, threshold: float, height: int = 180):
    """How many cells reach each held-out phrase r, with the 'explained' threshold as a rule."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    counts, edges = np.histogram(r, bins=40, range=(min(-0.2, float(r.min()) if len(r) else 0), 1.0))
    df = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "cells": counts})
    bars = alt.Chart(df, height=height, title="held-out phrase r of every cell's phrase").mark_bar().encode(
        x=alt.X("from:Q", bin="binned", title="phrase r"), x2="to:Q", y=alt.Y("cells:Q"),
        tooltip=[alt.Tooltip("from:Q", format=".2f"), alt.Tooltip("to:Q", format=".2f"), "cells"])
    rule = alt.Chart(pd.DataFrame({"r": [threshold]})).mark_rule(strokeDash=[4, 4], color="#b2182b").encode(x="r:Q")
    return bars + rule


def simulation_chart(chars: str, simulated: np.ndarray, actual: np.ndarray, label: str, context=None,
                     height: int = 220):
    """The phrase's prediction against the cell's value over a passage (the neuron viewers'
    'explanation vs activation'), and with context, the background (the last three characters)."""
    n = len(chars)
    series = [("actual", actual), ("the phrase", simulated)] + ([] if context is None else
                                                                  [("the last three characters", context)])
    df = pd.concat([pd.DataFrame({"position": np.arange(n), "value": np.asarray(v, dtype=float), "series": s,
                                  "char": [show_char(c) for c in chars]})
                    for s, v in series])
    return (alt.Chart(df, height=height, title="what the phrase predicts, against what the cell does")
            .mark_line(strokeWidth=1.2)
            .encode(x=alt.X("position:Q", title="character"), y=alt.Y("value:Q", title=label),
                    color=alt.Color("series:N", title=None, sort=[s for s, _ in series],
                                    scale=alt.Scale(domain=[s for s, _ in series],
                                                    range=["#2166ac", "#f4a582", "#bbbbbb"][: len(series)])),
                    tooltip=["position", "char", "series", alt.Tooltip("value:Q", format="+.3f")]))
