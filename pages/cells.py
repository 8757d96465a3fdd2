"""Cells: rank every cell against a hypothesis about the text, and look at the best ones."""

import numpy as np
import streamlit as st

from charmodel import CharModelError, charts
from charmodel.cells import FEATURES, SCALAR, rank_cells, signal_for
from charmodel.render import coloured_text, display_values, legend
from pages.common import cell_states, selected_run, split_text, style

name, path, config, checkpoint = selected_run()
train_text, val_text = split_text(name)

st.title("Cells")
st.caption("Every cell of every layer, for its output h and its cell state c, is scored against a per-character "
           "signal computed from the text: ROC AUC for yes/no signals (either direction), |Pearson r| for "
           "scalar ones.")

c1, c2 = st.columns([2, 3])
mode = c1.radio("Hypothesis", ["built-in", "regular expression"], horizontal=True, key="cells_mode")
if mode == "built-in":
    feature = c2.selectbox("Feature", list(FEATURES), format_func=lambda f: FEATURES[f][0], key="cells_feature")
    regex = None
else:
    feature = None
    regex = c2.text_input("Characters matched by this regular expression are 1", r"[A-Z][a-z]+", key="cells_regex")
where = st.radio("Over", ["validation text", "a passage"], horizontal=True, key="cells_over")
text = val_text
if where == "a passage":
    c1, c2 = st.columns(2)
    start = c1.number_input("Start (in the whole corpus)", 0, len(train_text + val_text) - 200, 0, 100, key="cells_start")
    length = c2.slider("Length", 200, 20000, 5000, 100, key="cells_length")
    text = (train_text + val_text)[int(start) : int(start) + length]
top = st.slider("Show the top", 1, 20, 5, key="cells_top")

try:
    signal = signal_for(text, feature, regex)
    states = cell_states(name, checkpoint, text)
    ranked = rank_cells(states, signal, top)
except CharModelError as e:
    st.error(str(e), icon="⚠️")
    st.stop()

metric = "|r|" if feature in SCALAR else "AUC"
st.dataframe([{**{k: d[k] for k in ("layer", "kind", "cell")}, metric: round(d["score"], 3),
               "tuned": "high inside" if d["direction"] > 0 else "low inside"} for d in ranked],
             hide_index=True, key="cells_table")

# a snippet around the first place the signal switches on, for each top cell
on = np.flatnonzero(signal.astype(float) > (np.median(signal) if feature in SCALAR else 0.5))
at = max(int(on[0]) - 80, 0) if len(on) else 0
style()
for d in ranked:
    values, (lo, hi) = display_values(states[(d["layer"] - 1, d["kind"])][:, d["cell"]], d["kind"])
    label = f"layer {d['layer']} {d['kind']} cell {d['cell']} ({metric} {d['score']:.3f})"
    with st.container(border=True):
        left, right = st.columns([3, 2])
        snippet = slice(at, min(at + 400, len(text)))
        left.html(legend(lo, hi, label) + coloured_text(text[snippet], values[snippet], lo, hi))
        right.altair_chart(charts.trace(values[snippet], text[snippet], d["kind"], (lo, hi), height=180),
                           key=f"cells_trace_{d['layer']}_{d['kind']}_{d['cell']}")
        right.page_link("pages/visualise.py", label="Open in Visualise", icon=":material/palette:",
                        query_params={"run": name, "layer": d["layer"], "cell": d["cell"], "kind": d["kind"]})
