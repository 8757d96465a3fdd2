"""A time budget on a person's own text: what M minutes of training learn, against bz2 and a 5-gram.

    python benchmarks/budget.py --text FILE [--text FILE ...] [--minutes 10] [--shapes recipe,2x128,2x256,2x512]
                                [--variant NAME="FLAGS" ...] [--atlas] [--out results.json]

For each text, shape and variant, a fresh `python -m charmodel train --minutes M` (its own process,
as a person runs it), then the best validation bits per character beside bz2's conditional cost
and a 5-gram model's on the same split (`charmodel.engine.scoring`), its ratio to the better of
the two, and the share of the process's wall time spent outside training batches (everything but
the batches: start-up, validation, checkpoints, samples). "recipe" is the command with --minutes
alone: the shape the recipe chooses, whose sentence is printed. A variant adds its flags to every
command (for example `--variant carry="--carry-state"`); the default is the command as shipped. With
--atlas, the recipe's run then builds its atlas (`python -m charmodel atlas`, timed) and counts
explained cells by the group of their first term. Run nothing else meanwhile: the budget is
wall-clock time, so a busy machine trains fewer passes.
"""

import argparse
import json
import re
import shlex
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charmodel.run import folder as runfolder
from charmodel.run.corpus import clean, read_text, split_point
from charmodel.engine.scoring import best_baseline, compressor_bpc, evaluate, ngram_bpc
from charmodel.training.recipe import SHAPES

ROOT = Path(__file__).resolve().parents[1]
SHAPE_FLAGS = {f"{s.layers}x{s.units}": ["--layers", str(s.layers), "--units", str(s.units), "--batch-size",
                                         str(s.batch_size), "--lr", str(s.lr), "--dropout", str(s.dropout),
                                         "--clip-norm", str(s.clip_norm)]
               for s in SHAPES}


def baselines(text_path) -> dict:
    text = clean(read_text(text_path), collapse_spaces=True)
    n = split_point(len(text))
    return {**compressor_bpc(text[:n], text[n:]), **ngram_bpc(text[:n], text[n:])}


def train(text_path, run: Path, minutes: float, shape: str, extra: list[str], root: Path = ROOT) -> dict:
    flags = ([] if shape == "recipe" else SHAPE_FLAGS[shape] + ["--epochs", "1000"]) + extra
    cmd = [sys.executable, "-m", "charmodel", "train", "--text-file", str(text_path), "--run", str(run),
           "--minutes", str(minutes), *flags]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall_s = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    said = [line for line in done.stdout.splitlines() if "passes over your text" in line]
    return summary(run, shape, wall_s, said[0] if said else "")


def train_page(text_path, run: Path, minutes: float) -> dict:
    """The Train page's way: the recipe from this machine's timed speeds (`recipe.from_speeds`, as
    the page calls it, timing what is missing first, as the page's SpeedJob does), then the same
    child process through `JobManager.start`, at the page's lower priority, with every core."""
    from charmodel.training import recipe as recipes
    from charmodel.training.jobs import JobManager, corpus_facts_of

    chars, distinct = corpus_facts_of(text_path)
    recipes.time_missing(recipes.shape_settings({}), recipes.training_threads(), distinct)
    chosen = recipes.from_speeds(minutes, chars, distinct, {}, recipes.training_threads())
    t0 = time.perf_counter()
    job = JobManager(atlas_after=False).start(run, text_path, settings=chosen.settings)
    job.wait()
    wall_s = time.perf_counter() - t0
    if job.snapshot().status == "failed":
        raise SystemExit(f"the page's training job failed: {job.snapshot().error}")
    return summary(run, "page", wall_s, chosen.sentence)


