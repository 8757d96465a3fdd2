"""What the app and the tools draw, with no Streamlit in it:

    render     coloured text as HTML, one value per character
    charts     Altair charts and the small pieces of logic behind their selections
    words      the atlas's scores in words: what is scored, and against what

`charts` imports Altair and pandas (most of a second), so it is imported where a chart is drawn,
not here.
"""

from charmodel.view import render  # noqa: F401
