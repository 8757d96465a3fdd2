"""Training speed: sequence-to-sequence chunks (charmodel) against the post's stride-1 windows.

    python benchmarks/training.py [--text data/alice.txt] [--layers 2] [--units 512] [--budget-s 600]

Both recipes train the same architecture on the same machine, one after the other, each for at
most --budget-s seconds of training, and report:
  * targets/s  next-character predictions trained per second;
  * chars/s    input characters processed per second (for the post, 100 per window);
  * time to reach validation 3.0 bits per character, scored the same way for both: the
    character after each 100-character validation window (windows every 10 characters).
The post's recipe: every window of 100 consecutive characters predicts the one character after
it, windows start at every position (stride 1), shuffled, batch 64 here.
"""

import argparse
import math
import time

import numpy as np


from charmodel.run.corpus import Vocab, clean, read_text, split
from charmodel.training.train import epoch_batches


def build(vocab_size, layers, units, last_only: bool):
    """(model to train, model to evaluate): evaluation always scores the character after a window."""
    import keras

    from charmodel.training import model as kmodel

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    m = kmodel.build(vocab_size, layers, units, dropout=0.2, embedding=64)
    last = keras.Model(m.input, keras.layers.Lambda(lambda t: t[:, -1])(m.output))  # shares m's weights
    last.compile(loss=loss)
    if last_only:  # the post's model predicts one character per window
        m = last
    m.compile(optimizer=keras.optimizers.Adam(0.002), loss=loss)
    return m, last


def run_recipe(name, models, next_batch, val, budget_s, target_bpc=3.0, eval_every_s=60):
    """Train batch by batch until the budget runs out; check validation every eval_every_s."""
    model, scorer = models
    xv, yv = val
    trained_s, targets, chars, reached = 0.0, 0, 0, None
    next_eval = eval_every_s
    while trained_s < budget_s:
        x, y = next_batch()
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        trained_s += time.perf_counter() - t0
        targets += y.size
        chars += x.size
        if trained_s >= next_eval or trained_s >= budget_s:
            next_eval += eval_every_s
            bpc = scorer.evaluate(xv, yv, batch_size=64, verbose=0) / math.log(2)
            print(f"  {name}: {trained_s:6.0f} s trained, val {bpc:.3f} bpc", flush=True)
            if reached is None and bpc <= target_bpc:
                reached = trained_s
                break
    return dict(targets_per_s=targets / trained_s, chars_per_s=chars / trained_s, reached_s=reached,
                trained_s=trained_s)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--text", default="data/alice.txt")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--units", type=int, default=512)
    p.add_argument("--budget-s", type=float, default=600)
    p.add_argument("--recipes", default="seq2seq,post", help="which recipes to run, comma-separated")
    args = p.parse_args()
    recipes = args.recipes.split(",")

    text = clean(read_text(args.text))
    vocab = Vocab.from_text(text)
    train_text, val_text = split(text)
    ids = vocab.encode(train_text)
    # validation: windows of 100 every 10 characters, scored on the character after the window
    val_ids = vocab.encode(val_text)
    vs = np.arange(0, len(val_ids) - 100, 10)
    xv, yv = val_ids[vs[:, None] + np.arange(100)], val_ids[vs + 100]

    # charmodel: seq-to-seq chunks of 100, batch 64, a new offset and order every epoch
    state = {"epoch": 0, "i": 0, "x": None}

    def seq_batch():
        if state["x"] is None or state["i"] >= len(state["x"]):
            state["x"], state["y"] = epoch_batches(ids, 100, 64, 0, state["epoch"])
            state["epoch"] += 1
            state["i"] = 0
        i = state["i"]
        state["i"] += 64
        return state["x"][i:i + 64], state["y"][i:i + 64]

    # the post: stride-1 windows of 100, one target each, shuffled
    rng = np.random.default_rng(0)
    starts = rng.permutation(len(ids) - 100)
    pos = {"i": 0}

    def window_batch():
        s = starts[pos["i"]:pos["i"] + 64]
        pos["i"] = (pos["i"] + 64) % (len(starts) - 64)
        x = ids[s[:, None] + np.arange(100)]
        return x, ids[s + 100]

    results = {}
    if "seq2seq" in recipes:
        results["seq2seq"] = run_recipe("seq2seq", build(len(vocab), args.layers, args.units, False), seq_batch,
                                        (xv, yv), args.budget_s)
    if "post" in recipes:
        results["post"] = run_recipe("post", build(len(vocab), args.layers, args.units, True), window_batch,
                                     (xv, yv), args.budget_s)

    print(f"\n{args.layers}x{args.units}, budget {args.budget_s:.0f} s of training each")
    print(f"{'recipe':<9}{'targets/s':>11}{'chars/s':>10}{'to 3.0 bpc':>12}")
    for name, r in results.items():
        reached = f"{r['reached_s']:.0f} s" if r["reached_s"] else f"> {r['trained_s']:.0f} s"
        print(f"{name:<9}{r['targets_per_s']:>11.0f}{r['chars_per_s']:>10.0f}{reached:>12}")
    if len(results) == 2:
        a, b = results["seq2seq"], results["post"]
        print(f"targets/s ratio seq2seq / post: {a['targets_per_s'] / b['targets_per_s']:.0f}x")


if __name__ == "__main__":
    main()
