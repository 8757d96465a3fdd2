"""The engine under load: one forward pass alone, then two at once (two processes, two threads).

    python benchmarks/load.py [--run weights/alice] [--chars 2000] [--repeats 7]

A forward pass is the stateful pass over the first `--chars` characters of the run's validation
text (`Engine.forward`, batch 1, h recorded). Each setting is timed with the engine as it is
(building it limits BLAS to one thread) and with that limit switched off (NumPy's default BLAS
threads, the baseline), in the same run:

  alone        one pass at a time, `--repeats` times;
  2 processes  two fresh processes start together and each times `--repeats` passes;
  2 threads    two threads of this process, as two app sessions share the server.

Each figure is the median over its passes; the ratio is that median over the same mode's median
alone. The target: two at once take at most 1.3 times the time alone.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup(run: str, chars: int):
    from charmodel.run import folder as runfolder
    from charmodel.run.handle import Run
    from charmodel.engine import Engine

    engine = Engine.load(run, runfolder.default_checkpoint(run))
    text = Run.open(run).split()[1][:chars]
    return engine, engine.vocab.encode(text, "text")[None, :]


def unpinned():
    """Switch the engine's BLAS limit off (the baseline): NumPy's default threads, one per core."""
    from threadpoolctl import threadpool_limits

    from charmodel import engine as eng

    eng.pin_blas = lambda: None
    threadpool_limits(limits=os.cpu_count(), user_api="blas")


def passes(run: str, chars: int, repeats: int, pinned: bool, start_at: float = 0.0) -> list[float]:
    """Seconds of each of `repeats` forward passes, after waiting until `start_at` (time.time())."""
    if not pinned:
        unpinned()
    engine, ids = setup(run, chars)
    engine.forward(ids[:, :50])  # warm up
    time.sleep(max(0.0, start_at - time.time()))
    return alone(engine, ids, repeats)


def two_processes(run, chars, repeats, mode) -> list[float]:
    start_at = time.time() + 8  # both load their weights, then start together
    procs = [subprocess.Popen([sys.executable, __file__, "--child", run, str(chars), str(repeats), str(start_at), mode],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    times = []
    for p in procs:
        out, _ = p.communicate()
        times += json.loads(out)
    return times


def two_threads(engine, ids, repeats) -> list[float]:
    times, barrier = [], threading.Barrier(2)

    def work():
        barrier.wait()
        times.extend(alone(engine, ids, repeats))  # list.extend is atomic under the GIL

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def alone(engine, ids, repeats) -> list[float]:
    """Seconds of each of `repeats` forward passes, one after the other."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        engine.forward(ids)
        out.append(time.perf_counter() - t0)
    return out


def main():
    if sys.argv[1:2] == ["--child"]:  # one of the two processes of two_processes
        run, chars, repeats, start_at, mode = sys.argv[2:7]
        print(json.dumps(passes(run, int(chars), int(repeats), mode == "pinned", float(start_at))))
        return
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="weights/alice")
    p.add_argument("--chars", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()

    from charmodel import engine as eng

    results = {}
    pin = eng.pin_blas
    for mode in ("pinned", "default threads"):
        if mode == "default threads":
            unpinned()
        engine, ids = setup(args.run, args.chars)
        engine.forward(ids[:, :50])
        a = statistics.median(alone(engine, ids, args.repeats))
        procs = statistics.median(two_processes(args.run, args.chars, args.repeats,
                                                "pinned" if mode == "pinned" else "default"))
        thr = statistics.median(two_threads(engine, ids, args.repeats))
        results[mode] = (a, procs, thr)
    eng.pin_blas = pin

    print(f"forward pass over {args.chars} characters of {args.run}'s validation text, "
          f"median of {args.repeats} passes per process or thread:")
    print(f"{'':18s}{'alone':>10s}{'2 processes':>14s}{'ratio':>8s}{'2 threads':>12s}{'ratio':>8s}")
    for mode, (a, procs, thr) in results.items():
        print(f"{mode:18s}{a:9.3f}s{procs:13.3f}s{procs / a:7.2f}x{thr:11.3f}s{thr / a:7.2f}x")
    print("target: each ratio of the pinned engine at most 1.30x")


if __name__ == "__main__":
    main()
