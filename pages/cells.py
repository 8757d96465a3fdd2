"""Cells: find interpretable cells automatically, then study one in depth.

Only the open tab runs (tabs with on_change="rerun"), so the first open pays for the ranking
alone; the other tabs compute what they need when they are opened.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from charmodel import CharModelError
from charmodel.analysis import study
from charmodel.analysis.cells import (FEATURES, SCALAR, compare_texts, first_difference, first_varying_feature,
                                      signal_for)
from charmodel.analysis.probe import NEAR_BEST
from charmodel.engine import layer_index, layer_number
from charmodel.engine.sampling import generate
from charmodel.run import folder as runfolder
from charmodel.view import charts
from charmodel.view.render import coloured_text, display_values, legend
from pages.shared.data import (ABLATION_CHARS, APP_FIT_CHARS, ablation_sweep, cell_activations, checkpoint_values,
                               headline, layer_values, load_engine, probe_curve, probed, ranking, split_text, swept)
from pages.shared.mode import run_path, sidebar
from pages.shared.widgets import selected_run, style, user_message

name, checkpoint = selected_run()
engine = load_engine(name, checkpoint)
train_text, val_text = split_text(name)
corpus = train_text + val_text

TABS = ["Rank cells", "Select and match", "One cell", "Gate saturation", "Intervene", "Ablation", "Probe", "Export"]


def _study(layer: int, kind: str, cell: int):
    st.session_state.update(study_layer=layer, study_kind=kind, study_cell=cell, cells_tab="One cell",
                            studied={"layer": layer, "kind": kind, "cell": cell})


def _pick_saturated():
    cell = charts.picked_cell(st.session_state.get("saturation", {}).get("selection"))
    if cell is not None:
        st.session_state["study_cell"] = cell


def coloured(text, raw, kind, label, selected=None):
    values, (lo, hi) = display_values(raw, kind)
    return legend(lo, hi, label) + coloured_text(text, values, lo, hi, selected=selected)


def pick_cell(kinds=("h", "c")):
    """The studied cell's pickers: (layer counted from 1, kind, cell). They open on the cell last
    studied here or in Visualise, else on the run's headline cell."""
    last = st.session_state.get("studied")
    if not last or last["layer"] > engine.layers or last["cell"] >= engine.units:
        found = headline(name, checkpoint)
        last = {"layer": layer_number(found["layer"]), "kind": found["kind"], "cell": found["cell"]}
    st.session_state.setdefault("study_layer", last["layer"])
    st.session_state.setdefault("study_kind", last["kind"] if last["kind"] in ("h", "c") else "c")
    st.session_state.setdefault("study_cell", last["cell"])
    if st.session_state["study_layer"] > engine.layers:
        st.session_state["study_layer"] = engine.layers
    if int(st.session_state["study_cell"]) >= engine.units:
        st.session_state["study_cell"] = 0
    c1, c2, c3 = st.columns(3)
    layer = c1.selectbox("Layer", list(range(1, engine.layers + 1)), key="study_layer")
    kind = c2.radio("Kind", list(kinds), horizontal=True, key="study_kind") if kinds else None
    cell = int(c3.number_input("Cell", 0, engine.units - 1, key="study_cell"))
    st.session_state["studied"] = {"layer": layer, "kind": kind or st.session_state["study_kind"], "cell": cell}
    return layer, kind, cell


def search_activations(layer: int, kind: str):
    """(text, (T, units)) of one layer and kind over the chosen search text (shared, read-only)."""
    scope = st.radio("Search in", ["validation text (fast)", "whole corpus (a scan of a minute or so, once)"],
                     horizontal=True, key="study_scope")
    if scope.startswith("validation"):
        return val_text, cell_activations(name, checkpoint, val_text)[(layer_index(layer), kind)]  # the ranking's
    return corpus, cell_activations(name, checkpoint, corpus, kinds=(kind,),
                                    layers=(layer_index(layer),))[(layer_index(layer), kind)]


