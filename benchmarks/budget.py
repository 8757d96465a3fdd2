"""A time budget on a person's own text: which shape learns the most in M minutes, against bz2.

    python benchmarks/budget.py --text FILE [--text FILE ...] [--minutes 10] [--shapes recipe,2x128,2x256,2x512]
                                [--atlas] [--out results.json]

For each text and each shape, a fresh `python -m charmodel train --minutes M` (its own process, as
a person runs it), then the best validation bits per character beside bz2's and lzma's
conditional cost on the same split (`charmodel.evaluate.compressor_bpc`). "recipe" is the
command with --minutes alone: the shape the recipe chooses, whose sentence is printed. With
--atlas, the recipe's run then builds its atlas (`python -m charmodel atlas`, timed) and counts
explained cells by the group of their first term. Run nothing else meanwhile: the budget is
wall-clock time, so a busy machine trains fewer passes.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charmodel.run import folder as runfolder
from charmodel.run.corpus import clean, read_text, split_point
from charmodel.engine.scoring import compressor_bpc
from charmodel.training.recipe import SHAPES

ROOT = Path(__file__).resolve().parents[1]
SHAPE_FLAGS = {f"{s.layers}x{s.units}": ["--layers", str(s.layers), "--units", str(s.units), "--batch-size",
                                         str(s.batch_size), "--lr", str(s.lr), "--dropout", str(s.dropout)]
               for s in SHAPES}


def baselines(text_path) -> dict:
    text = clean(read_text(text_path), collapse_spaces=True)
    n = split_point(len(text))
    return compressor_bpc(text[:n], text[n:])


def train(text_path, run: Path, minutes: float, shape: str) -> dict:
    flags = [] if shape == "recipe" else SHAPE_FLAGS[shape] + ["--epochs", "1000"]
    cmd = [sys.executable, "-m", "charmodel", "train", "--text-file", str(text_path), "--run", str(run),
           "--minutes", str(minutes), *flags]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall_s = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    rows = runfolder.read_history(run)
    best = min(rows, key=lambda r: r["val_bpc"])
    arch = runfolder.read_config(run)["architecture"]
    said = [line for line in done.stdout.splitlines() if "passes over your text" in line]
    return {"shape": f"{arch['layers']}x{arch['units']}", "asked": shape, "epochs": len(rows),
            "best_epoch": best["epoch"], "val_bpc": best["val_bpc"], "wall_s": round(wall_s, 1),
            "chars_per_s": sorted(r["chars_per_s"] for r in rows)[len(rows) // 2], "sentence": said[0] if said else ""}


def atlas(run: Path) -> dict:
    from charmodel.analysis.atlas import load

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "charmodel", "atlas", "--run", str(run)], cwd=ROOT, check=True,
                   capture_output=True)
    cov = load(run, "best").coverage()
    return {"atlas_s": round(time.perf_counter() - t0, 1), "explained": cov["explained"], "cells": cov["cells"],
            "by_group": cov["by_group"], "median_phrase_r": cov["median_phrase_r"]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--text", action="append", required=True)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--shapes", default="recipe," + ",".join(SHAPE_FLAGS))
    p.add_argument("--atlas", action="store_true", help="build the recipe run's atlas and count its cells")
    p.add_argument("--out", default=None, help="also write the results as JSON")
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="budget-") as scratch:
        for text in args.text:
            base = baselines(text)
            for shape in args.shapes.split(","):
                run = Path(scratch) / f"{Path(text).stem}-{shape}"
                r = {"text": text, "minutes": args.minutes, **train(text, run, args.minutes, shape),
                     "bz2": round(base["bz2"], 4), "lzma": round(base["lzma"], 4)}
                r["ratio_bz2"] = round(r["val_bpc"] / base["bz2"], 3)
                if args.atlas and shape == "recipe":
                    r.update(atlas(run))
                results.append(r)
                print(json.dumps(r), flush=True)
    print(f"\n| text | shape | epochs in {args.minutes:g} min | best val bpc | bz2 | ratio | chars/s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        shape = f"{r['shape']} (recipe)" if r["asked"] == "recipe" else r["shape"]
        print(f"| {Path(r['text']).name} | {shape} | {r['epochs']} | {r['val_bpc']:.3f} | {r['bz2']:.3f} | "
              f"{r['ratio_bz2']:.3f} | {r['chars_per_s']:,.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
