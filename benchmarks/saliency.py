"""Input attribution (issue 14): the three methods' time on the 2 x 512 Alice model, and the
latched-cell sanity check.

    python benchmarks/saliency.py [--repeats 5] [--threads 1]

One attribution over a 200-character window ending at character 1,200 of weights/alice's
validation text, to layer 2 c cell 492 (the quotation cell), per method: median of --repeats
with and without computing the carry before the window (from the 1,000 characters before it;
the app and a caller that walks a text can reuse it). The
baseline for occlusion is the same replacements run one pass over the window at a time, from the
same carry (timed for 10, scaled to 200). Targets: occlusion at most 500 ms, gradient x input at most 200 ms.

Then the floor under occlusion's time: the multiply-adds of its matrix products over this
machine's measured rate for the same product shape. Then integrated gradients' completeness error at 32, 64 and 128 steps (one run each), and the
issue's check: the opening quotation mark's rank among the 200 characters for "better"
in "Alice looked at the Hatter ... `I think you might do something better with the time".
"""

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads (the engine's own limit is 1; more shows what a quiet machine's cores add)")
    args = ap.parse_args()
    from charmodel.run.handle import Run
    from charmodel.analysis import saliency
    from charmodel.engine import Engine

    run = ROOT / "weights" / "alice"
    engine = Engine.load(run, "best")
    train, val = Run.open(run).split()
    text, position = val[:1300], 1200
    target = {"layer": 1, "kind": "c", "cell": 492}
    ids = engine.vocab.encode(text)
    carry = saliency.carry_before(engine, ids, position - saliency.WINDOW + 1)
    if args.threads != 1:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads, user_api="blas")  # after the Engine: it set the process to 1
        print(f"BLAS threads: {args.threads}", flush=True)
    for method in saliency.METHODS:
        for given, label in ((None, "with the carry before the window"), (carry, "the window alone (carry given)")):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                result = saliency.attribute(engine, text, position, target, method, corpus=train, carry=given)
                times.append(time.perf_counter() - t0)
            extra = f", completeness error {result['completeness']:+.4f} of a change of " \
                    f"{result['target'] - result['baseline']:+.4f}" if "completeness" in result else ""
            print(f"{method}, {label}: median {statistics.median(times) * 1000:.0f} ms of "
                  f"{', '.join(f'{t * 1000:.0f}' for t in times)}{extra}", flush=True)
    lower = {"layer": 0, "kind": "c", "cell": 434}  # the after-quotation cell, in layer 1
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        saliency.attribute(engine, text, position, lower, "occlusion", corpus=train, carry=carry)
        times.append(time.perf_counter() - t0)
    print(f"occlusion to layer 1 c 434, the window alone (carry given; the pass stops after layer 1, where "
          f"it used to run every layer): median {statistics.median(times) * 1000:.0f} ms of "
          f"{', '.join(f'{t * 1000:.0f}' for t in times)}", flush=True)
    for steps in (32, 64, 128):  # how many points integrated gradients need on this latched cell
        r = saliency.attribute(engine, text, position, target, "ig", steps=steps, corpus=train, carry=carry)
        print(f"ig with {steps} steps: completeness error {r['completeness']:+.4f} of a change of "
              f"{r['target'] - r['baseline']:+.4f}", flush=True)
    neutral = engine.vocab.index[saliency.neutral_char(engine, train)]
    start = position - saliency.WINDOW + 1
    t0 = time.perf_counter()
    for s in range(position - 9, position + 1):  # one replacement per pass over the window, from the same carry
        changed = ids[start : position + 1].copy()
        changed[s - start] = neutral
        engine.forward(changed[None], carry, record=("c",), layers=[1])
    naive = (time.perf_counter() - t0) / 10 * saliency.WINDOW
    print(f"occlusion, one replacement per pass over the window (carry given; 10 timed, scaled to "
          f"{saliency.WINDOW}): {naive * 1000:.0f} ms", flush=True)
    floor(engine, target, args.repeats)
    carry_return(engine, ids, position, neutral, carry)
    check = "Alice looked at the Hatter for some time, and then `I think you might do something better with the time"
    for method in saliency.METHODS:
        r = saliency.attribute(engine, check, check.index("better"), target, method, corpus=train)
        j = check.index("`") - r["start"]
        print(f"CHECK {method}: the opening mark ranks {saliency.rank_of(r['scores'], j)} of {len(r['scores'])} "
              f"(score {r['scores'][j]:+.2f}; largest other |score| "
              f"{max(abs(s) for k, s in enumerate(r['scores']) if k != j):.2f})", flush=True)


def floor(engine, target: dict, repeats: int) -> None:
    """The least time occlusion's matrix products can take here: the multiply-adds its batched pass
    runs (rows joining at their block, as `saliency.occlusion` does) over this machine's measured
    rate for the same product shape, with the BLAS threads this process has."""
    import numpy as np

    from charmodel.analysis import saliency

    U, W, flops, rows = engine.units, saliency.WINDOW, 0, []
    for a in range(0, W, saliency.BLOCK):
        b = min(a + saliency.BLOCK, W)
        active = b + 1
        rows.append(active)
        for layer in range(target["layer"] + 1):  # the recurrent product, and above layer 1 the input one
            flops += active * (b - a) * 2 * U * 4 * U * (1 if layer == 0 else 2)
    h = np.random.default_rng(0).standard_normal((int(np.mean(rows)), U)).astype(np.float32)
    z = np.empty((len(h), 4 * U), np.float32)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(200):
            np.dot(h, engine.R[1], out=z)
        rates.append(200 * 2 * len(h) * U * 4 * U / (time.perf_counter() - t0))
    rate = statistics.median(rates)
    print(f"occlusion's floor: {flops / 1e9:.0f} GFLOP of matrix products (rows joining at their block of "
          f"{saliency.BLOCK}) at {rate / 1e9:.0f} GFLOP/s measured for ({len(h)} x {U}) @ ({U} x {4 * U}): "
          f"{flops / rate * 1000:.0f} ms", flush=True)


def carry_return(engine, ids, position: int, neutral: int, carry) -> None:
    """How far a replacement's effect on the carry lasts: for each replaced character of the
    window, the largest difference from the unreplaced row in layer 2's h and c, 20, 80 and 160
    steps later (median over the replacements that many steps from the end). Occlusion could drop
    a row only once this is negligible."""
    import numpy as np

    from charmodel.analysis import saliency

    W = saliency.WINDOW
    start = position - W + 1
    batch = np.tile(ids[start : position + 1], (W + 1, 1))
    batch[np.arange(1, W + 1), np.arange(W)] = neutral
    _, rec, _ = engine.forward(batch, saliency._rows(carry, W + 1), record=("h", "c"), layers=[1])
    for kind in ("h", "c"):
        diff = np.abs(rec[(1, kind)][1:].astype(np.float32) - rec[(1, kind)][:1])  # (replaced, step, unit)
        parts = []
        for lag in (20, 80, 160):
            largest = [diff[j, j + lag].max() for j in range(W - lag)]
            parts.append(f"{lag} steps later {statistics.median(largest):.3g}")
        print(f"after a replacement, layer 2 {kind}'s largest difference (median): {', '.join(parts)}", flush=True)


if __name__ == "__main__":
    main()
