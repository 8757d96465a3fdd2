"""Runs in and out of other formats:

    archive    a run folder as one zip, checked before anything is kept
    keras_file a Keras char-LSTM file read as data (JSON and arrays), its layers checked
    textgenrnn textgenrnn's models opened as runs, read as data (its attention head runs in the engine)
    keras_io   Keras files both ways: a Keras char-LSTM opened as a run, a run saved as Keras
"""

from charmodel.exchange import archive, keras_file, textgenrnn, keras_io  # noqa: F401
