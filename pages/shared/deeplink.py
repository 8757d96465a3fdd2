"""The one private Streamlit switch in the app, kept here alone (docs/architecture.md says why).

Streamlit treats a folder named pages/ beside the entry script as old-style multipage navigation
until the entry script has called st.navigation once. So if a new server's very first request is
/visualise, it runs pages/visualise.py alone, without the sidebar (streamlit#9624 and its
neighbours; there is no public setting for it in Streamlit 1.67). Every page imports mode.py, which
calls this: the switch is turned off and the script rerun, which runs streamlit_app.py and lands
on the same page. tests/test_deeplink.py fails loudly if an upgrade changes what it relies on.
"""

import streamlit as st


def leave_pages_directory_mode() -> None:
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without that class has no such mode to leave
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
