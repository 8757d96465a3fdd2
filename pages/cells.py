"""Cells: find interpretable cells automatically, then study one in depth."""

import io
import tempfile
import zipfile
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from charmodel import CharModelError, atlas, charts
from charmodel import run as runfs
from charmodel.cells import FEATURES, SCALAR, rank_cells, signal_for
from charmodel.render import coloured_text, display_values, legend
from charmodel.sample import generate
from pages.common import cell_states, engine, layer_values, selected_run, sidebar, split_text, style

name, path, config, checkpoint = selected_run()
model = engine(name, checkpoint)
train_text, val_text = split_text(name)
corpus = train_text + val_text


def _study(layer: int, kind: str, cell: int):
    st.session_state.update(atlas_layer=layer, atlas_kind=kind, atlas_cell=cell)


def _pick_saturated():
    cell = charts.picked_cell(st.session_state.get("saturation", {}).get("selection"))
    if cell is not None:
        st.session_state["atlas_cell"] = cell


def coloured(text, raw, kind, label, selected=None):
    values, (lo, hi) = display_values(raw, kind)
    return legend(lo, hi, label) + coloured_text(text, values, lo, hi, selected=selected)


st.title("Cells")
style()
rank_tab, match_tab, cell_tab, saturation_tab, clamp_tab, export_tab = st.tabs(
    ["Rank cells", "Select and match", "One cell", "Gate saturation", "Intervene", "Export"])

# ---------------------------------------------------------------- rank
with rank_tab:
    st.caption("Every cell of every layer, for its output h and its cell state c, is scored against a "
               "per-character signal computed from the text: ROC AUC for yes/no signals (either direction), "
               "|Pearson r| for scalar ones.")
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
        start = c1.number_input("Start (in the whole corpus)", 0, len(corpus) - 200, 0, 100, key="cells_start")
        length = c2.slider("Length", 200, 20000, 5000, 100, key="cells_length")
        text = corpus[int(start) : int(start) + length]
    top = st.slider("Show the top", 1, 20, 5, key="cells_top")
    try:
        signal = signal_for(text, feature, regex)
        states = cell_states(name, checkpoint, text)
        ranked = rank_cells(states, signal, top)
    except CharModelError as e:
        st.error(str(e), icon=":material/warning:")
        ranked = []
    metric = "|r|" if feature in SCALAR else "AUC"
    if ranked:
        st.dataframe([{**{k: d[k] for k in ("layer", "kind", "cell")}, metric: round(d["score"], 3),
                       "tuned": "high where the signal is 1" if d["direction"] > 0 else "low where the signal is 1"}
                      for d in ranked], hide_index=True)
        on = np.flatnonzero(signal.astype(float) > (np.median(signal) if feature in SCALAR else 0.5))
        at = max(int(on[0]) - 80, 0) if len(on) else 0
        snippet = slice(at, min(at + 400, len(text)))
    for n, d in enumerate(ranked):
        raw = states[(d["layer"] - 1, d["kind"])][:, d["cell"]]
        label = f"layer {d['layer']} {d['kind']} cell {d['cell']} ({metric} {d['score']:.3f})"
        with st.container(border=True):
            left, right = st.columns([3, 2])
            left.html(coloured(text[snippet], raw[snippet], d["kind"], label))
            values, dom = display_values(raw[snippet], d["kind"])
            right.altair_chart(charts.trace(values, text[snippet], d["kind"], dom, height=160), key=f"rank_trace_{n}")
            right.button("Study this cell", key=f"study_{n}", on_click=_study, args=(d["layer"], d["kind"], d["cell"]))

# ---------------------------------------------------------------- the cell the other tabs study
st.divider()
c1, c2, c3 = st.columns(3)
st.session_state.setdefault("atlas_layer", model.layers)  # default: the top layer, as the post studied
if st.session_state["atlas_layer"] > model.layers:
    st.session_state["atlas_layer"] = model.layers
layer = c1.selectbox("Layer", list(range(1, model.layers + 1)), key="atlas_layer")
kind = c2.radio("State", ["h", "c"], horizontal=True, key="atlas_kind")
if int(st.session_state.get("atlas_cell", 0)) >= model.units:
    st.session_state["atlas_cell"] = 0
cell = int(c3.number_input("Cell", 0, model.units - 1, key="atlas_cell"))
scope = st.radio("Search in", ["validation text (fast)", "whole corpus (a scan of a minute or so, once)"],
                 horizontal=True, key="atlas_scope")
search = val_text if scope.startswith("validation") else corpus
search_states = cell_states(name, checkpoint, search)  # cached per (run, checkpoint, text)
layer_states = search_states[(layer - 1, kind)]

# ---------------------------------------------------------------- select and match
with match_tab:
    st.caption("Pick a span and a threshold. The cells on through the whole span and off just before and after "
               "it form a pattern; the list shows other passages where that same set of cells is on together.")
    c1, c2, c3 = st.columns(3)
    span_start = int(c1.number_input("Span start", 0, len(search) - 2, min(1000, len(search) - 2), key="match_start"))
    span_len = int(c2.number_input("Span length", 1, 200, 8, key="match_len"))
    threshold = c3.slider("Threshold", -1.0, 1.0, 0.3, 0.05, key="match_threshold")
    span = (span_start, min(span_start + span_len, len(search)))
    window = slice(max(span[0] - 60, 0), min(span[1] + 60, len(search)))
    try:
        chosen = atlas.cells_on_in_span(layer_states, span[0], span[1], threshold)
    except CharModelError as e:
        st.error(str(e))
        chosen = np.array([], int)
    st.html(coloured(search[window], layer_states[window, chosen[0] if len(chosen) else cell], kind,
                     f"span {span[0]}–{span[1] - 1}", selected=(span[0] - window.start, span[1] - window.start)))
    if not len(chosen):
        st.info("No cell is on through this span and off around it; lower the threshold or change the span.")
    else:
        st.write(f"**{len(chosen)} cell(s)** of layer {layer} {kind}: {', '.join(map(str, chosen[:40]))}")
        matches = atlas.match_passages(layer_states, chosen, threshold, span[1] - span[0], exclude=span)
        st.write(f"{len(matches)} matching passage(s)")
        for m in matches:
            w = slice(max(m["start"] - 30, 0), min(m["end"] + 30, len(search)))
            st.html(coloured(search[w], layer_states[w, chosen[0]], kind, f"{m['start']}–{m['end'] - 1}",
                             selected=(m["start"] - w.start, m["end"] - w.start)))

