"""Measure everything a model card quotes, and draw the loss curve.

    python tools/model_card.py --run weights/alice > /tmp/measured.md

Prints Markdown sections (history, evaluation against compressors, samples, interpretable cells),
writes RUN/highlights.json (the headline cell the app opens on) and RUN/loss_curve.png with
Altair (vl-convert renders it). The card's prose is written by
hand around these numbers; every number in it comes from this script's output.
"""

import argparse
from pathlib import Path


import altair as alt
import pandas as pd

from charmodel.analysis import atlas
from charmodel.analysis import explain
from charmodel.run import folder as runfolder
from charmodel.run.handle import Run
from charmodel.view.charts import epoch_frame
from charmodel.analysis.cells import batched_activations, feature, headline, rank_cells
from charmodel.engine import Engine, bits_per_char, layer_number
from charmodel.engine.scoring import evaluate
from charmodel.engine.sampling import generate


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--prime", default="Alice ")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--highlights-only", action="store_true", help="only measure and write RUN/highlights.json")
    p.add_argument("--atlas-only", action="store_true", help="only print the Atlas section (from RUN's atlas file)")
    args = p.parse_args()
    run = Path(args.run)
    if args.atlas_only:
        return atlas_section(run, runfolder.default_checkpoint(run))
    checkpoint = runfolder.default_checkpoint(run)
    best = headline(Engine.load(run, checkpoint), Run.open(run).split()[1])
    runfolder.write_highlights(run, checkpoint, best)
    print(f"headline cell ({checkpoint} checkpoint, validation text, {best['description']}): layer {layer_number(best['layer'])} "
          f"{best['kind']} cell {best['cell']}, {best['metric']} {best['score']:.3f}\n")
    if args.highlights_only:
        return
    history = pd.DataFrame(runfolder.read_history(run))

    long = epoch_frame(runfolder.read_history(run), "train (with dropout)", "validation (chunked)")
    chart = (alt.Chart(long, width=560, height=300, title=f"{run.name}: loss per epoch")
             .mark_line(point=True)
             .encode(x="epoch:Q", y=alt.Y("bpc:Q", title="bits per character", scale=alt.Scale(zero=False)),
                     color=alt.Color("series:N", title=None)))
    chart.save(str(run / "loss_curve.png"), scale_factor=2)

    print("## History\n")
    print("| " + " | ".join(history.columns) + " |\n|" + "---|" * len(history.columns))
    for row in history.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")
    print(f"\ntotal training wall time: {history['wall_s'].sum():.0f} s over {len(history)} epochs")

    result = evaluate(run, checkpoint=checkpoint)
    engine = Engine.load(run, checkpoint)
    train_text, val_text = Run.open(run).split()
    train_bpc = bits_per_char(engine, train_text)
    print(f"\n## Evaluation ({checkpoint} checkpoint, stateful)\n")
    print("| | bits per character |\n|---|---|")
    print(f"| this model, training text ({len(train_text)} chars) | {train_bpc:.3f} |")
    print(f"| this model, validation text ({result['chars']} chars) | {result['bpc']:.3f} |")
    for name, bpc in result["baselines"].items():
        print(f"| {name} (conditional on the training text) | {bpc:.3f} |")

    print(f"\n## Samples (prime {args.prime!r}, seed {args.seed}, 400 characters)\n")
    for temperature in (0.2, 0.5, 1.0):
        text = generate(engine, args.prime, 400, temperature, args.seed)[0]
        print(f"temperature {temperature}:\n\n```\n{args.prime}{text}\n```\n")

    print("## Interpretable cells (validation text)\n")
    states = batched_activations(engine, val_text)
    print("| hypothesis | best cell | score |\n|---|---|---|")
    for name in ("quote", "after_quote", "word_start", "word_end", "line_position", "parens", "sentence_end"):
        signal = feature(name, val_text)
        if signal.min() == signal.max():
            print(f"| {name} | none: the validation text has no such characters | |")
            continue
        best = rank_cells(states, signal, 1)[0]
        metric = "|r|" if best["metric"] == "r" else "AUC"
        print(f"| {name} | layer {layer_number(best['layer'])} {best['kind']} cell {best['cell']} "
              f"({'+' if best['direction'] > 0 else '-'}) | {metric} {best['score']:.3f} |")



