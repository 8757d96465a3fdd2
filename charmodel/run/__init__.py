"""A run and its text: what every other layer reads. In dependency order:

    corpus     read a text file safely, clean it, split it, and the vocabulary
    settings   every training setting, defined once (the CLI's flags, the Train page, the checks)
    folder     a run folder's files, written atomically: config, checkpoints, history
    handle     Run: one run folder opened once, its config as a typed object
"""

from charmodel.run import corpus, settings, folder, handle  # noqa: F401
from charmodel.run.handle import Run, RunConfig  # noqa: F401
