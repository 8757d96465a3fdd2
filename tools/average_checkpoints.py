"""Average several checkpoints of one run into one (stochastic weight averaging, done afterwards).

    python tools/average_checkpoints.py --out weights/alice/best.npz A.npz B.npz C.npz ...

All inputs must come from the same training run (same architecture and vocabulary); the mean of
weights from the last, low-learning-rate epochs of one trajectory usually scores a little better
than any single one of them. Prints the stateful validation bits per character of every input and
of the average when --run is given.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charmodel import run as runfs  # noqa: E402
from charmodel.engine import Engine, bits_per_char  # noqa: E402


def average(paths) -> dict:
    arrays = [runfs.load_weights_npz(p) for p in paths]
    keys = arrays[0].keys()
    if any(a.keys() != keys or any(a[k].shape != arrays[0][k].shape for k in keys) for a in arrays):
        sys.exit("error: the checkpoints do not share one architecture.")
    return {k: np.mean([a[k] for a in arrays], axis=0) for k in keys}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("inputs", nargs="+")
    p.add_argument("--out", help="where to write the average (not written if omitted)")
    p.add_argument("--run", help="score inputs and average on this run's validation text")
    args = p.parse_args()
    mean = average(args.inputs)
    if args.run:
        vocab = runfs.vocab_of(runfs.read_config(args.run))
        val = runfs.split_text(args.run)[1]
        for path in args.inputs:
            print(f"{path}: {bits_per_char(Engine(runfs.load_weights_npz(path), vocab), val):.4f}")
        print(f"average of {len(args.inputs)}: {bits_per_char(Engine(mean, vocab), val):.4f}")
    if args.out:
        runfs.save_weights_npz(args.out, mean)


if __name__ == "__main__":
    main()
