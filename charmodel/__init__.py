"""charmodel: train a character-level LSTM and see what its cells learned.

Importing this package does not import TensorFlow; only `charmodel.train` and `charmodel.model`
do, and only when training starts.
"""

from .errors import CharModelError

__all__ = ["CharModelError"]
__version__ = "0.1.0"
