"""The app as a whole: where runs live and the sidebar's defaults; it leaves Streamlit's pages/
mode first (deeplink.py). Imported by every page, first."""

import os
from pathlib import Path

import streamlit as st

from charmodel.engine import set_threads
from charmodel.engine.sampling import SEED, TEMPERATURE
from charmodel.run import folder as runfolder
from pages.shared.deeplink import leave_pages_directory_mode

ROOT = Path(__file__).resolve().parents[2]  # the checkout


leave_pages_directory_mode()
set_threads(1)  # one BLAS thread per process, whatever $CHARMODEL_THREADS says: sessions share the cores

DEFAULT_RUN = "alice"

BUNDLED = {"Alice's Adventures in Wonderland": ROOT / "data" / "alice.txt",  # the texts the app ships, by title
           "As You Like It": ROOT / "data" / "asyoulik.txt",
           "Python's standard library (3 MB of its source)": ROOT / "data" / "python.txt"}


def corpus_title(config) -> str:
    """A run's corpus (a RunConfig's) as a person names it: a bundled text's title, else the file's name."""
    path = config.corpus.path
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
