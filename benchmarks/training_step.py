"""One training step, charmodel's against a plain Keras step of the same shape, in the same run.

    python benchmarks/training_step.py [--shapes 2x256,2x512] [--batches 64,128] [--rounds 3] [--steps 6]

For each shape, batch and variant: a fresh model (Embedding 64 -> (LSTM -> Dropout) x layers ->
Dense), compiled with Adam, then one untimed `train_on_batch` and `--steps` timed ones on random
characters (speed does not depend on the text); each round builds every variant again, in turn,
so a slow minute of a shared machine falls on all of them. Reports the median chars/s over the
rounds and its ratio to the plain Keras step at batch 64 (today's recipe before issue 37).

Variants:
  keras       keras.layers.LSTM, Keras' own loop and TensorFlow's gradient of it (the baseline)
  keras-xla   the same, compiled with XLA (`jit_compile=True`, Keras 3's option)
  charmodel   charmodel.training.model.build: the fused loop of charmodel/training/fused.py
Run nothing else meanwhile (two cores: BLAS threads collide).
"""

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VOCAB, SEQ_LEN, EMBEDDING, DROPOUT = 80, 100, 64, 0.1


def build(variant: str, layers: int, units: int):
    import keras

    from charmodel.training import model as kmodel

    keras.utils.set_random_seed(0)
    if variant == "charmodel":
        model = kmodel.build(VOCAB, layers, units, DROPOUT, EMBEDDING)
    else:
        inputs = keras.Input(shape=(None,), dtype="int32")
        x = keras.layers.Embedding(VOCAB, EMBEDDING)(inputs)
        for _ in range(layers):
            x = keras.layers.Dropout(DROPOUT)(keras.layers.LSTM(units, return_sequences=True)(x))
        model = keras.Model(inputs, keras.layers.Dense(VOCAB)(x))
    model.compile(optimizer=keras.optimizers.Adam(0.002), jit_compile=variant == "keras-xla",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def chars_per_s(model, batch: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    x, y = (rng.integers(VOCAB, size=(batch, SEQ_LEN), dtype=np.int32) for _ in range(2))
    model.train_on_batch(x, y)  # builds the graph
    seconds = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        seconds.append(time.perf_counter() - t0)
    return x.size / float(np.median(seconds))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default="2x256,2x512")
    p.add_argument("--batches", default="64,128")
    p.add_argument("--variants", default="keras,keras-xla,charmodel")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=6)
    args = p.parse_args()
    import keras

    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    variants = args.variants.split(",")
    speeds: dict[tuple, list[float]] = {}
    for r in range(args.rounds):
        for layers, units in shapes:
            for batch in batches:
                for variant in variants:
                    cps = chars_per_s(build(variant, layers, units), batch, args.steps)
                    speeds.setdefault((layers, units, batch, variant), []).append(cps)
                    print(f"round {r + 1}: {layers}x{units} batch {batch} {variant}: {cps:,.0f} chars/s", flush=True)
                    keras.backend.clear_session()
    print("\nshape    batch  variant     chars/s (median)  x keras at batch 64")
    for (layers, units, batch, variant), runs in speeds.items():
        base = float(np.median(speeds.get((layers, units, 64, "keras"), [np.nan])))
        med = float(np.median(runs))
        print(f"{layers}x{units:<5}  {batch:>5}  {variant:<10}  {med:>14,.0f}  {med / base:>8.2f}")


if __name__ == "__main__":
    main()
