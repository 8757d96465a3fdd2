"""The app's one private Streamlit switch (pages/shared/deeplink.py) still means what it did: an
upgrade that renames or stops reading it fails here, loudly, before a deep link silently loses
its sidebar on a fresh server."""

import inspect

import streamlit
from streamlit.commands import navigation
from streamlit.runtime import pages_manager
from streamlit.runtime.scriptrunner import script_runner


def test_the_pages_directory_switch_is_the_one_streamlit_reads():
    assert hasattr(pages_manager.PagesManager, "uses_pages_directory"), streamlit.__version__
    # the manager sets it from a pages/ folder beside the entry script, once per process...
    assert '/ "pages"' in inspect.getsource(pages_manager.PagesManager.__init__)
    # ...the script runner runs a page alone (the old mode) while it is true...
    assert "PagesManager.uses_pages_directory" in inspect.getsource(script_runner)
    # ...and st.navigation turns it off, which is all our switch does early
    assert "uses_pages_directory = False" in inspect.getsource(navigation)


def test_the_switch_lives_in_one_place():
    from .conftest import ROOT

    users = [p.relative_to(ROOT).as_posix() for p in [*(ROOT / "pages").rglob("*.py"), ROOT / "streamlit_app.py"]
             if "uses_pages_directory" in p.read_text(encoding="utf-8")]
    assert users == ["pages/shared/deeplink.py"]