def rank():
    st.caption("Every cell of every layer, for its output h and its cell state c, is scored against a "
               "per-character signal computed from the text: ROC AUC for yes/no signals (either direction), "
               "|Pearson r| for scalar ones.")
    c1, c2 = st.columns([2, 3])
    mode = c1.radio("Hypothesis", ["built-in", "regular expression"], horizontal=True, key="cells_mode")
    if mode == "built-in":
        options = list(FEATURES)
        if st.session_state.get("cells_feature") not in options:  # open on one this corpus has
            st.session_state["cells_feature"] = first_varying_feature(val_text)
        feature = c2.selectbox("Built-in hypothesis", options, format_func=lambda f: FEATURES[f][0], key="cells_feature")
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
        if signal.dtype == bool and not 0 < signal.sum() < len(signal):  # before the slow part
            raise CharModelError("the signal is constant over this text (all 0 or all 1); "
                                 "pick a longer or different text, or another hypothesis.")
        activations = cell_activations(name, checkpoint, text)
        ranked = ranking(name, checkpoint, text, feature, regex, activations)[:top]
    except CharModelError as e:
        st.error(str(e), icon=":material/warning:")
        return
    metric = "|r|" if feature in SCALAR else "AUC"
    st.table(pd.DataFrame([{"layer": layer_number(d["layer"]), "kind": d["kind"], "cell": d["cell"],
                            metric: round(d["score"], 3),
                            "tuned": "high where the signal is 1" if d["direction"] > 0 else "low where the signal is 1"}
                           for d in ranked]), hide_index=True)  # a static table: nothing to load in the browser
    on = np.flatnonzero(signal.astype(float) > (np.median(signal) if feature in SCALAR else 0.5))
    at = max(int(on[0]) - 80, 0) if len(on) else 0
    snippet = slice(at, min(at + 400, len(text)))
    for n, d in enumerate(ranked):
        raw = activations[(d["layer"], d["kind"])][:, d["cell"]]
        label = f"layer {layer_number(d['layer'])} {d['kind']} cell {d['cell']} ({metric} {d['score']:.3f})"
        with st.container(border=True):
            left, right = st.columns([3, 2])
            left.html(coloured(text[snippet], raw[snippet], d["kind"], label))
            values, dom = display_values(raw[snippet], d["kind"])
            right.altair_chart(charts.trace(values, text[snippet], d["kind"], dom, height=160), key=f"rank_trace_{n}")
            right.button("Study this cell", key=f"study_{n}", on_click=_study,
                         args=(layer_number(d["layer"]), d["kind"], d["cell"]))


def select_and_match():
    st.caption("Pick a span and a threshold. The cells on through the whole span and off just before and after "
               "it form a pattern; the list shows other passages where that same set of cells is on together.")
    layer, kind, cell = pick_cell()
    search, activations = search_activations(layer, kind)
    c1, c2, c3 = st.columns(3)
    word = search.find(" the ") + 1  # opens on a common word: the cells on through "the" are on in every "the"
    default = (word, 3) if 0 < word < len(search) - 4 else (min(1000, len(search) - 2), 8)
    span_start = int(c1.number_input("Span start", 0, len(search) - 2, default[0], key="match_start"))
    span_len = int(c2.number_input("Span length", 1, 200, default[1], key="match_len"))
    threshold = c3.slider("Threshold", -1.0, 1.0, 0.3, 0.05, key="match_threshold")
    span = (span_start, min(span_start + span_len, len(search)))
    window = slice(max(span[0] - 60, 0), min(span[1] + 60, len(search)))
    try:
        chosen = study.cells_on_in_span(activations, span[0], span[1], threshold)
    except CharModelError as e:
        st.error(str(e))
        chosen = np.array([], int)
    st.html(coloured(search[window], activations[window, chosen[0] if len(chosen) else cell], kind,
                     f"span {span[0]}–{span[1] - 1}", selected=(span[0] - window.start, span[1] - window.start)))
    if not len(chosen):
        st.info("No cell is on through this span and off around it; lower the threshold or change the span.")
        return
    st.write(f"**{len(chosen)} cell(s)** of layer {layer} {kind}: {', '.join(map(str, chosen[:40]))}")
    matches = study.match_passages(activations, chosen, threshold, span[1] - span[0], exclude=span)
    st.write(f"{len(matches)} matching passage(s)")
    for m in matches:
        w = slice(max(m["start"] - 30, 0), min(m["end"] + 30, len(search)))
        st.html(coloured(search[w], activations[w, chosen[0]], kind, f"{m['start']}–{m['end'] - 1}",
                         selected=(m["start"] - w.start, m["end"] - w.start)))


