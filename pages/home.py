"""Home: what this is, and one click to a sample coloured by an automatically found cell."""

import streamlit as st

from charmodel.cells import batched_states, feature, rank_cells
from charmodel.render import coloured_text, display_values, legend
from charmodel.sample import generate
from pages.common import engine, selected_run, sidebar, split_text, style

st.title("See what an LSTM's cells learned")
st.markdown(
    "Train a character-level LSTM on any text, generate from it, and watch every cell: its output "
    "`h`, its cell state `c` and its gates, character by character. It starts from the blog post "
    "*Visualising LSTM Activations in Keras*, whose author scanned 512 cells by hand and found a "
    "quotation cell; here cells are found automatically, sampling runs in NumPy with the state "
    "carried from character to character, and training resumes after any interruption. The "
    "shipped model learned *Alice's Adventures in Wonderland*."
)
c1, c2, c3, c4 = st.columns(4)
c1.page_link("pages/generate.py", label="Generate text", icon=":material/edit_note:")
c2.page_link("pages/visualise.py", label="Visualise a cell", icon=":material/palette:")
c3.page_link("pages/cells.py", label="Find cells", icon=":material/biotech:")
c4.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")

name, path, config, checkpoint = selected_run()
if st.button("Show me a sample and a cell", type="primary", key="show_me"):
    model = engine(name, checkpoint)
    seed = int(sidebar("seed"))
    st.markdown(f"**A sample** (temperature 0.5, seed {seed})")
    st.code("Alice " + generate(model, "Alice ", 300, 0.5, seed)[0] if not model.vocab.unknown("Alice ")
            else generate(model, "", 300, 0.5, seed)[0], language=None, wrap_lines=True)
    # a validation passage with quotations in it, coloured by the cell that best tracks them there
    val = split_text(name)[1]
    at = max(val.find("`"), 0)
    text = val[at : at + 700]
    states = batched_states(model, text)
    for name_ in ("quote", "word_start"):
        signal = feature(name_, text)
        if 0 < signal.sum() < len(signal):
            best = rank_cells(states, signal, top=1)[0]
            break
    values, (lo, hi) = display_values(states[(best["layer"] - 1, best["kind"])][:, best["cell"]], best["kind"])
    label = f"layer {best['layer']} cell {best['cell']} {best['kind']}"
    style()
    st.markdown(f"**A cell**, found automatically: the one that best separates '{name_.replace('_', ' ')}' "
                f"characters in this validation passage (AUC {best['score']:.2f})")
    st.html(legend(lo, hi, label) + coloured_text(text, values, lo, hi))
    st.page_link("pages/visualise.py", label="Open this cell in Visualise", icon=":material/palette:",
                 query_params={"run": name, "layer": best["layer"], "cell": best["cell"], "kind": best["kind"]})
