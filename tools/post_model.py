"""Build, train briefly and save a model of the blog post's shape, the way the post built it.

    python tools/post_model.py --text data/alice.txt --out post

writes post.keras, post.h5 (legacy HDF5, as Keras 2 users saved) and post.txt (the text as the
model saw it). The shape is the post's: each character's index divided by the vocabulary size, one
number per step, windows of --window characters from a zero state; LSTM, Dropout, LSTM (last step
only), Dropout, Dense softmax. The post trained 512 units for days; the defaults here train a small
one for a minute, enough to import and explore. Needs TensorFlow (training does).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", default="data/alice.txt", help="the text to learn (default: data/alice.txt)")
    p.add_argument("--out", required=True, help="the files' name without suffix: OUT.keras, OUT.h5, OUT.txt")
    p.add_argument("--units", type=int, default=64, help="units per LSTM (the post: 512; default 64)")
    p.add_argument("--window", type=int, default=100, help="characters per window (the post: 100)")
    p.add_argument("--chars", type=int, default=40000, help="characters of the text to train on (default 40,000)")
    p.add_argument("--stride", type=int, default=7, help="a window starts every STRIDE characters (the post: 1)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import keras
    import numpy as np

    with open(args.text, encoding="utf-8") as f:  # as the post read it: text mode, then lowercased
        text = f.read().lower()[: args.chars]
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text])
    starts = np.arange(0, len(ids) - args.window, args.stride)
    x = (np.stack([ids[s : s + args.window] for s in starts]) / len(chars)).astype("float32")[..., None]
    y = ids[starts + args.window]
    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input(shape=(args.window, 1)),
        keras.layers.LSTM(args.units, return_sequences=True), keras.layers.Dropout(0.2),
        keras.layers.LSTM(args.units), keras.layers.Dropout(0.2),
        keras.layers.Dense(len(chars), activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.fit(x, y, epochs=args.epochs, batch_size=128, verbose=2)
    model.save(f"{args.out}.keras")
    model.save(f"{args.out}.h5")
    with open(f"{args.out}.txt", "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}.keras, {args.out}.h5 and {args.out}.txt ({len(chars)} characters, {len(starts)} windows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