def one_cell():
    layer, kind, cell = pick_cell()
    search, activations = search_activations(layer, kind)
    values = activations[:, cell].astype(np.float32)
    st.subheader(f"Layer {layer} {kind} cell {cell}")
    st.markdown("**Where it is highest**")
    st.dataframe(pd.DataFrame([{"position": c["position"], "value": round(c["value"], 3),
                                "context": f"{c['before']}[{c['char']}]{c['after']}".replace("\n", "↵")}
                               for c in study.top_contexts(values, search)]), hide_index=True)
    st.altair_chart(charts.histogram_chart(study.histogram(values), kind))
    epochs = [c for c in runfolder.available_checkpoints(run_path(name)) if c not in ("best", "latest")]
    if not epochs:
        st.caption("This run kept no per-epoch checkpoints, so there is no training history to show.")
        return
    passage = val_text[:400]
    traces = {int(e): checkpoint_values(name, e, passage, layer_index(layer), kind)[:, cell] for e in epochs}
    st.altair_chart(charts.checkpoint_traces(traces))


def gate_saturation():
    st.caption("Karpathy, Johnson and Fei-Fei (2015): for each cell, how often a gate is left-saturated (< 0.1) "
               "against right-saturated (> 0.9). Click a point to study that cell.")
    layer, _, _ = pick_cell(kinds=())
    length = st.slider("Characters of the validation text", 500, 5000, 2000, 500, key="saturation_length")
    fractions = {gate: study.gate_saturation(layer_values(name, checkpoint, val_text[:length], layer_index(layer), gate,
                                                          only_this=True).astype(np.float32))
                 for gate in ("f", "i", "o")}
    st.altair_chart(charts.saturation(fractions, layer), key="saturation", on_select=_pick_saturated,
                    selection_mode=charts.PICK)


def intervene():
    st.caption("Hold this cell at a constant value while generating, and compare with the free run (same seed "
               "and prime). The prime is read without the clamp.")
    layer, kind, cell = pick_cell()
    c1, c2, c3 = st.columns(3)
    prime = c1.text_input("Prime", "`" if "`" in engine.vocab.chars else "\n", key="clamp_prime")
    value = c2.slider(f"Clamp layer {layer} {kind} cell {cell} to", -3.0, 3.0, 1.0, 0.1, key="clamp_value")
    length = c3.slider("Length", 50, 1000, 300, 50, key="clamp_length")
    temperature, seed = sidebar("temperature"), int(sidebar("seed"))
    try:
        free = generate(engine, prime, length, temperature, seed)[0]
        held = generate(engine, prime, length, temperature, seed, clamp=(layer_index(layer), kind, cell, value))[0]
    except CharModelError as e:
        st.error(str(e))
        return
    left, right = st.columns(2)
    left.markdown("**Free**")
    left.code(prime + free, language=None, wrap_lines=True)
    right.markdown(f"**Layer {layer} {kind} cell {cell} held at {value:+.1f}**")
    right.code(prime + held, language=None, wrap_lines=True)
    at = first_difference(free, held)
    st.markdown("**What the clamp changed.** " + (
        "Nothing: the two texts are the same." if at is None else
        f"The texts part at new character {at} (`{free[at - 10:at]}` then `{free[at:at + 1]}` against "
        f"`{held[at:at + 1]}`). Share of the new characters where each hypothesis holds:"))
    if at is not None:
        st.dataframe([{"hypothesis": d["description"], "free": f"{d['a']:.0%}", "clamped": f"{d['b']:.0%}"}
                      for d in compare_texts(prime, free, held)], hide_index=True)


def export():
    st.caption("States over the validation text in LSTMVis's format: states.h5 (c as state, h as output), "
               "train.h5 (character ids), words.dict and lstm.yml.")
    c1, c2, c3 = st.columns(3)
    layers = c1.multiselect("Layers", list(range(1, engine.layers + 1)), default=list(range(1, engine.layers + 1)),
                            key="export_layers")
    kinds = c2.multiselect("Kinds", ["h", "c"], default=["h", "c"], key="export_kinds")
    unsigned = c3.checkbox("Positive and negative parts as separate cells", key="export_unsigned",
                           help="LSTMVis selects only cells at or above its threshold. With this, cell k + units is "
                                "max(−x, 0), so a cell that is low where a pattern holds (the quotation cell) can be "
                                "selected through its negative part.")
    size = study.export_size(len(val_text), engine.units, len(layers) * len(kinds), unsigned)
    st.caption(f"states.h5 will hold {len(layers) * len(kinds)} array(s) of {len(val_text):,} characters x "
               f"{engine.units * (2 if unsigned else 1)} cells: {size / 2**20:.1f} MB before compression. "
               f"The command line writes the same files: `python -m charmodel lstmvis --run weights/{name} --out FOLDER"
               f"{' --unsigned' if unsigned else ''}`.")
    if st.button("Prepare the LSTMVis files", key="export_prepare", disabled=not (layers and kinds)):
        old = st.session_state.pop("export_zip", None)
        if old:
            Path(old).unlink(missing_ok=True)
        activations = cell_activations(name, checkpoint, val_text)
        chosen = {(layer_index(n), k): activations[(layer_index(n), k)] for n in layers for k in kinds}
        fd, zip_path = tempfile.mkstemp(prefix=f"charmodel-{name}-", suffix="-lstmvis.zip")
        os.close(fd)
        with st.spinner("Writing states.h5 and zipping it…"):
            study.export_lstmvis_zip(zip_path, val_text, engine.vocab.chars, chosen, name=name, unsigned=unsigned)
        st.session_state["export_zip"] = zip_path
    zip_path = st.session_state.get("export_zip")
    if zip_path and Path(zip_path).is_file():
        st.caption(f"lstmvis.zip is ready: {Path(zip_path).stat().st_size / 2**20:.1f} MB.")
        st.download_button("Download lstmvis.zip", lambda: open(zip_path, "rb"), file_name=f"{name}-lstmvis.zip",
                           mime="application/zip", key="export_download")


