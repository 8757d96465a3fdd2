"""Input attribution (issue 14): the three methods' time on the 2 x 512 Alice model, and the
latched-cell sanity check.

    python benchmarks/saliency.py [--repeats 5] [--threads 1]

One attribution over a 200-character window ending at character 1,200 of weights/alice's
validation text, to layer 2 c cell 492 (the quotation cell), per method: median of --repeats
with and without computing the carry before the window (from the 1,000 characters before it;
the app and a caller that walks a text can reuse it). The
baseline for occlusion is the same replacements run one pass over the window at a time, from the
same carry (timed for 10, scaled to 200). Targets: occlusion at most 500 ms, gradient x input at most 200 ms.

Then integrated gradients' completeness error at 32, 64 and 128 steps (one run each), and the
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
    from charmodel import runfolder, saliency
    from charmodel.engine import Engine

    run = ROOT / "weights" / "alice"
    engine = Engine.load(run, "best")
    train, val = runfolder.split_text(run)
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
    check = "Alice looked at the Hatter for some time, and then `I think you might do something better with the time"
    for method in saliency.METHODS:
        r = saliency.attribute(engine, check, check.index("better"), target, method, corpus=train)
        j = check.index("`") - r["start"]
        print(f"CHECK {method}: the opening mark ranks {saliency.rank_of(r['scores'], j)} of {len(r['scores'])} "
              f"(score {r['scores'][j]:+.2f}; largest other |score| "
              f"{max(abs(s) for k, s in enumerate(r['scores']) if k != j):.2f})", flush=True)


if __name__ == "__main__":
    main()
