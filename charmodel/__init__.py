"""charmodel: train a character-level LSTM and see what its cells learned.

The front door for a notebook (docs/api.md shows each in use):

    run = charmodel.open_run("weights/alice")      # a run folder, its config read once
    engine = charmodel.Engine.load(run)            # the model's maths in NumPy
    charmodel.generate(engine, "Alice ", 200)      # text, sampled statefully
    charmodel.inspect(engine, text)                # every cell's value at every character
    charmodel.open_atlas(run).cells()              # every cell explained
    charmodel.ablate(engine, text, 1, "c", 492)    # what the model loses without a cell

Importing this package does not import TensorFlow; training imports it when training starts.
"""

from charmodel.errors import CharModelError
from charmodel.run.handle import Run  # the layers, bottom up
from charmodel.engine import Engine, bits_per_char, generate, inspect
from charmodel.analysis.ablate import ablate
from charmodel.analysis.atlas import Atlas
from charmodel.view.render import coloured_text, css


def open_run(path) -> Run:
    """A run folder, opened: its config (typed, read once), texts and checkpoints."""
    return Run.open(path)


def open_atlas(run, checkpoint: str | None = None) -> Atlas:
    """The atlas of a run's checkpoint (default: its default checkpoint), checked against its weights."""
    from charmodel.analysis import atlas

    run = Run.of(run)
    return atlas.load(run.path, checkpoint or run.default_checkpoint())


__all__ = ["CharModelError", "Run", "open_run", "Engine", "generate", "inspect", "bits_per_char", "Atlas", "open_atlas",
           "ablate", "coloured_text", "css"]
__version__ = "0.2.0"
