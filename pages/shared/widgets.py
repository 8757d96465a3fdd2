"""What pages draw alike: the run picker's error card, the training job in the sidebar, links to a
run, attribution controls, error text and the widget values that outlive a page visit."""

import numpy as np
import streamlit as st

from charmodel import CharModelError
from charmodel.run import folder as runfolder
from charmodel.view.charts import trace
from charmodel.view.render import char_name, coloured_text, css, legend
from pages.shared.background import job_manager
from pages.shared.data import load_engine
from pages.shared.mode import ROOT, run_path, weights_root


def selected_run():
    """(name, checkpoint) of the sidebar's run, or an error card and stop."""
    keep_widget_values()
    name = st.session_state.get("run")
    if not name:
        st.info("No runs yet. Train one on the Train page.")
        st.stop()
    try:
        path = run_path(name)
        runfolder.read_config(path)  # a damaged config is named before anything else
        checkpoint = st.session_state.get("checkpoint") or runfolder.default_checkpoint(path)
        if checkpoint not in runfolder.available_checkpoints(path):
            checkpoint = runfolder.default_checkpoint(path)
        load_engine(name, checkpoint)  # fail here, with a card, if the weights are damaged
    except CharModelError as e:
        st.error(f"Run **{name}** cannot be used: {user_message(e)}", icon=":material/warning:")
        st.stop()
    return name, checkpoint


def style() -> None:
    st.html(css())


def text_or_drop(text: str, vocab, key: str) -> str | None:
    """Return `text` if every character is known; else name the unknown ones and offer to drop them."""
    unknown = vocab.unknown(text)
    if not unknown:
        return text
    shown = " ".join(repr(ch) for ch in unknown[:30])
    st.warning(f"{len(unknown)} character(s) are not in this model's vocabulary: {shown}")
    if st.checkbox("Drop them and continue", key=key):
        return vocab.drop_unknown(text)
    return None


def attribution_controls(text: str, key: str, default_position: int, last: int) -> tuple[int, str, int]:
    """(position, method, window) pickers for an attribution strip; `last` is the highest position."""
    from charmodel.analysis.saliency import METHODS, WINDOW

    c1, c2, c3 = st.columns([1, 2, 1])
    position = int(c1.number_input("Position", 0, last, min(default_position, last), key=f"{key}_position",
                                   help="the character whose value is explained (counted from 0)"))
    method = c2.radio("Method", METHODS, horizontal=True, key=f"{key}_method",
                      format_func={"occlusion": "occlusion", "gxi": "gradient × input",
                                   "ig": "integrated gradients"}.get,
                      help="occlusion replaces each earlier character by the corpus's most frequent one, one at a "
                           "time; the gradient "
                           "methods are faster but miss a latched cell's trigger (see the README)")
    window = int(c3.number_input("Window", 1, 1000, WINDOW, 10, key=f"{key}_window",
                                 help="characters up to and including the position; at most the text's length"))
    return position, method, min(window, len(text))


def attribution_strip(result: dict, label: str) -> str:
    """HTML: the window's characters coloured by their scores, blue (lowered the target) to red
    (raised it), on a scale symmetric about 0; the explained character outlined."""
    from charmodel.view.render import show_char

    scores = np.asarray(result["scores"])
    top = float(f"{float(np.abs(scores).max()):.3g}") or 1.0  # a legend end a person can read
    chars = "".join(show_char(ch) if ch in "\n\t" else ch for ch in result["chars"])
    titles = [f"#{result['start'] + j} {ch!r}: {s:+.4f}" for j, (ch, s) in enumerate(zip(result["chars"], scores))]
    return legend(-top, top, label) + coloured_text(chars, scores, -top, top, titles=titles,
                                                    selected=(len(chars) - 1, len(chars)))


def attention_strip(result: dict, label: str) -> str:
    """HTML: an attention head's window, each character coloured by the weight the head gave it,
    white (none) to red (the most any step got); the predicting character outlined."""
    from charmodel.view.render import show_char

    weights = 100 * np.asarray(result["weights"])  # in percent, as the tooltips say it
    top = float(f"{float(weights.max()):.3g}") or 1.0
    chars = "".join(show_char(ch) if ch in "\n\t" else ch for ch in result["chars"])
    titles = [f"#{result['start'] + j} {ch!r}: weight {w:.1f}%" for j, (ch, w) in enumerate(zip(result["chars"], weights))]
    return legend(0, top, label + " (%)", palette="sequential") + coloured_text(
        chars, weights, 0, top, titles=titles, selected=(len(chars) - 1, len(chars)), palette="sequential")


def user_message(error: Exception) -> str:
    """An error's message as a user of the app may see it: no server paths (the weights folder is
    named `weights/`, the app's own folder `.`)."""
    text = str(error)
    for path, shown in ((weights_root().resolve(), "weights"), (ROOT, ".")):
        text = text.replace(str(path), shown)
    return text

