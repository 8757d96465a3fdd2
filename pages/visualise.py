"""Visualise: one cell's value as coloured text, beside its trace, plus a heatmap of the layer."""

import numpy as np
import streamlit as st

from charmodel import CharModelError
from charmodel.analysis import study
from charmodel.engine import KINDS, layer_index, layer_number
from charmodel.view import charts
from charmodel.view.render import KIND_LABELS, coloured_text, display_values, hover_titles, legend
from pages.shared.data import (attention, attribution, generated, guesses, headline, layer_values, load_engine,
                               savings_over_counting, split_text)
from pages.shared.mode import sidebar
from pages.shared.widgets import (attention_strip, attribution_controls, attribution_strip, savings_view,
                                  selected_run, style, text_or_drop, user_message)

name, checkpoint = selected_run()
engine = load_engine(name, checkpoint)
units, layers = engine.units, engine.layers
best = st.session_state.get("studied")  # the view opens on the cell last studied (here or in Cells)...
if not best or best["layer"] > layers or best["cell"] >= units:
    found = headline(name, checkpoint)  # ...or on the run's headline cell
    best = {**found, "layer": layer_number(found["layer"])}


def _pick_from_heatmap():
    cell = charts.picked_cell(st.session_state.get("heatmap", {}).get("selection"))
    if cell is not None:
        st.session_state["cell"] = cell


def _step_cell(delta: int):
    st.session_state["cell"] = (int(st.session_state.get("cell", 0)) + delta) % units


st.title("Visualise")

# ---------------------------------------------------------------- text source
source = st.radio("Text", ["Corpus passage", "Generated text", "Your text"], horizontal=True, key="source")
train_text, val_text = split_text(name)
if source == "Corpus passage":
    c1, c2, c3 = st.columns(3)
    part = c1.radio("Part", ["validation", "training"], horizontal=True, key="part")
    corpus = val_text if part == "validation" else train_text
    length = c3.slider("Length", 100, 3000, 1000, 50, key="passage_length")
    first_paragraph = corpus.find("\n\n") + 2 if "\n\n" in corpus[:5000] else 0  # not mid-word
    start = c2.number_input("Start", 0, max(len(corpus) - 100, 0), first_paragraph, 100, key="passage_start")
    text = corpus[int(start) : int(start) + length]
    shown_from = 0
elif source == "Generated text":
    length = st.slider("Length", 100, 3000, 800, 50, key="generated_length")
    seed = int(sidebar("seed"))
    rng = np.random.default_rng(seed)  # a random seed passage from the training text, as the post did
    at = int(rng.integers(0, len(train_text) - 100))
    prime = train_text[at : at + 100]
    new = generated(name, checkpoint, prime, length, sidebar("temperature"), seed)[0]
    text, shown_from = prime + new, len(prime)
    st.caption(f"Primed with training characters {at}–{at + 100}; colouring starts after the prime.")
else:
    typed = st.text_area("Your text", "`Oh, you can't help that,' said the Cat: `we're all mad here.'", key="own_text")
    text = text_or_drop(typed, engine.vocab, key="drop_own")
    if not text:
        st.stop()
    shown_from = 0

# ---------------------------------------------------------------- what to show
c1, c2, c3, c4, c5 = st.columns([1, 2, 0.5, 0.5, 3])
if st.session_state.get("layer", 1) not in range(1, layers + 1):  # a new run may have fewer layers...
    del st.session_state["layer"]
if int(st.session_state.get("cell", 0)) not in range(units):  # ...or fewer cells: back to the defaults
    del st.session_state["cell"]
asked = {k: st.query_params.get(k) for k in ("layer", "cell", "kind")}  # what a link asked for
layer = c1.selectbox("Layer", list(range(1, layers + 1)), index=best["layer"] - 1, key="layer", bind="query-params")
if "cell" not in st.query_params:  # the default, as state: the ◀ ▶ buttons and the heatmap also set it
    st.session_state.setdefault("cell", best["cell"])
cell = c2.number_input("Cell", 0, units - 1, key="cell", bind="query-params")
c3.button("◀", key="prev_cell", on_click=_step_cell, args=(-1,), help="previous cell")
c4.button("▶", key="next_cell", on_click=_step_cell, args=(1,), help="next cell")
kind = c5.radio("Kind", list(KINDS), index=KINDS.index(best["kind"]), horizontal=True, key="kind",
                bind="query-params", help="; ".join(KIND_LABELS[k] for k in KINDS))  # plain labels: the URL carries them
ignored = [f"{k}={v}" for k, v in asked.items() if v is not None and v != str({"layer": layer, "cell": int(cell),
                                                                                 "kind": kind}[k])]
if ignored:
    st.caption(f":material/info: The link's {' and '.join(ignored)} does not fit run {name} ({layers} layers, cells "
               f"0–{units - 1}, kinds {', '.join(KINDS)}); showing layer {layer}, cell {cell}, {kind} instead.")
st.session_state["studied"] = {"layer": layer, "kind": kind, "cell": int(cell)}
if kind in ("h", "c"):
    scale = st.radio("Colour scale", ["default", "sigmoid"], horizontal=True, key="scale",
                     format_func=lambda s: {"default": "diverging, −1…1 (c shown as tanh(c))",
                                            "sigmoid": "the post's sigmoid(value), 0…1"}[s])
else:  # a gate is already in 0…1: the post's sigmoid would squeeze it into 0.5…0.73
    scale = "default"
    st.caption("Gates are shown on their own scale: 0…1 for i, f and o, −1…1 for the candidate g.")

# ---------------------------------------------------------------- the cell
window = engine.window
if window:
    st.caption(f":material/input: Run {name} reads windows of {window} characters from a zero state: each value is that "
               f"of the window ending at its character, as the post computed it ({window} steps per character).")