def summary(run: Path, asked: str, wall_s: float, sentence: str) -> dict:
    """What a run did in its budget: best chunked validation bpc (the curves'), the best weights'
    bpc read statefully over the whole split (`evaluate`, as Generate and Visualise read text),
    the share of the wall time outside batches, and the passes the sentence promised against done."""
    rows = runfolder.read_history(run)
    best = min(rows, key=lambda r: r["val_bpc"])
    config = runfolder.read_config(run)
    arch, t = config["architecture"], config["training"]
    in_batches = sum(r.get("batch_s", float("nan")) for r in rows)  # seconds in batches (NaN: an older run)
    passes = sum(r.get("batch_s", float("nan")) * r["chars_per_s"] for r in rows) / config["corpus"]["train_chars"]
    promised = re.search(r"about ([0-9.]+) passes", sentence)
    return {"shape": f"{arch['layers']}x{arch['units']}", "asked": asked, "epochs": len(rows),
            "batch_size": t["batch_size"], "carry_state": t.get("carry_state", False),
            "outside_batches": round(1 - in_batches / wall_s, 3),
            "best_epoch": best["epoch"], "val_bpc": best["val_bpc"],
            "stateful_bpc": round(evaluate(run, checkpoint="best")["bpc"], 4), "wall_s": round(wall_s, 1),
            "chars_per_s": sorted(r["chars_per_s"] for r in rows)[len(rows) // 2], "sentence": sentence,
            "passes": round(passes, 2), "passes_said": float(promised.group(1)) if promised else None}


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
    p.add_argument("--root", type=Path, default=ROOT,
                   help="train with the checkout in this folder (a `git worktree` of an older commit: the baseline)")
    p.add_argument("--page", action="store_true", help="also train each text the Train page's way (recipe alone)")
    p.add_argument("--variant", action="append", default=[], help='NAME="FLAGS": train again with these flags')
    p.add_argument("--atlas", action="store_true", help="build the recipe run's atlas and count its cells")
    p.add_argument("--out", default=None, help="also write the results as JSON")
    args = p.parse_args()
    variants = [tuple(v.split("=", 1)) if "=" in v else (v, "") for v in args.variant] or [("as shipped", "")]
    results = []
    with tempfile.TemporaryDirectory(prefix="budget-") as scratch:
        for text in args.text:
            base = baselines(text)
            name, better = best_baseline(base)
            for shape in filter(None, args.shapes.split(",")):  # --shapes "": the page's way alone
                for variant, flags in variants:
                    run = Path(scratch) / f"{Path(text).stem}-{shape}-{variant}"
                    r = {"text": text, "minutes": args.minutes, "variant": variant,
                         **train(text, run, args.minutes, shape, shlex.split(flags), args.root),
                         "bz2": round(base["bz2"], 4), "5-gram": round(base["5-gram"], 4), "better": name}
                    r["ratio"] = round(r["val_bpc"] / better, 3)
                    if args.atlas and shape == "recipe":
                        r.update(atlas(run))
                    results.append(r)
                    print(json.dumps(r), flush=True)
            if args.page:
                run = Path(scratch) / f"{Path(text).stem}-page"
                r = {"text": text, "minutes": args.minutes, "variant": "Train page", **train_page(text, run, args.minutes),
                     "bz2": round(base["bz2"], 4), "5-gram": round(base["5-gram"], 4), "better": name}
                r["ratio"] = round(r["val_bpc"] / better, 3)
                results.append(r)
                print(json.dumps(r), flush=True)
    print(f"\n| text | shape | variant | epochs in {args.minutes:g} min | best val bpc (chunked) | stateful | bz2 | "
          "5-gram | ratio to the better (chunked / stateful) | chars/s | outside batches | passes said / done |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        shape = f"{r['shape']} (recipe)" if r["asked"] in ("recipe", "page") else r["shape"]
        better = min(r["bz2"], r["5-gram"])
        print(f"| {Path(r['text']).name} | {shape} | {r['variant']} | {r['epochs']} | {r['val_bpc']:.3f} | "
              f"{r['stateful_bpc']:.3f} | {r['bz2']:.3f} | {r['5-gram']:.3f} | {r['ratio']:.3f} / "
              f"{r['stateful_bpc'] / better:.3f} | {r['chars_per_s']:,.0f} | {r['outside_batches']:.0%} | "
              f"{r['passes_said'] or '-'} / {r['passes']:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
