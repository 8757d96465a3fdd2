"""Ablation (issue 14): one cell, and a whole layer swept in batches, on the shipped Alice model.

    python benchmarks/ablation.py [--repeats 3] [--chars 2000]

Over the first --chars characters of weights/alice's validation text: one cell held at its mean
(median of --repeats), then every cell of layer 2 h swept (charmodel.analysis.ablate.sweep: batches of
GROUP ablations, layer 1 computed once for all rows; median of --repeats), against the same
ablations run one by one (timed for 8 cells and scaled to 512: the baseline). Then, once each,
layer 2 h with every core's BLAS thread (the CLI's setting), and layer 1 c (no layer below to
share) with one and with every core. Target: the 512-cell sweep in at most 60 s.

Nothing else may run on the machine meanwhile (two cores: see ../shared/NOTES.md).
"""

import argparse
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chars", type=int, default=2000)
    args = ap.parse_args()
    from charmodel.run.handle import Run
    from charmodel.analysis.ablate import GROUP, ablate, sweep
    from charmodel.engine import Engine

    run = ROOT / "weights" / "alice"
    engine = Engine.load(run, "best")
    text = Run.open(run).split()[1][: args.chars]
    single = [timed(lambda: ablate(engine, text, 1, "h", 42))[0] for _ in range(args.repeats)]
    print(f"one cell (layer 2 h 42): median {statistics.median(single):.2f} s of "
          f"{', '.join(f'{t:.2f}' for t in single)}", flush=True)
    one_by_one = timed(lambda: [ablate(engine, text, 1, "h", c) for c in range(8)])[0] / 8 * engine.units
    sweeps = []
    for _ in range(args.repeats):
        t, rows = timed(lambda: sweep(engine, text, 1, "h"))
        sweeps.append(t)
        print(f"  sweep layer 2 h: {t:.1f} s (largest loss: cell {rows[0]['cell']}, {rows[0]['delta']:+.4f} bpc)",
              flush=True)
    s = statistics.median(sweeps)
    print(f"SWEEP layer 2 h, {engine.units} cells x {len(text)} characters, batches of {GROUP}: median {s:.1f} s "
          f"(target <= 60 s); one by one: {one_by_one:.0f} s (8 timed, scaled); ratio {s / one_by_one:.2f}", flush=True)
    cores = len(os.sched_getaffinity(0))
    for layer, kind in ((1, "h"), (0, "c")):
        for threads, label in ((1, "one BLAS thread, as in the app"), (cores, f"{cores} BLAS threads, as the CLI runs it")):
            if (layer, threads) == (1, 1):
                continue  # measured above
            t, rows = timed(lambda: sweep(engine, text, layer, kind, blas_threads=threads))
            print(f"SWEEP layer {layer + 1} {kind} (once), {label}: {t:.1f} s (largest loss: cell {rows[0]['cell']}, "
                  f"{rows[0]['delta']:+.4f} bpc)", flush=True)


if __name__ == "__main__":
    main()
