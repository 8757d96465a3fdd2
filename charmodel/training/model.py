"""The Keras model: Embedding -> (LSTM -> Dropout) x layers -> Dense logits over the vocabulary.

The post used two blocks of (LSTM 512 + Dropout) and a Dense softmax, fed with a normalised
integer per character; here the input is an Embedding. The LSTM keeps Keras' defaults
(tanh, sigmoid, no recurrent dropout, no unroll), so on a GPU Keras picks the cuDNN kernel itself;
on a CPU its loop is fused.py's (the same layer and weights, a faster backward pass).
Imports TensorFlow: only training and the equivalence tests use this module.
"""

import numpy as np

from charmodel.engine import weight_names


def build(vocab_size: int, layers: int = 2, units: int = 512, dropout: float = 0.2, embedding: int = 64,
          stateful_batch: int | None = None, recurrent_dropout: float = 0.0, portable: bool = False):
    """The model; with `stateful_batch`, LSTM state carries over from one batch to the next
    (fixed batch size, Keras `stateful=True`) until `reset_states` is called. Dropout and
    `recurrent_dropout` act in training only; the weights are the same either way.
    portable: Keras' own LSTM layer rather than fused.LSTM (the same weights), for a model saved
    as a .keras file that plain Keras opens."""
    import keras

    from charmodel.training.fused import LSTM

    if portable:
        LSTM = keras.layers.LSTM  # noqa: N806

    if stateful_batch:
        inputs = keras.Input(batch_shape=(stateful_batch, None), dtype="int32", name="chars")
    else:
        inputs = keras.Input(shape=(None,), dtype="int32", name="chars")  # (B, T)
    x = keras.layers.Embedding(vocab_size, embedding, name="embedding")(inputs)
    for l in range(layers):
        x = LSTM(units, return_sequences=True, stateful=bool(stateful_batch),
                              recurrent_dropout=recurrent_dropout, name=f"lstm{l}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{l}")(x)
    logits = keras.layers.Dense(vocab_size, name="dense")(x)  # (B, T, vocab)
    return keras.Model(inputs, logits, name="charmodel")


def reset_states(model) -> None:
    """Zero the carried state of every stateful LSTM layer (no-op for the stateless model)."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


def export_weights(model) -> dict:
    """Keras model -> the engine's named arrays."""
    out = {"embedding": model.get_layer("embedding").get_weights()[0]}
    l = 0
    while True:
        try:
            layer = model.get_layer(f"lstm{l}")
        except ValueError:
            break
        k, r, b = layer.get_weights()
        out[f"lstm{l}_kernel"], out[f"lstm{l}_recurrent"], out[f"lstm{l}_bias"] = k, r, b
        l += 1
    out["dense_kernel"], out["dense_bias"] = model.get_layer("dense").get_weights()
    assert list(out) == weight_names(l)
    return {k: np.asarray(v) for k, v in out.items()}


def import_weights(model, weights: dict) -> None:
    """The engine's named arrays -> a Keras model built with `build` (plain arrays, no code)."""
    model.get_layer("embedding").set_weights([weights["embedding"]])
    l = 0
    while f"lstm{l}_kernel" in weights:
        model.get_layer(f"lstm{l}").set_weights(
            [weights[f"lstm{l}_kernel"], weights[f"lstm{l}_recurrent"], weights[f"lstm{l}_bias"]]
        )
        l += 1
    model.get_layer("dense").set_weights([weights["dense_kernel"], weights["dense_bias"]])
