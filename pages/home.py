"""Home: what this is, a sample, and a passage coloured by the run's headline cell, on first open."""

import streamlit as st

from charmodel import CharModelError
from charmodel.engine import layer_number
from charmodel.exchange.keras_io import imported_line
from charmodel.run.corpus import opening
from charmodel.view.render import coloured_text, display_values, legend
from charmodel.view.words import headline_sentence
from pages.shared.background import atlas_job, start_atlas_job
from pages.shared.data import (atlas_headline, generated, headline_passage, layer_values, load_atlas, load_engine,
                               prefetch_cell_activations, run_config, split_text)
from pages.shared.mode import corpus_title, sidebar
from pages.shared.widgets import selected_run, style, user_message

PASSAGE = 700  # characters of the coloured passage
WINDOWED_PASSAGE = 200  # a windowed run pays a whole window per character

name, checkpoint = selected_run()
config, engine = run_config(name), load_engine(name, checkpoint)
st.title("See what an LSTM's cells learned")
what = (f"imported from {config.imported.get('file', 'a model file')}, shown here on {corpus_title(config)}"
        if config.imported else f"that learned {corpus_title(config)}")
st.markdown(
    "Train a character-level LSTM on any text, generate from it, and watch every cell: its output "
    "`h`, its cell state `c` and its gates, character by character. It starts from the blog post "
    "*Visualising LSTM Activations in Keras*, whose author scanned 512 cells by hand and found a "
    "quotation cell; here every cell is explained automatically, sampling runs in NumPy "
    + ("over a ring of windows" if engine.window else "with the state carried from character to character")
    + f", and training resumes after any interruption. Run **{name}** is a {engine.layers} × {engine.units} LSTM "
    f"{what} ({config.corpus.chars:,} characters)."
)
c1, c2, c3, c4, c5 = st.columns(5)
c1.page_link("pages/generate.py", label="Generate text", icon=":material/edit_note:")
c2.page_link("pages/visualise.py", label="Visualise a cell", icon=":material/palette:")
c3.page_link("pages/atlas.py", label="Every cell explained", icon=":material/travel_explore:")
c4.page_link("pages/cells.py", label="Find cells", icon=":material/biotech:")
c5.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")

imported = imported_line(config)
if imported:
    st.info(imported, icon=":material/input:")
temperature, seed = sidebar("temperature"), int(sidebar("seed"))
val = split_text(name)[1]
prime = opening(val)  # the first words of a paragraph of the run's own validation text
left, right = st.columns(2)
with left:
    st.markdown(f"**A sample** from run {name}, primed with the first words of a paragraph of its validation text "
                f"(temperature {temperature:g}, seed {seed}: both in the sidebar)")
    st.code(prime + generated(name, checkpoint, prime, 300, temperature, seed)[0], language=None, wrap_lines=True)

with right:
    try:
        book, missing = load_atlas(name, checkpoint), ""
    except CharModelError as e:  # none yet, or damaged, or built for other weights: the message says which
        book, missing = None, user_message(e)
    best = atlas_headline(name, checkpoint)  # read from the atlas: nothing is ranked here
    if book is not None and best is None:
        st.markdown(f"**The atlas of run {name}** explains none of its cells by more than the current character.")
    elif book is None:
        st.markdown(f"**The cells of run {name} are not explained yet**: {missing} Building the atlas takes about a "
                    "minute for a 2 × 256 model on 2 cores; the app stays usable meanwhile.")
        job = atlas_job(name, checkpoint)
        if job is not None and job.alive:
            @st.fragment(run_every=1.0)
            def follow():
                if job.alive:
                    st.progress(job.fraction, text=f"Building the atlas: {job.stage}…")
                else:
                    st.rerun(scope="app")

            follow()
        else:
            if job is not None and job.status == "failed":
                st.error(f"The atlas build failed: {job.error}", icon=":material/error:")
            st.button("Build the atlas in the background", key="home_build_atlas", type="primary",
                      on_click=start_atlas_job, args=(name, checkpoint))
    else:
        number = layer_number(best["layer"])
        text = headline_passage(name, checkpoint, best, WINDOWED_PASSAGE if engine.window else PASSAGE)
        raw = layer_values(name, checkpoint, text, best["layer"], best["kind"], only_this=True)[:, best["cell"]]
        values, (lo, hi) = display_values(raw, best["kind"])
        style()
        st.markdown(headline_sentence(best))
        st.html(legend(lo, hi, f"layer {number} cell {best['cell']} {best['kind']}") +
                coloured_text(text, values, lo, hi))
        st.page_link("pages/visualise.py", label="Open this cell in Visualise", icon=":material/palette:",
                     query_params={"run": name, "layer": number, "cell": best["cell"], "kind": best["kind"]})
        cov = book.coverage()
        st.caption(f"**The atlas** explains {cov['explained']:,} of this model's {cov['cells']:,} cells by a phrase of "
                   f"at most three terms, scored alone on text it was not fitted on (median phrase r "
                   f"{cov['median_phrase_r']:.2f}); for {cov['beyond_half']:,} the phrase tells, at r ≥ 0.5, what the "
                   "last three characters do not. Open **Every cell explained** to browse them.")
if not engine.window:  # a windowed run's W steps per character would hold a core for minutes
    prefetch_cell_activations(name, checkpoint, val)  # Cells ranks over it: have it ready by the time it opens
