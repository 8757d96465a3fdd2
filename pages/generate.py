"""Generate: prime text, length, the sidebar's temperature and seed; stateful NumPy sampling."""

import time

import numpy as np
import streamlit as st

from charmodel.render import coloured_text, legend
from charmodel.sample import generate
from pages.common import engine, selected_run, sidebar, style, text_or_drop

name, path, config, checkpoint = selected_run()
model = engine(name, checkpoint)
temperature, seed = sidebar("temperature"), int(sidebar("seed"))

st.title("Generate")
st.caption(f"Run **{name}**, checkpoint **{checkpoint}**, temperature **{temperature:g}**, seed **{seed}** "
           "(temperature and seed are in the sidebar).")

prime = st.text_area("Prime text", "Alice " if not model.vocab.unknown("Alice ") else "", key="prime",
                     help="The model reads this first and continues it. Empty: start after a newline.")
length = st.slider("Length (new characters)", 10, 3000, 500, 10, key="length")
c1, c2 = st.columns(2)
compare = c1.multiselect("Compare temperatures side by side", [0.0, 0.2, 0.5, 0.8, 1.0, 1.2, 1.5], key="compare",
                         help="Like the Keras example's diversity list; empty: just the sidebar temperature.")
colour = c2.radio("Colour by", ["nothing", "probability", "surprisal"], horizontal=True, key="colour",
                  help="probability of each chosen character under the model (temperature 1), or its surprisal in bits")

prime = text_or_drop(prime, model.vocab, key="drop_prime")
if prime is None:
    st.stop()

temperatures = sorted(set(compare)) or [temperature]
columns = st.columns(len(temperatures))
style()
for col, temp in zip(columns, temperatures):
    t0 = time.perf_counter()
    if colour == "nothing":
        (text,) = generate(model, prime, length, temp, seed)
    else:
        (text,), probs = generate(model, prime, length, temp, seed, return_probs=True)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    with col:
        if len(temperatures) > 1:
            st.subheader(f"temperature {temp:g}")
        if colour == "nothing":
            st.code(prime + text, language=None, wrap_lines=True)
        else:
            values = probs[0] if colour == "probability" else -np.log2(np.maximum(probs[0], 1e-12))
            lo, hi = (0.0, 1.0) if colour == "probability" else (8.0, 0.0)  # low surprisal is red, like high p
            label = "p(char)" if colour == "probability" else "surprisal, bits"
            st.html(legend(lo, hi, label) + coloured_text(text, values, lo, hi))
        st.caption(f"{length} characters in {elapsed_ms:.0f} ms")
        st.download_button("Download", prime + text, file_name=f"{name}-t{temp:g}-seed{seed}.txt",
                           key=f"download_{temp}", mime="text/plain")
