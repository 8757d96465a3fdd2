"""The LSTM step written once (issue 28): generation and the stateful and windowed passes, this
checkout against a baseline commit, side by side.

    python benchmarks/one_step.py [--baseline ceef2b2] [--repeats 7] [--chars 2000] [--window-chars 300]

The baseline is checked out into a temporary git worktree. Each repeat runs one child process per
checkout, one after the other, which one first alternating (so both see the same machine), each timing, on the shipped Alice run (2 x 512)
with one BLAS thread: generate() of --chars characters at batch 1; a stateful forward() over
--chars characters recording h; a windowed forward() (window 100) over --window-chars characters.
The snippet imports charmodel.engine.Engine, and generate from where each layout keeps it.
Prints the medians in characters per second and the ratio this / baseline.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys, time
import numpy as np
from charmodel.engine import Engine, set_threads
try:
    from charmodel.engine.sampling import generate
except ImportError:  # a layout before charmodel/engine/ (the flat one)
    from charmodel.sample import generate
set_threads(1)
chars, window_chars = int(sys.argv[1]), int(sys.argv[2])
engine = Engine.load("weights/alice", "best")
text = open("weights/alice/corpus.txt", encoding="utf-8").read().replace("\r\n", "\n")[20000:20000 + chars]
ids = engine.vocab.encode("".join(c for c in text if c in engine.vocab.chars), "text")[None, :]
out = {}
t = time.perf_counter(); generate(engine, "Alice ", chars, 0.8, 7); out["generate"] = chars / (time.perf_counter() - t)
t = time.perf_counter(); engine.forward(ids, record=("h",)); out["stateful"] = ids.shape[1] / (time.perf_counter() - t)
windowed = engine.with_window(100)
t = time.perf_counter(); windowed.forward(ids[:, :window_chars], record=("h",))
out["windowed"] = window_chars / (time.perf_counter() - t)
print(json.dumps(out))
"""


def run_probe(checkout: Path, args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout), "CHARMODEL_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(args.chars), str(args.window_chars)], cwd=checkout, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--baseline", default="ceef2b2", help="the commit to compare with (default: before the sub-packages)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--chars", type=int, default=2000)
    p.add_argument("--window-chars", type=int, default=300)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(base), args.baseline],
                       check=True, capture_output=True)
        try:
            runs = {"this": [], "baseline": []}
            for n in range(args.repeats):  # which goes first alternates too: the second run of a pair was faster
                pair = [("baseline", base), ("this", ROOT)]
                for name, checkout in (pair if n % 2 == 0 else pair[::-1]):
                    runs[name].append(run_probe(checkout, args))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    print(f"medians of {args.repeats} alternating runs, characters per second (1 BLAS thread, weights/alice 2x512):")
    for what in ("generate", "stateful", "windowed"):
        this = statistics.median(r[what] for r in runs["this"])
        baseline = statistics.median(r[what] for r in runs["baseline"])
        print(f"  {what:9s} this {this:9,.0f}   baseline {baseline:9,.0f}   ratio {this / baseline:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