def ablation_sweep_tab():
    st.caption(f"What the model loses without each cell: every cell of a layer held at its mean, one at a time, over "
               f"{ABLATION_CHARS:,} validation characters (all of a layer's cells run as batches of one pass). "
               "The cells the model needs most come first.")
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", list(range(1, engine.layers + 1)), index=engine.layers - 1, key="sweep_layer")
    kind = c2.radio("Kind", ["h", "c"], horizontal=True, key="sweep_kind")
    if not swept(name, checkpoint, layer_index(layer), kind) and not st.button(
            "Run the sweep (about a minute for 512 cells)", key="sweep_run"):
        st.caption(f"Or from a terminal: `python -m charmodel ablate --run weights/{name} --layer {layer} "
                   f"--kind {kind} --sweep`")
        return
    rows = ablation_sweep(name, checkpoint, layer_index(layer), kind)
    st.altair_chart(charts.sweep_chart(rows, f"layer {layer} {kind}"), key="sweep_chart")
    top = rows[0]
    st.caption(f"Largest loss: cell {top['cell']}, {top['delta']:+.4f} bits per character. "
               f"{sum(d['delta'] > 0.001 for d in rows)} of {len(rows)} cells cost more than 0.001 bpc.")
    st.button(f"Study cell {top['cell']}", key="sweep_study", on_click=_study, args=(layer, kind, top["cell"]))


def probe_tab():
    yes_no = [n for n in FEATURES if n not in SCALAR]
    st.caption("How many cells carry a hypothesis: L1-regularised logistic regressions read it from every cell of "
               f"both layers (h and c), fitted on the last {APP_FIT_CHARS:,} training characters and scored on the "
               "validation text, from strong regularisation (few cells) to weak (many). scikit-learn fits them.")
    default = first_varying_feature(val_text)
    name_ = st.selectbox("Hypothesis", yes_no, index=yes_no.index(default) if default in yes_no else 0,
                         key="probe_feature", format_func=lambda n: FEATURES[n][0])
    if not probed(name, checkpoint, name_) and not st.button("Fit the probes (a minute or two)", key="probe_run"):
        st.caption(f"Or from a terminal: `python -m charmodel probe --run weights/{name} --hypothesis {name_}`")
        return
    try:
        result = probe_curve(name, checkpoint, name_)
    except CharModelError as e:
        st.error(user_message(e), icon=":material/warning:")
        return
    s = result["single"]
    st.altair_chart(charts.probe_chart(result["curve"], s["auc"]), key="probe_chart")
    st.caption(f"Best single cell (chosen on the fit text): layer {layer_number(s['layer'])} {s['kind']} cell "
               f"{s['cell']}, held-out AUC {s['auc']:.3f}. Chosen strength: {len(result['chosen']['cells'])} cells, "
               f"AUC {result['chosen']['auc']:.3f} (the fewest cells within {NEAR_BEST} of the best AUC).")
    st.table([{"layer": layer_number(d["layer"]), "kind": d["kind"], "cell": d["cell"], "weight": d["weight"]}
              for d in result["chosen"]["cells"][:20]], hide_index=True)


st.title("Cells")
style()
tabs = st.tabs(TABS, key="cells_tab", on_change="rerun")
for tab, show in zip(tabs, (rank, select_and_match, one_cell, gate_saturation, intervene, ablation_sweep_tab, probe_tab,
                            export)):
    if tab.open:
        with tab:
            show()
