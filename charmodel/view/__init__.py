"""What the app and the tools draw, with no Streamlit in it:

    render     coloured text as HTML, one value per character
    charts     Altair charts and the small pieces of logic behind their selections
"""

from charmodel.view import render, charts  # noqa: F401