activations = layer_values(name, checkpoint, text, layer_index(layer), kind)[shown_from:]  # (T, units), cached
shown = text[shown_from:]
raw = activations[:, int(cell)].astype(np.float64)  # (T,)
values, (lo, hi) = display_values(raw, kind, scale)
label = f"layer {layer} cell {int(cell)} {kind}" + (" (sigmoid)" if scale == "sigmoid" else "")

selection = st.session_state.get("trace", {}).get("selection")
selected = charts.brush_range(selection, len(shown))
titles = hover_titles(shown, values, guesses(name, checkpoint, text)[shown_from:], label=kind)

style()
left, right = st.columns([3, 2])
with left:
    st.html(legend(lo, hi, label) + coloured_text(shown, values, lo, hi, titles=titles, selected=selected))
with right:
    st.altair_chart(charts.trace(values, shown, label, (lo, hi)), key="trace", on_select="rerun",
                    selection_mode=charts.BRUSH)
    if selected:
        a, b = selected
        st.caption(f"Selected characters {a}–{b - 1}: mean {values[a:b].mean():+.3f}. "
                   "The underlined characters in the text are the brushed range.")
    else:
        st.caption("Drag across the plot to highlight a range in the text; hover a character for its value "
                   "and the model's top 5 next-character guesses.")

# ---------------------------------------------------------------- span search: which cells mark the selection
if selected and selected[1] - selected[0] < len(shown):
    a, b = selected
    st.markdown(f"**Cells of layer {layer} {kind} that differ most inside characters {a}–{b - 1}** "
                "(standardised mean difference, inside against the rest of the passage)")
    found = study.span_cells(activations, a, b)
    st.table([{**d, "cell is": "higher" if d["d"] > 0 else "lower"} for d in found], hide_index=True)
    c1, c2 = st.columns(2)
    high = [d for d in found if d["d"] > 0][:5]
    if c1.button("Match these cells elsewhere in the passage", key="span_match", disabled=not high,
                 help="the cells that are higher inside: other places where all of them are above the midpoint "
                      "of their inside and outside means (LSTMVis's select-and-match)"):
        cells = np.array([d["cell"] for d in high])
        thresholds = np.array([(d["inside"] + d["outside"]) / 2 for d in high])
        matches = study.match_passages(activations, cells, thresholds, b - a, exclude=(a, b), top=8)
        st.caption(f"{len(matches)} passage(s) where cells {', '.join(map(str, cells))} are on together:")
        for m in matches:
            w = slice(max(m["start"] - 30, 0), min(m["end"] + 30, len(shown)))
            st.html(coloured_text(shown[w], values[w], lo, hi, selected=(m["start"] - w.start, m["end"] - w.start)))
    if kind in ("h", "c"):
        best_cell = found[0]["cell"]
        if c2.button(f"Open cell {best_cell}'s dossier in the Atlas", key="span_dossier"):
            st.session_state["studied"] = {"layer": layer, "kind": kind, "cell": best_cell}
            st.switch_page("pages/atlas.py")

# ---------------------------------------------------------------- why it has this value
if kind in ("h", "c") and engine.attention is not None:
    st.caption("Attribution (which earlier characters drive a cell) is not available for a model with an attention "
               "head yet.")
elif kind in ("h", "c") and st.toggle("Which earlier characters drive this cell? (attribution)", key="show_attribution"):
    at_max = int(np.argmax(np.abs(raw)))  # opens on the cell's strongest character in view
    position, method, window = attribution_controls(shown, "attribution", at_max, len(shown) - 1)
    try:
        result = attribution(name, checkpoint, text, shown_from + position,
                             {"layer": layer_index(layer), "kind": kind, "cell": int(cell)}, method, window)
    except CharModelError as e:
        st.error(user_message(e), icon=":material/warning:")
    else:
        st.html(attribution_strip(result, f"attribution to {label} at #{position}"))
        st.caption(f"{label} = {result['target']:+.3f} at character #{position} ({shown[position]!r}). Red characters "
                   "raised it, blue ones lowered it" + (f"; completeness error {result['completeness']:+.4f}"
                                                        if "completeness" in result else "") + ".")

# ---------------------------------------------------------------- what an attention head read
if engine.attention is not None and st.toggle("Which earlier characters did the attention head read?",
                                              key="show_attention"):
    position = int(st.number_input("Position", 0, len(shown) - 1, len(shown) - 1, key="attention_position",
                                   help="the character after which the model predicts the next one"))
    read = attention(name, checkpoint, text, shown_from + position)
    st.html(attention_strip(read, f"attention weight, predicting the character after #{position}"))
    padding = read["steps"] - len(read["chars"])
    st.caption(f"The head averages [embedding, every layer's h] over the window of {read['steps']} steps ending at "
               f"#{position} ({shown[position]!r}), each step weighted as coloured; the Dense reads that average."
               + (f" The first {padding} steps are the padding before its text begins (not shown): "
                  f"{read['padding']:.1%} of the weight." if padding else ""))

# ---------------------------------------------------------------- where the model beats counting
if st.toggle("Where does the model beat counting? (bits it saves over a 5-gram at each character)", key="show_savings"):
    savings_view(savings_over_counting(name, checkpoint, text).after(shown_from), shown, key="savings_trace")

# ---------------------------------------------------------------- the whole layer
if st.toggle(f"Heatmap of layer {layer}, to spot candidate cells (click a row to select it)", key="show_heatmap"):
    shown_activations, _ = display_values(activations, kind, scale)
    st.altair_chart(charts.heatmap(charts.heatmap_frame(shown_activations), (lo, hi), kind), key="heatmap",
                    on_select=_pick_from_heatmap, selection_mode=charts.PICK)
