"""Ranking every cell against a hypothesis, cold, and how far batched states are from exact ones.

    python benchmarks/cells.py [--run weights/alice] [--repeats 3]

Each repeat starts a fresh Python process that loads the run and ranks all cells of every layer
(h and c) over the validation text for "inside a quotation": states included, nothing cached.
Then, in this process, batched states (independent pieces with a warm-up prefix) are compared
with the exact sequential pass, and both rankings' best cells are printed.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

COLD = """
import resource, time, sys
import numpy as np
t0 = time.perf_counter()
from charmodel.run import folder as runfolder
from charmodel.run.handle import Run
from charmodel.engine import Engine
from charmodel.analysis.cells import batched_activations, feature, rank_cells
run = sys.argv[1]
engine = Engine.load(run, runfolder.default_checkpoint(run))
text = Run.open(run).split()[1]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
states = batched_activations(engine, text, dtype=np.float16)  # as the app keeps them
peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
kept_mb = sum(v.nbytes for v in states.values()) / 2**20
t1 = time.perf_counter()
ranked = rank_cells(states, feature("quote", text))
t2 = time.perf_counter()
print(t2 - t0, t1 - t0, t2 - t1, len(ranked), len(text), peak_mb, kept_mb)
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="weights/alice")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    totals, states_s, rank_s = [], [], []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", COLD, args.run], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
        total, s, r, n_cells, n_chars = float(out[0]), float(out[1]), float(out[2]), int(out[3]), int(out[4])
        peak_mb, kept_mb = float(out[5]), float(out[6])
        totals.append(total), states_s.append(s), rank_s.append(r)
    print(f"ranked {n_cells} cells (layers x h,c x units) over {n_chars} validation characters, cold:")
    print(f"  total median {statistics.median(totals):.2f} s (runs {', '.join(f'{t:.2f}' for t in totals)}; "
          f"target <= 10 s)")
    print(f"  of which states {statistics.median(states_s):.2f} s, ranking {statistics.median(rank_s):.2f} s")
    print(f"  memory of the states' pass (last run): peak {peak_mb:.0f} MB above its start, {kept_mb:.0f} MB kept "
          "(float16, as the app keeps them)")

    from charmodel.run import folder as runfolder

    from charmodel.run.handle import Run
    from charmodel.analysis.cells import batched_activations, feature, rank_cells
    from charmodel.engine import Engine, inspect

    engine = Engine.load(args.run, runfolder.default_checkpoint(args.run))
    text = Run.open(args.run).split()[1]
    t0 = time.perf_counter()
    exact = inspect(engine, text, record=("h", "c")).activations
    exact_s = time.perf_counter() - t0
    batched = batched_activations(engine, text)
    print(f"exact sequential pass (inspect): {exact_s:.2f} s")
    for key in sorted(exact):
        d = np.abs(batched[key] - exact[key])
        print(f"  layer {key[0] + 1} {key[1]}: batched - exact: max {d.max():.2e}, 99.9th pct "
              f"{np.percentile(d, 99.9):.2e}, mean {d.mean():.2e}")
    for name in ("quote", "word_start", "line_position"):
        signal = feature(name, text)
        a, b = rank_cells(exact, signal, 1)[0], rank_cells(batched, signal, 1)[0]
        print(f"  best for {name}: exact L{a['layer']} {a['kind']} {a['cell']} {a['score']:.4f}; "
              f"batched L{b['layer']} {b['kind']} {b['cell']} {b['score']:.4f}")


if __name__ == "__main__":
    main()
