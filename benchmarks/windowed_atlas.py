"""An atlas of a windowed model (issue 30): only the sampled positions, against a pass over every character.

    python benchmarks/windowed_atlas.py [--units 512] [--window 100] [--timed 2000] [--repeats 3]
                                        [--whole]

A run of the post's shape (2 LSTM layers of --units, the scalar input, random weights: the time
does not depend on what they learned) on Alice with its window set. An atlas's activations cost, on
this run:
  full     the pass the atlas made before: every character, the ring of windows (cells.iter_activations);
  sampled  what it reads now: the sampled positions only, each from its own window (atlas.window_values).
Both are linear in what they read (W steps per character or per position), so each is timed on
--timed characters or positions (alternating, median of --repeats) and scaled to the whole text and
to the atlas's own sample; the ratio of the two is the target (at most 0.35x). --whole then builds
the whole atlas once (`atlas.build_for_run`, with its progress) and reports its wall time.
Nothing else may run on the machine meanwhile (two cores: see ../shared/NOTES.md).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.windowed import make_run  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=512)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--timed", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--whole", action="store_true")
    args = p.parse_args()

    from charmodel.analysis import atlas
    from charmodel.analysis.cells import iter_activations
    from charmodel.engine import Engine
    from charmodel.run.handle import Run

    from charmodel.run.corpus import clean, read_text, split

    text = clean(read_text(ROOT / "data" / "alice.txt"), collapse_spaces=False).lower()  # as the post reads it
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "post", args.units, args.window, text)
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
        train, val = split(text)  # the corpus fields a run folder's config needs, as training writes them
        config["corpus"].update(chars=len(text), train_chars=len(train), val_chars=len(val))
        (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
        engine = Engine.load(run, "best")
        train, val = Run.open(run).split()
        whole = train + val
        ids = engine.vocab.encode(whole, "the corpus")
        fit, held, _ = atlas.sample_positions(len(train), len(whole), share=atlas.WINDOWED_SHARE)
        positions = np.concatenate([fit, held])
        timed_positions = np.sort(np.random.default_rng(1).choice(positions, min(args.timed, len(positions)),
                                                                  replace=False))
        start = len(train) // 2  # a stretch of text away from its start

        def full():
            for _ in iter_activations(engine, ids[start : start + args.timed], ("h", "c"), None, atlas.PIECE,
                                      atlas.WARMUP, atlas.GROUP):
                pass

        def sampled():
            atlas.window_values(engine, ids, timed_positions)

        times = {"full": [], "sampled": []}
        for _ in range(args.repeats):
            for name, fn in (("full", full), ("sampled", sampled)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        per_char = statistics.median(times["full"]) / args.timed
        per_position = statistics.median(times["sampled"]) / len(timed_positions)
        full_s, sampled_s = per_char * len(whole), per_position * len(positions)
        print(f"run: 2 x {args.units}, window {args.window}, {len(whole):,} characters; the atlas samples "
              f"{len(positions):,} positions ({len(fit):,} fit, {len(held):,} held out) = "
              f"{len(positions) / len(whole):.2f} of the text")
        print(f"full pass: {1000 * per_char:.2f} ms per character (runs {', '.join(f'{t:.1f}' for t in times['full'])} s "
              f"for {args.timed:,}) -> {full_s / 60:.1f} min for the text")
        print(f"sampled:   {1000 * per_position:.2f} ms per position (runs "
              f"{', '.join(f'{t:.1f}' for t in times['sampled'])} s for {len(timed_positions):,}) -> "
              f"{sampled_s / 60:.1f} min for the atlas's sample")
        print(f"RATIO: sampled / full = {sampled_s / full_s:.2f}x (target <= 0.35x)")
        if args.whole:  # the whole build, as `charmodel atlas` makes it
            t = time.perf_counter()
            last = [0.0]

            def show(f, stage):
                if f - last[0] >= 0.1 or f >= 1:
                    last[0] = f
                    print(f"  {f:.0%} ({stage}) after {time.perf_counter() - t:.0f} s", flush=True)

            atlas.build_for_run(run, "best", progress=show)
            found = atlas.load(run, "best")
            print(f"WHOLE atlas build: {(time.perf_counter() - t) / 60:.1f} min (the sampled pass estimated at "
                  f"{sampled_s / 60:.1f} min; the full pass at {full_s / 60:.1f}); stages (s): "
                  f"{found.meta['stage_seconds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
