"""Remake docs/atlas.md's two pictures of the atlas's two scores, from a run's atlas file:

    python tools/replacement_pictures.py [--run weights/alice] [--out docs/img]

- replacement-low.png: among the cells the model uses (holding one at its mean costs at least
  0.002 bits per character) and whose phrases are scored, the one with the highest phrase r whose
  replacement by its phrase alone keeps under 20% of what it gives the model;
- replacement-high.png: the one whose phrase r and share kept (at most 1) are both highest
  (the largest of the two's smaller).
Each shows what the phrase predicts, and the background (the last three characters), against what
the cell does over the first 300 validation characters, and prints the cell and its scores.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import charmodel  # noqa: E402
from charmodel.analysis import atlas  # noqa: E402
from charmodel.engine import Engine, layer_number  # noqa: E402
from charmodel.view import charts  # noqa: E402

CHARS = 300


def picks(found) -> dict:
    """{name: atlas row} of the two cells described in the module docstring."""
    r, kept = found.arrays["phrase_r"], found.arrays["recovered"]
    measured = np.flatnonzero(np.isfinite(kept))
    low = [i for i in measured if kept[i] < 0.2]
    if not low or not len(measured):
        raise SystemExit("no cell fits: the atlas has no measured cell that keeps under 20%")
    kept_most = [i for i in measured if kept[i] <= 1]  # over 1: replaced, the model does better than itself (noise)
    return {"low": max(low, key=lambda i: r[i]), "high": max(kept_most, key=lambda i: min(r[i], kept[i]))}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "weights" / "alice"))
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = p.parse_args()
    run = charmodel.open_run(args.run)
    found = atlas.load(run.path, args.checkpoint)
    engine = Engine.load(run, args.checkpoint)
    passage = run.split()[1][:CHARS]
    units = found.meta["units"]
    for name, i in picks(found).items():
        layer, kind = divmod(int(i) // units, 2)
        kind, cell = ("h", "c")[kind], int(i) % units
        _, records, _ = engine.forward(engine.vocab.encode(passage, "the passage")[None], record=(kind,), layers=[layer])
        actual = records[(layer, kind)][0][:, cell]
        simulated = found.simulate(layer, kind, cell, passage)
        context = found.simulate(layer, kind, cell, passage, "context")
        row = found.cells()[int(i)]
        label = f"layer {layer_number(layer)} {kind} cell {cell}"
        chart = charts.simulation_chart(passage, simulated, actual, label, context, height=160).properties(
            width=720, title=f"{label}: phrase r {row['phrase_r']:.2f}; replaced by its phrase alone, the model keeps "
                             f"{row['recovered']:.0%} (held at its mean: +{row['ablation_bits']:.4f} bpc)")
        out = args.out / f"replacement-{name}.png"
        chart.save(out, scale_factor=1.0)
        print(f"{out}: {label} '{row['explanation']}' phrase r {row['phrase_r']:.3f} beyond r {row['beyond_r']} "
              f"context r {row['context_r']} kept {row['recovered']:.3f} ablation_bits {row['ablation_bits']:.4f}")


if __name__ == "__main__":
    main()
