"""Entry point: navigation over pages/ and the shared sidebar. Nothing else lives here."""

import streamlit as st

from charmodel.run import folder as runfolder
from pages.shared.data import return_free_memory
from pages.shared.mode import DEFAULT_RUN, SIDEBAR, run_names, weights_root
from pages.shared.widgets import training_in_sidebar

st.set_page_config(page_title="charmodel: see what an LSTM's cells learned", page_icon=":material/search:", layout="wide")

pages = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/generate.py", title="Generate", icon=":material/edit_note:"),
    st.Page("pages/visualise.py", title="Visualise", icon=":material/palette:"),
    st.Page("pages/atlas.py", title="Atlas", icon=":material/travel_explore:"),
    st.Page("pages/cells.py", title="Cells", icon=":material/biotech:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
])

# Shared sidebar: bound to the URL, so a link reproduces a view (?run=alice&temperature=0.5).
with st.sidebar:
    runs = run_names()
    asked = st.query_params.get("run")
    if asked in runs and asked != st.session_state.get("run"):
        st.session_state["run"] = asked  # a link to a run (st.page_link's query_params) wins over the last choice
    st.selectbox("Run", runs, index=runs.index(DEFAULT_RUN) if DEFAULT_RUN in runs else 0,
                 key="run", bind="query-params", help=f"Training runs under {weights_root().name}/")
    if asked is not None and asked != st.session_state.get("run"):
        st.toast(f"The link's run={asked!r} is not a run here; showing {st.session_state.get('run')!r} instead.")
    run = st.session_state.get("run")
    checkpoints = runfolder.available_checkpoints(weights_root() / run) if run else []
    st.selectbox("Checkpoint", checkpoints, key="checkpoint", bind="query-params",
                 format_func=lambda c: c if c in ("best", "latest") else f"epoch {c}",
                 help="best: lowest validation loss; latest: last finished epoch; or a kept epoch")
    st.slider("Temperature", 0.0, 2.0, SIDEBAR["temperature"], 0.05, key="temperature", bind="query-params",
              help="0 always picks the most likely character; higher is more surprising")
    st.number_input("Seed", 0, 2**31 - 1, SIDEBAR["seed"], key="seed", bind="query-params",
                    help="the same seed gives the same text")
    training_in_sidebar()

try:
    pages.run()
finally:
    return_free_memory()  # a page's freed temporaries stay in this thread's malloc arena otherwise
