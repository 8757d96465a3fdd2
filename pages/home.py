"""Home: what this is, a sample, and a passage coloured by the run's headline cell, on first open."""

import numpy as np
import streamlit as st

from charmodel import CharModelError
from charmodel.cells import feature
from charmodel.corpus import paragraph_start
from charmodel.engine import layer_number
from charmodel.keras_io import imported_line
from charmodel.render import coloured_text, display_values, legend
from pages.shared.mode import sidebar
from pages.shared.data import (generated, headline, headline_text, layer_values, load_atlas, load_engine,
    prefetch_cell_activations, run_config, split_text)
from pages.shared.widgets import selected_run, style

PASSAGE = 700  # characters of the coloured passage

st.title("See what an LSTM's cells learned")
st.markdown(
    "Train a character-level LSTM on any text, generate from it, and watch every cell: its output "
    "`h`, its cell state `c` and its gates, character by character. It starts from the blog post "
    "*Visualising LSTM Activations in Keras*, whose author scanned 512 cells by hand and found a "
    "quotation cell; here cells are found automatically, sampling runs in NumPy with the state "
    "carried from character to character, and training resumes after any interruption. The "
    "shipped model learned *Alice's Adventures in Wonderland*."
)
c1, c2, c3, c4, c5 = st.columns(5)
c1.page_link("pages/generate.py", label="Generate text", icon=":material/edit_note:")
c2.page_link("pages/visualise.py", label="Visualise a cell", icon=":material/palette:")
c3.page_link("pages/atlas.py", label="Every cell explained", icon=":material/travel_explore:")
c4.page_link("pages/cells.py", label="Find cells", icon=":material/biotech:")
c5.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")

name, checkpoint = selected_run()
vocab = load_engine(name, checkpoint).vocab
imported = imported_line(run_config(name))
if imported:
    st.info(imported, icon=":material/input:")
temperature, seed = sidebar("temperature"), int(sidebar("seed"))
prime = "Alice " if not vocab.unknown("Alice ") else ""
left, right = st.columns(2)
with left:
    st.markdown(f"**A sample** from run {name} (temperature {temperature:g}, seed {seed}: both in the sidebar)")
    st.code(prime + generated(name, checkpoint, prime, 300, temperature, seed)[0], language=None, wrap_lines=True)

# a validation passage where the headline hypothesis holds, coloured by the run's headline cell
best = headline(name, checkpoint)
val = split_text(name)[1]
on = np.flatnonzero(feature(best["feature"], val)) if best["metric"] == "auc" else []
at = paragraph_start(val, int(on[0]) if len(on) else 0)
text = val[at : at + PASSAGE]
raw = layer_values(name, checkpoint, text, best["layer"], best["kind"], only_this=True)[:, best["cell"]]
number = layer_number(best["layer"])  # as the user counts layers
values, (lo, hi) = display_values(raw, best["kind"])
metric = "AUC" if best["metric"] == "auc" else "|r|"
over = headline_text(name, checkpoint)
with right:
    style()
    st.markdown(f"**The headline cell**, found automatically: layer {number} {best['kind']} cell "
                f"{best['cell']} tracks *{best['description']}* over {over} "
                f"({metric} {best['score']:.2f}; {'high' if best['direction'] > 0 else 'low'} where it holds)")
    st.html(legend(lo, hi, f"layer {number} cell {best['cell']} {best['kind']}") +
            coloured_text(text, values, lo, hi))
    st.page_link("pages/visualise.py", label="Open this cell in Visualise", icon=":material/palette:",
                 query_params={"run": name, "layer": number, "cell": best["cell"], "kind": best["kind"]})
try:  # the atlas's one-line summary, when the run has one (a cached read of a small file)
    cov = load_atlas(name, checkpoint).coverage()
except CharModelError:
    pass
else:
    st.caption(f"**The atlas** explains {cov['explained']:,} of this model's {cov['cells']:,} cells on text it "
               f"was not fitted on (median simulation r {cov['median_simulation_r']:.2f}); "
               f"{cov['by_group']['long']} of them chiefly by long context (quotations, brackets, lines, positions), "
               "the rest by the characters at hand. Open **Every cell explained** to browse them.")
if not load_engine(name, checkpoint).window:  # a windowed run's W steps per character would hold a core for minutes
    prefetch_cell_activations(name, checkpoint, val)  # Cells ranks over it: have it ready by the time it opens
