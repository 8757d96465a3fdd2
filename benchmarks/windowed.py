"""Visualise on a windowed run: a passage's values, each from a zero state over its own window.

    python benchmarks/windowed.py [--sizes 512,256,128] [--window 100] [--chars 1000] [--repeats 5]
                                  [--threads 1,2] [--post-chars 40]

For each size, a run of the post's shape (2 LSTM layers, the scalar input, 44 characters, random
weights: the time does not depend on what the weights learned) with `window` set, and a passage of
`--chars` characters of Alice, lowercased. Timed, median of `--repeats`:

  ring      what the Visualise page computes: `engine.inspect` of the passage, every kind of every
            layer recorded, with the next-character guesses (the page's one cached call);
  post      the post's way, the baseline: a separate zero-state pass over the window ending at
            each character (`forward` of W characters, batch 1), timed over `--post-chars`
            characters and given per character (a whole passage would take minutes);
  stateful  the same inspect with no window: what a stateful run pays, for scale.

The target (issue 22): ring <= 2 s for 1,000 characters at W = 100.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_run(folder: Path, units: int, window: int, text: str) -> Path:
    import json

    import numpy as np

    from charmodel.run import folder as runfolder
    from charmodel.run.corpus import Vocab

    vocab = Vocab.from_text(text)
    V, rng = len(vocab), np.random.default_rng(0)
    w = {"embedding": (np.arange(V, dtype=np.float32) / V)[:, None]}  # the scalar input
    n_in = 1
    for l in range(2):
        w[f"lstm{l}_kernel"] = rng.normal(0, 1 / np.sqrt(n_in), (n_in, 4 * units))
        w[f"lstm{l}_recurrent"] = rng.normal(0, 1 / np.sqrt(units), (units, 4 * units))
        w[f"lstm{l}_bias"] = np.zeros(4 * units)
        n_in = units
    w["dense_kernel"] = rng.normal(0, 1 / np.sqrt(units), (units, V))
    w["dense_bias"] = np.zeros(V)
    folder.mkdir(parents=True)
    (folder / "corpus.txt").write_text(text, encoding="utf-8")
    config = {"format": 1, "architecture": {"layers": 2, "units": units, "dropout": 0.0, "embedding": 1,
                                            "vocab_size": V, "input": "scalar"},
              "training": {}, "corpus": {"path": "corpus.txt", "sha256": "", "collapse_spaces": False,
                                         "val_fraction": 0.1}, "vocab": vocab.chars, "window": window}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    runfolder.save_weights_npz(folder / "best.npz", w, dtype=np.float32)
    return folder


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="512,256,128")
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--chars", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", default="1,2", help="BLAS threads to time with (the app uses 1)")
    p.add_argument("--post-chars", type=int, default=40)
    args = p.parse_args()

    from charmodel import engine as eng
    from charmodel.run.corpus import clean, read_text
    from charmodel.engine import KINDS, Engine, inspect

    alice = clean(read_text(ROOT / "data" / "alice.txt"), collapse_spaces=False).lower()
    passage = alice[20000 : 20000 + args.chars]
    W = args.window
    print(f"{args.chars} characters, window {W}, median of {args.repeats}; post: over {args.post_chars} characters")
    print(f"{'size':>6} {'threads':>7} {'ring s':>8} {'post s/1000':>12} {'post/ring':>10} {'stateful s':>11} "
          f"{'ring/stateful':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for units in [int(u) for u in args.sizes.split(",")]:
            run = make_run(Path(tmp) / f"u{units}", units, W, alice[:60000])
            for threads in [int(t) for t in args.threads.split(",")]:
                eng.set_threads(threads)
                windowed = Engine.load(run, "best")
                stateful = windowed.stateful()
                ids = windowed.vocab.encode(passage)
                inspect(windowed, passage[:50], record=KINDS)  # warm up
                ring = median_time(lambda: inspect(windowed, passage, record=KINDS), args.repeats)
                state = median_time(lambda: inspect(stateful, passage, record=KINDS), args.repeats)

                def post():
                    for t in range(W, W + args.post_chars):
                        stateful.forward(ids[None, t - W + 1 : t + 1], record=KINDS)

                per_char = median_time(post, max(1, args.repeats // 2)) / args.post_chars
                print(f"{'2x' + str(units):>6} {threads:>7} {ring:8.2f} {per_char * 1000:12.1f} "
                      f"{per_char * args.chars / ring:10.1f} {state:11.3f} {ring / state:14.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
