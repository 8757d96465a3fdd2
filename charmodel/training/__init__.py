"""Training, in dependency order. Importing it does not import TensorFlow: `model`, `distribute`
and `train` import it inside the functions that train.

    model       the Keras model: Embedding, (LSTM, Dropout) x layers, Dense
    distribute  where training runs: tf.distribute strategies
    train       train into a run folder, resumable, crash-safe
    recipe      a time budget's size, batch and learning rate, from speeds timed here
    jobs        the app's child processes: a training job, an atlas build, a timing
"""

from charmodel.training import model, distribute, train, recipe, jobs  # noqa: F401
