"""The character n-gram baseline (charmodel.engine.ngram): its bits per character and its speed.

    python benchmarks/ngram.py [--run weights/alice] [--orders 3,4,5] [--timed-order 5] [--repeats 3]
                               [--train-chars N]

On the run's own split (`Run.open(run).split()`), each model counted on the training text and read
after its tail: bits per character on the first 2,000 validation characters and on the whole
validation split. Then fitting and scoring the `--timed-order` model, each timed separately,
median of `--repeats`. --train-chars keeps the first N training characters (for a scale check on a
large run, such as weights/python).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charmodel.engine.ngram import NGram  # noqa: E402
from charmodel.run.handle import Run  # noqa: E402

HEAD_CHARS = 2000  # the head of the validation split, scored as well as the whole split


def median_s(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "weights" / "alice"))
    p.add_argument("--orders", default="3,4,5")
    p.add_argument("--timed-order", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-chars", type=int, default=None)
    args = p.parse_args()

    train, val = Run.open(args.run).split()
    train = train[: args.train_chars] if args.train_chars else train
    print(f"{args.run}: {len(train):,} training characters, {len(val):,} validation")
    print(f"{'order':>5}  {'bpc, first ' + format(HEAD_CHARS, ',') + ' val':>20}  {'bpc, whole val':>14}")
    for order in (int(o) for o in args.orders.split(",")):
        model = NGram.fit(train, order)
        print(f"{order:>5}  {model.bpc(val[:HEAD_CHARS], train):>20.3f}  {model.bpc(val, train):>14.3f}")

    fit_s, model = median_s(lambda: NGram.fit(train, args.timed_order), args.repeats)
    score_s, bpc = median_s(lambda: model.bpc(val, train), args.repeats)
    print(f"order {args.timed_order}: fit {fit_s:.3f} s, score {score_s:.3f} s ({len(val) / score_s:,.0f} chars/s), "
          f"median of {args.repeats}; {bpc:.3f} bpc")


if __name__ == "__main__":
    main()