# ---------------------------------------------------------------- one cell in depth
with cell_tab:
    values = layer_states[:, cell].astype(np.float32)
    st.subheader(f"Layer {layer} {kind} cell {cell}")
    st.markdown("**Where it is highest**")
    st.dataframe(pd.DataFrame([{"position": c["position"], "value": round(c["value"], 3),
                                "context": f"{c['before']}[{c['char']}]{c['after']}".replace("\n", "↵")}
                               for c in atlas.top_contexts(values, search)]), hide_index=True)
    hist = pd.DataFrame(atlas.histogram(values))
    st.altair_chart(alt.Chart(hist, height=200, title="its values").mark_bar().encode(
        x=alt.X("from:Q", bin="binned", title=kind), x2="to:Q", y=alt.Y("count:Q")))
    epochs = [c for c in runfs.available_checkpoints(path) if c not in ("best", "latest")]
    if epochs:
        passage = val_text[:400]
        frames = []
        for epoch in epochs:
            trace_values = layer_values(name, epoch, passage, layer - 1, kind)[:, cell].astype(float)
            frames.append(pd.DataFrame({"position": np.arange(len(passage)), "value": trace_values,
                                        "epoch": int(epoch)}))
        st.altair_chart(alt.Chart(pd.concat(frames), height=240, title="the same passage at each kept checkpoint")
                        .mark_line(strokeWidth=1).encode(x="position:Q", y="value:Q",
                                                         color=alt.Color("epoch:O", scale=alt.Scale(scheme="viridis"))))
    else:
        st.caption("This run kept no per-epoch checkpoints, so there is no training history to show.")

# ---------------------------------------------------------------- gate saturation
with saturation_tab:
    st.caption("Karpathy, Johnson and Fei-Fei (2015): for each cell, how often a gate is left-saturated (< 0.1) "
               "against right-saturated (> 0.9). Click a point to study that cell.")
    length = st.slider("Characters of the validation text", 500, 5000, 2000, 500, key="saturation_length")
    frames = []
    for gate in ("f", "i", "o"):
        gates = layer_values(name, checkpoint, val_text[:length], layer - 1, gate)
        left, right = atlas.gate_saturation(gates.astype(np.float32))
        frames.append(pd.DataFrame({"cell": np.arange(model.units), "left": left, "right": right, "gate": gate}))
    pick = alt.selection_point(name=charts.PICK, fields=["cell"], on="click")
    scatter = (alt.Chart(pd.concat(frames), width=260, height=260).mark_circle(size=22, opacity=0.6)
               .encode(x=alt.X("left:Q", title="fraction left-saturated", scale=alt.Scale(domain=[0, 1])),
                       y=alt.Y("right:Q", title="fraction right-saturated", scale=alt.Scale(domain=[0, 1])),
                       tooltip=["gate", "cell", alt.Tooltip("left:Q", format=".2f"), alt.Tooltip("right:Q", format=".2f")])
               .add_params(pick).facet(column=alt.Column("gate:N", title=f"layer {layer} gates")))
    st.altair_chart(scatter, key="saturation", on_select=_pick_saturated, selection_mode=charts.PICK)

# ---------------------------------------------------------------- intervention
with clamp_tab:
    st.caption("Hold this cell at a constant value while generating, and compare with the free run (same seed "
               "and prime). The prime is read without the clamp.")
    c1, c2, c3 = st.columns(3)
    prime = c1.text_input("Prime", "`" if "`" in model.vocab.chars else "\n", key="clamp_prime")
    value = c2.slider("Clamp to", -3.0, 3.0, 1.0, 0.1, key="clamp_value")
    length = c3.slider("Length", 50, 1000, 300, 50, key="clamp_length")
    temperature, seed = sidebar("temperature"), int(sidebar("seed"))
    try:
        free = generate(model, prime, length, temperature, seed)[0]
        held = generate(model, prime, length, temperature, seed, clamp=(layer - 1, kind, cell, value))[0]
        left, right = st.columns(2)
        left.markdown("**Free**")
        left.code(prime + free, language=None, wrap_lines=True)
        right.markdown(f"**Layer {layer} {kind} cell {cell} held at {value:+.1f}**")
        right.code(prime + held, language=None, wrap_lines=True)
    except CharModelError as e:
        st.error(str(e))

# ---------------------------------------------------------------- export
with export_tab:
    st.caption("States of every layer over the validation text in LSTMVis's format: states.h5 (c as state, h as "
               "output), train.h5 (character ids), words.dict and lstm.yml.")
    if st.button("Prepare the LSTMVis files", key="export_prepare"):
        with tempfile.TemporaryDirectory() as tmp:
            files = atlas.export_lstmvis(Path(tmp) / name, val_text, model.vocab.chars,
                                         cell_states(name, checkpoint, val_text), name=name)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
                for f in files:
                    z.write(f, f"{name}/{f.name}")
        st.download_button("Download lstmvis.zip", buffer.getvalue(), file_name=f"{name}-lstmvis.zip",
                           mime="application/zip", key="export_download")
