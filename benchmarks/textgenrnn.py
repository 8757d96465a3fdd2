"""textgenrnn's pretrained model, imported and explored (issue 30): the figures docs/keras.md gives.

    python benchmarks/textgenrnn.py [--repeats 3] [--text data/alice.txt] [--positions 500]

Imports tests/data/textgenrnn (the package's 2.0.0 files) with --text as the corpus into a scratch
weights folder, with the self-check, and reports:
  import     the wall time of `import` (median of --repeats, each into its own folder) and the
             self-check's largest difference;
  generate   new characters per second, 300 at a time, one sample (median of --repeats);
  evaluate   bits per character on the run's validation split (padded windows, and stateful), and
             bz2's beside it;
  attention  over --positions random positions of the validation split: the weight the head gives
             the last step of the window (median, 10th percentile), and the share on the padding;
  atlas      the atlas build's wall time (median of --repeats).
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--text", default=str(ROOT / "data" / "alice.txt"))
    p.add_argument("--positions", type=int, default=500)
    args = p.parse_args()

    from charmodel.analysis import atlas
    from charmodel.engine import Engine, cores, generate
    from charmodel.engine.inspection import attention_weights
    from charmodel.engine.scoring import evaluate
    from charmodel.exchange.textgenrnn import import_textgenrnn
    from charmodel.run.handle import Run

    weights = ROOT / "tests" / "data" / "textgenrnn" / "textgenrnn_weights.hdf5"
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        times, said = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            run = import_textgenrnn(weights, Path(tmp) / f"w{r}", "tg", args.text, report=said.append)
            times.append(time.perf_counter() - t0)
        out["import_seconds"] = statistics.median(times)
        out["self_check"] = said[-1]
        engine = Engine.load(run)
        speeds = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            generate(engine, "", length=300, temperature=0.5, seed=r)
            speeds.append(300 / (time.perf_counter() - t0))
        out["generate_chars_per_second"] = statistics.median(speeds)
        result = evaluate(run)
        out["evaluate"] = {k: result[k] for k in ("bpc", "stateful_bpc", "chars")} | {"bz2": result["baselines"].get("bz2")}
        val = Run.open(run).split()[1]
        rng = np.random.default_rng(0)
        last, padding = [], []
        for position in rng.choice(len(val), size=min(args.positions, len(val)), replace=False):
            read = attention_weights(engine, val[: position + 1], int(position))
            last.append(read["weights"][-1])
            padding.append(read["padding"])
        out["attention_last_step"] = {"median": float(np.median(last)), "p10": float(np.percentile(last, 10)),
                                      "padding_median": float(np.median(padding))}
        builds = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            atlas.build_for_run(run, "best", blas_threads=cores())  # as `atlas` builds it
            builds.append(time.perf_counter() - t0)
        out["atlas_seconds"] = statistics.median(builds)
        out["atlas_seconds_all"] = builds
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
