"""The app as a whole: where runs live, the sidebar's defaults, and the Streamlit mode switch
(deep links on a fresh server). Imported by every page, first."""

import os
from pathlib import Path

import streamlit as st

from charmodel.run import folder as runfolder
from charmodel.engine import set_threads
from charmodel.engine.sampling import SEED, TEMPERATURE


ROOT = Path(__file__).resolve().parents[2]  # the checkout


def _leave_pages_directory_mode() -> None:
    """Make a deep link work on a fresh server.

    Streamlit treats a folder named pages/ as old-style multipage navigation until the entry script
    has called st.navigation once. So if a new server's very first request is /visualise, it runs
    pages/visualise.py alone, without the sidebar. Every page imports this module, so we switch
    that mode off and rerun, which runs streamlit_app.py and lands on the same page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without that class has no such mode to leave
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_pages_directory_mode()
set_threads(1)  # one BLAS thread per process, whatever $CHARMODEL_THREADS says: sessions share the cores

DEFAULT_RUN = "alice"

BUNDLED = {"Alice's Adventures in Wonderland": ROOT / "data" / "alice.txt",  # the texts the app ships, by title
           "As You Like It": ROOT / "data" / "asyoulik.txt",
           "Python's standard library (3 MB of its source)": ROOT / "data" / "python.txt"}


def corpus_title(config: dict) -> str:
    """A run's corpus as a person names it: a bundled text's title, else the file's name."""
    path = config["corpus"]["path"]
    for title, bundled in BUNDLED.items():
        if Path(path).name == bundled.name and Path(path).parent.name in ("data", ""):
            return f"*{title}*"
    return f"`{Path(path).name}`"

SIDEBAR = {"temperature": TEMPERATURE, "seed": SEED}  # the shared sidebar's defaults, the CLI's too


def sidebar(key: str):
    """A shared sidebar setting (temperature or seed), or its default before the sidebar has run."""
    return st.session_state.get(key, SIDEBAR[key])


def weights_root() -> Path:
    """Where runs live: weights/ in the repository, or $CHARMODEL_WEIGHTS (tests use a scratch folder)."""
    return Path(os.environ.get("CHARMODEL_WEIGHTS", ROOT / "weights"))


def run_names() -> list[str]:
    return runfolder.list_runs(weights_root())


def run_path(name: str) -> Path:
    return runfolder.run_in(weights_root(), name)
