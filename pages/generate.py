"""Generate: prime text, length, the sidebar's temperature and seed; stateful NumPy sampling."""

import time

import numpy as np
import streamlit as st

from charmodel import CharModelError
from charmodel.view.render import coloured_text, legend
from pages.shared.data import attribution, generated, load_engine, savings_over_counting
from pages.shared.mode import sidebar
from pages.shared.widgets import (attribution_controls, attribution_strip, savings_view, selected_run, style,
                                  text_or_drop, user_message)

SURPRISAL_MAX = 8.0  # bits at which the colour is darkest; a guess among 256 characters

name, checkpoint = selected_run()
engine = load_engine(name, checkpoint)
temperature, seed = sidebar("temperature"), int(sidebar("seed"))

st.title("Generate")
st.caption(f"Run **{name}**, checkpoint **{checkpoint}**, temperature **{temperature:g}**, seed **{seed}** "
           "(temperature and seed are in the sidebar).")

prime = st.text_area("Prime text", "Alice " if not engine.vocab.unknown("Alice ") else "", key="prime",
                     help="The model reads this first and continues it. Empty: start after a newline.")
length = st.slider("Length (new characters)", 10, 3000, 500, 10, key="length")
c1, c2 = st.columns(2)
compare = c1.multiselect("Compare temperatures side by side", [0.0, 0.2, 0.5, 0.8, 1.0, 1.2, 1.5], key="compare",
                         help="Like the Keras example's diversity list; empty: just the sidebar temperature.")
colour = c2.radio("Colour by", ["nothing", "probability", "surprisal", "bits saved over a 5-gram"], horizontal=True,
                  key="colour", help="probability of each chosen character under the model (temperature 1), its "
                  "surprisal in bits (red: the characters the model did not expect), or the bits the model saves "
                  "over a 5-gram count of the training text (red: where its longer context pays). The prime is grey.")

prime = text_or_drop(prime, engine.vocab, key="drop_prime")
if prime is None:
    st.stop()

temperatures = sorted(set(compare)) or [temperature]
columns = st.columns(len(temperatures))
style()
for col, temp in zip(columns, temperatures):
    t0 = time.perf_counter()
    text, probs = generated(name, checkpoint, prime, length, temp, seed)  # cached: each column is sampled once
    elapsed_ms = (time.perf_counter() - t0) * 1000
    with col:
        if len(temperatures) > 1:
            st.subheader(f"temperature {temp:g}")
        if colour == "nothing":
            st.code(prime + text, language=None, wrap_lines=True)
        elif colour == "probability":
            st.html(legend(0.0, 1.0, "p(char)") + coloured_text(text, probs, 0.0, 1.0, prime=prime))
        elif colour == "bits saved over a 5-gram":
            found = savings_over_counting(name, checkpoint, text, -np.log2(np.maximum(probs, 1e-12)), context=prime)
            savings_view(found, text, key=f"savings_{temp}", prime=prime)
        else:  # surprising characters stand out: white (expected) to red (surprising)
            bits = -np.log2(np.maximum(probs, 1e-12))
            st.html(legend(0.0, SURPRISAL_MAX, "surprisal, bits", palette="sequential") +
                    coloured_text(text, bits, 0.0, SURPRISAL_MAX, palette="sequential", prime=prime))
        st.caption(f"{length} characters in {elapsed_ms:.0f} ms")
        st.download_button("Download", prime + text, file_name=f"{name}-t{temp:g}-seed{seed}.txt",
                           key=f"download_{temp}", mime="text/plain")

# ---------------------------------------------------------------- why this character
if st.toggle("Why did it write this character? (attribution of the next-character probability)", key="show_why"):
    text, _ = generated(name, checkpoint, prime, length, temperatures[0], seed)
    full = prime + text
    position, method, window = attribution_controls(full, "why", len(full) - 2, len(full) - 2)
    try:
        result = attribution(name, checkpoint, full, position, {"next": True}, method, window)
    except CharModelError as e:
        st.error(user_message(e), icon=":material/warning:")
    else:
        nxt = full[position + 1]
        st.html(attribution_strip(result, f"attribution to log p({nxt!r}) after #{position}"))
        st.caption(f"log p({nxt!r} next) = {result['target']:+.3f} nats after character #{position} "
                   f"(temperature {temperatures[0]:g} sample). Red characters made it more likely, blue less.")