def what_the_model_uses(found, cov: dict) -> str:
    """The atlas's two scores in a paragraph: weighted coverage, replacement per layer and kind."""
    import numpy as np

    rep = cov["replacement"]
    parts = ", ".join(f"{part} {d['recovered']:.2f}" for part, d in rep.items() if part != "model"
                      and d["recovered"] is not None)
    measured = int(np.isfinite(found.arrays["recovered"]).sum())
    return (f"What the model uses ({found.meta['ablation_chars']:,} validation characters): the explained cells hold "
            f"{cov['weighted_coverage']:.0%} of what single cells carry (each held at its mean alone: "
            f"{cov['ablation_bits_explained']:.3f} of {cov['ablation_bits']:.3f} bits per character). Replaced by "
            f"their explanations all at once, they keep {rep['model']['recovered']:.2f} of what they give the model "
            f"({rep['model']['bpc']:.3f} bpc, {rep['model']['bpc_means']:.3f} held at their means, "
            f"{rep['model']['bpc_explained']:.3f} replaced); per layer and kind {parts}. Cell by cell, {measured} "
            f"explained cells cost at least 0.002 bits held alone; the median keeps {cov['median_recovered']:.2f}.")


def atlas_section(run: Path, checkpoint: str) -> None:
    """The atlas's coverage and distribution of simulation r, the post's three ideas as terms, its
    best long-context cells, and the full grammar against the prototype's on the same samples."""
    import numpy as np

    found = atlas.load(run, checkpoint)
    cov, rows = found.coverage(), found.cells()
    r = np.array([np.nan if x["simulation_r"] is None else x["simulation_r"] for x in rows])
    print(f"## Atlas ({checkpoint} checkpoint; `python -m charmodel atlas --run {run}`)\n")
    print(f"{cov['explained']} of {cov['cells']} cells explained (held-out simulation r >= {explain.EXPLAINED_R}); "
          f"median held-out simulation r {np.nanmedian(r):.3f}; quartiles {np.nanpercentile(r, 25):.3f} and "
          f"{np.nanpercentile(r, 75):.3f}; built in {found.meta['seconds']:.0f} s; the profiles reach back through "
          f"{len(found.meta['contexts']):,} runs of two and three characters, and the file is "
          f"{found.path.stat().st_size / 1e6:.1f} MB.\n")
    print(what_the_model_uses(found, cov) + "\n")
    print("| | cells | explained |\n|---|---|---|")
    for part, d in cov["by_layer_kind"].items():
        print(f"| {part} | {d['cells']} | {d['explained']} |")
    print("\n| group of the first term | explained cells | share of all cells |\n|---|---|---|")
    for group, n in cov["by_group"].items():
        print(f"| {group} | {n} | {n / cov['cells']:.1%} |")
    name = lambda r: f"layer {layer_number(r['layer'])} {r['kind']} cell {r['cell']}"
    print("\nThe post's three ideas, each the first term of some cell (the best such cell by held-out r):\n")
    for label, test in (("inside a quotation", lambda n: n == "named:quote"),
                        ("after a quotation closes", lambda n: n == "named:after_quote" or n.startswith("afterquote:")),
                        ("first character of a word", lambda n: n == "named:word_start")):
        hits = [r for r in rows if r["simulation_r"] is not None and any(test(t["name"]) for t in r["terms"])]
        first = [r for r in hits if test(r["terms"][0]["name"])]
        if first:
            r_ = max(first, key=lambda r: r["simulation_r"])
            print(f"- {label}: {name(r_)}, *{r_['explanation']}*, r {r_['simulation_r']:.3f} "
                  f"({len(first)} cells have it as their first term, {len(hits)} as a term)")
        else:
            print(f"- {label}: no cell")
    print("\nBest long-context cells:\n")
    print("| cell | explanation | held-out r |\n|---|---|---|")
    long = sorted((r for r in rows if r["explained"] and r["group"] == "long"), key=lambda r: -r["simulation_r"])
    for r_ in long[:10]:
        print(f"| {name(r_)} | {r_['explanation']} | {r_['simulation_r']:.3f} |")
    train, val = Run.open(run).split()
    compared = atlas.compare_grammars(Engine.load(run, checkpoint), train + val, len(train))
    print("\nThe full grammar against the prototype's (named hypotheses, current and previous character), "
          "same samples and thresholds:\n")
    print("| grammar | candidates | explained | median r | " + " | ".join(explain.GROUPS) + " |\n|---|---|---|---|" + "---|" * 4)
    for grammar, c in compared.items():
        print(f"| {grammar} | {c['candidates']} | {c['explained']} | {c['median_simulation_r']} | " +
              " | ".join(str(c["by_group"][g]) for g in explain.GROUPS) + " |")


if __name__ == "__main__":
    main()
