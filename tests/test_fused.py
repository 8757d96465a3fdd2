"""The fused LSTM loop (charmodel/training/fused.py) against Keras' own LSTM: the same outputs,
the same final state, the same gradients for the input, the starting state and every weight,
and the same carried state across two batches of a stateful model."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import tensorflow as tf  # noqa: E402

from charmodel.training import fused  # noqa: E402
from charmodel.training import model as kmodel  # noqa: E402

TOLERANCE = 1e-5  # float32, the same products in another order


def pair(units=6, features=5):
    """Keras' LSTM and the fused one, with the same random (not initial) weights."""
    ref = keras.layers.LSTM(units, return_sequences=True, return_state=True)
    new = fused.LSTM(units, return_sequences=True, return_state=True)
    ref.build((None, None, features))
    new.build((None, None, features))
    rng = np.random.default_rng(3)
    weights = [rng.normal(scale=0.6, size=w.shape).astype("float32") for w in ref.get_weights()]
    ref.set_weights(weights)
    new.set_weights(weights)
    return ref, new


def grads(layer, x, h0, c0):
    """Outputs, states and the gradients of a loss that reads all of them."""
    with tf.GradientTape() as tape:
        tape.watch([x, h0, c0])
        out, h, c = layer(x, initial_state=[h0, c0])
        loss = tf.reduce_sum(out * tf.cos(out)) + tf.reduce_sum(h * 0.3) + tf.reduce_sum(c * c)
    return [out, h, c, *tape.gradient(loss, [x, h0, c0, *layer.trainable_variables])]


def test_outputs_state_and_every_gradient_match_keras():
    ref, new = pair()
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 11, 5)).astype("float32"))
    h0, c0 = (tf.constant(rng.normal(size=(3, 6)).astype("float32")) for _ in range(2))
    names = ["outputs", "h_T", "c_T", "d input", "d h0", "d c0", "d kernel", "d recurrent kernel", "d bias"]
    for name, a, b in zip(names, grads(ref, x, h0, c0), grads(new, x, h0, c0)):
        assert np.abs(np.asarray(a)).max() > 1e-3, name  # something to compare
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=TOLERANCE, rtol=TOLERANCE, err_msg=name)


def test_the_fused_loop_is_the_one_that_runs_on_a_cpu(monkeypatch):
    """Guard against the comparison above passing because Keras' loop ran both times."""
    calls = []
    real = fused.lstm_sequence
    monkeypatch.setattr(fused, "lstm_sequence", lambda *a: calls.append(1) or real(*a))
    _, new = pair()
    new(tf.zeros((2, 4, 5)))
    assert calls == [1]


def test_stateful_model_carries_the_same_state_across_batches():
    """model.build's stateful model against the same model on Keras' LSTM, two batches in a row."""
    keras.utils.set_random_seed(0)
    new = kmodel.build(12, layers=2, units=8, dropout=0.0, embedding=4, stateful_batch=2)
    inputs = keras.Input(batch_shape=(2, None), dtype="int32")
    x = keras.layers.Embedding(12, 4)(inputs)
    for _ in range(2):
        x = keras.layers.LSTM(8, return_sequences=True, stateful=True)(x)
    ref = keras.Model(inputs, keras.layers.Dense(12)(x))
    ref.set_weights(new.get_weights())
    rng = np.random.default_rng(1)
    for _ in range(2):  # the second batch starts from the first one's last state
        batch = rng.integers(12, size=(2, 7))
        np.testing.assert_allclose(np.asarray(new(batch)), np.asarray(ref(batch)), atol=TOLERANCE)


def test_a_model_compiled_with_xla_trains_through_the_fused_loop_alike():
    """--jit compiles the whole step, the fused loop and its hand-written gradient included."""
    rng = np.random.default_rng(2)
    x, y = (rng.integers(12, size=(4, 9)).astype("int32") for _ in range(2))
    losses = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = kmodel.build(12, layers=1, units=8, dropout=0.0, embedding=4)
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        losses.append([float(model.train_on_batch(x, y)) for _ in range(3)])  # the 2nd and 3rd follow a step
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