KEEP = ("train_", "study_")  # widget keys whose values outlive a visit to another page or tab

NOT_KEPT = ("_start", "_resume", "_stop", "_upload", "_move")  # buttons, uploads and expanders are not set


def keep_widget_values() -> None:
    """Streamlit forgets a widget's value when a run does not draw the widget (another page, or a
    tab that is not open). Every page calls this first: remember the values of the widgets
    under KEEP, and put back the ones Streamlit dropped, so the Train form and the studied cell
    survive a visit elsewhere."""
    kept = st.session_state.setdefault("kept_widgets", {})
    for key, value in st.session_state.to_dict().items():  # user keys (iterating gives widget ids)
        if key.startswith(KEEP) and not key.endswith(NOT_KEPT):
            kept[key] = value
    for key, value in kept.items():
        if key not in st.session_state:
            st.session_state[key] = value


def open_links(run: str) -> None:
    """Links that open a run in Generate and Visualise (the URL selects the run)."""
    c1, c2, _ = st.columns([1, 1, 2])
    c1.page_link("pages/generate.py", label="Open in Generate", icon=":material/edit_note:", query_params={"run": run})
    c2.page_link("pages/visualise.py", label="Open in Visualise", icon=":material/palette:", query_params={"run": run})


def atlas_after_training(run: str) -> None:
    """Where the atlas of a run whose training just ended stands: building (with its progress), ready
    (a link to it), or failed. A fragment: it follows the build without redrawing the page."""
    manager = job_manager()
    build = manager.atlas(run_path(run), "best")
    if build is None:
        return

    def show():
        if build.alive:
            st.progress(build.fraction, text=f"Building the atlas of {run} in the background ({build.stage})…")
        elif build.status == "finished":
            st.page_link("pages/atlas.py", label=f"The atlas of {run} is ready: every cell explained",
                         icon=":material/travel_explore:", query_params={"run": run})
        else:
            st.caption(f":material/error: The atlas of {run} could not be built: {build.error}")

    st.fragment(show, run_every=2.0 if build.alive else None)()


def training_in_sidebar() -> None:
    """While a training job runs, every page's sidebar names it, with its epoch and a stop button;
    once it has ended, how it ended and a link to the run (until another job starts)."""
    manager = job_manager()

    def show():
        job = manager.job
        if job is None:
            return
        p = job.snapshot()
        st.divider()
        if not job.alive:
            st.caption(f":material/model_training: Training **{p.run}** {p.status}"
                       + (f" after epoch {p.rows[-1]['epoch']}" if p.rows else ""))
            if p.rows:
                st.page_link("pages/generate.py", label=f"Open {p.run} in Generate", icon=":material/edit_note:",
                             query_params={"run": p.run})
                build = manager.atlas(run_path(p.run), "best")
                if build is not None and build.alive:
                    st.caption(f":material/travel_explore: Building its atlas: {build.fraction:.0%}")
                elif build is not None and build.status == "finished":
                    st.page_link("pages/atlas.py", label="Its atlas is ready", icon=":material/travel_explore:",
                                 query_params={"run": p.run})
            return
        where = f"epoch {p.epoch}/{p.epochs}, batch {p.batch}/{p.steps}" if p.steps else p.status
        st.caption(f":material/model_training: Training **{p.run}**: {where}")
        c1, c2 = st.columns(2)
        c1.page_link("pages/train.py", label="Watch", icon=":material/monitoring:")
        c2.button("Stop training", key="sidebar_stop", on_click=manager.stop, disabled=p.status == "stopping")

    job = manager.job
    building = job is not None and (build := manager.atlas(job.run, "best")) is not None and build.alive
    st.fragment(show, run_every=2.0 if job is not None and (job.alive or building) else None)()


SAVED_MAX = 4.0  # bits saved over the count at the colour scale's ends


def savings_view(savings, text: str, key: str, prime: str = "") -> None:
    """`text` coloured by the bits the model saves over a 5-gram count at each character (red: it
    pays less), its trace, and the total in a sentence (scoring.Savings)."""
    saved = np.nan_to_num(savings.saved)
    titles = [f"#{t} {char_name(ch)}  model {m:.2f} bits, {savings.order}-gram {n:.2f}: saves {s:+.2f}"
              for t, (ch, m, n, s) in enumerate(zip(text, savings.model_bits, savings.ngram_bits, saved))]
    label = f"bits saved over a {savings.order}-gram count"
    st.html(legend(-SAVED_MAX, SAVED_MAX, label) + coloured_text(text, saved, -SAVED_MAX, SAVED_MAX, titles=titles,
                                                                 prime=prime))
    st.altair_chart(trace(saved, text, label, (-SAVED_MAX, SAVED_MAX), height=200), key=key)
    st.caption(savings.sentence())
