"""charmodel: train a character-level LSTM and see what its cells learned.

Importing this package does not import TensorFlow; training imports it when training starts.
"""

from charmodel import moved
from charmodel.errors import CharModelError

moved.install()

__all__ = ["CharModelError"]
__version__ = "0.1.0"
