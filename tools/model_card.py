"""Measure everything a model card quotes, and draw the loss curve.

    python tools/model_card.py --run weights/alice > /tmp/measured.md

Prints Markdown sections (history, evaluation against compressors, samples, interpretable cells),
writes RUN/highlights.json (the headline cell the app opens on) and RUN/loss_curve.png with
Altair (vl-convert renders it). The card's prose is written by
hand around these numbers; every number in it comes from this script's output.
"""

import argparse
from pathlib import Path


import pandas as pd

from charmodel.analysis import atlas
from charmodel.analysis import explain
from charmodel.run import folder as runfolder
from charmodel.run.handle import Run
from charmodel.view.charts import epoch_frame, loss_chart
from charmodel.analysis.cells import batched_activations, feature, headline, rank_cells
from charmodel.engine import Engine, bits_per_char, layer_number
from charmodel.engine.scoring import best_baseline, evaluate, split_baselines, write_split_baselines
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
    to_beat = best_baseline(split_baselines(run) or write_split_baselines(run))  # the line the curves must beat
    chart = loss_chart(long, "epoch", f"{run.name}: loss per epoch", height=300, to_beat=to_beat).properties(width=560)
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
    for name in ("quote", "after_quote", "word_start", "word_end", "line_position", "parens", "sentence_end"):  # hypotheses: the last two read ahead
        signal = feature(name, val_text)
        if signal.min() == signal.max():
            print(f"| {name} | none: the validation text has no such characters | |")
            continue
        best = rank_cells(states, signal, 1)[0]
        metric = "|r|" if best["metric"] == "r" else "AUC"
        print(f"| {name} | layer {layer_number(best['layer'])} {best['kind']} cell {best['cell']} "
              f"({'+' if best['direction'] > 0 else '-'}) | {metric} {best['score']:.3f} |")



def what_the_model_uses(found, cov: dict) -> str:
    """The atlas's replacement in a paragraph: three characters as the zero point, the phrases alone,
    the n-gram scale, weighted coverage."""
    rep = cov["replacement"]
    m = rep["model"]
    share = lambda v: "-" if v is None else f"{v:.2f}"
    parts = ", ".join(f"{part} {share(d['beyond_context'])}" for part, d in rep.items() if part not in ("model", "scale"))
    scale = rep.get("scale", {})
    grams = "; ".join(f"{k} {v:.3f}" for k, v in scale.items())
    return (f"What the model uses ({found.meta['ablation_chars']:,} validation characters; every explained cell "
            f"replaced at once): the model reads {m['bpc']:.3f} bpc as it is and {m['bpc_context']:.3f} with each cell "
            f"at its mean after the last three characters; adding the phrases gives {m['bpc_both']:.3f}, winning back "
            f"**{share(m['beyond_context'])}** of what the model knows beyond three characters (per layer and kind "
            f"{parts}). By their phrases alone: {m['bpc_phrase']:.3f} against {m['bpc_means']:.3f} held at their "
            f"means ({share(m['recovered'])} recovered). For scale, counting models trained on the training text "
            f"score {grams} on the same characters. The explained cells hold {cov['weighted_coverage']:.0%} of what "
            f"single cells carry (each held at its mean alone: {cov['ablation_bits_explained']:.3f} of "
            f"{cov['ablation_bits']:.3f} bits per character); cell by cell, the median phrase alone keeps "
            f"{share(cov['median_recovered'])}.")


def atlas_section(run: Path, checkpoint: str) -> None:
    """The atlas's three scores, the post's three ideas as first terms, the cells whose phrase says
    most beyond three characters."""
    found = atlas.load(run, checkpoint)
    cov, rows = found.coverage(), found.cells()
    print(f"## Atlas ({checkpoint} checkpoint; `python -m charmodel atlas --run {run}`)\n")
    print(f"Every cell's explanation is a phrase of at most {explain.MAX_TERMS} causal terms, scored alone on held-out "
          f"text. {cov['explained']} of {cov['cells']} cells explained (phrase r >= {explain.EXPLAINED_R}); median "
          f"phrase r {cov['median_phrase_r']}; what the last three characters already tell (a table, the background, "
          f"not an explanation): median context r {cov['median_context_r']}; what the phrase tells beyond them: "
          f"median beyond r {cov['median_beyond_r']}, {cov['beyond_half']} cells >= {explain.EXPLAINED_R}. Built in "
          f"{found.meta['seconds']:.0f} s; the file is {found.path.stat().st_size / 1e6:.1f} MB.\n")
    print(what_the_model_uses(found, cov) + "\n")
    print("| | cells | explained |\n|---|---|---|")
    for part, d in cov["by_layer_kind"].items():
        print(f"| {part} | {d['cells']} | {d['explained']} |")
    print("\n| group of the first term | explained cells | share of all cells |\n|---|---|---|")
    for group, n in cov["by_group"].items():
        print(f"| {group} | {n} | {n / cov['cells']:.1%} |")
    name = lambda r: f"layer {layer_number(r['layer'])} {r['kind']} cell {r['cell']}"
    print("\nThe post's three ideas, each the first term of some cell (the best such cell by phrase r):\n")
    for label, test in (("inside a quotation", lambda n: n == "named:quote"),
                        ("after a quotation closes", lambda n: n == "named:after_quote" or n.startswith("afterquote:")),
                        ("first character of a word", lambda n: n == "named:word_start")):
        hits = [r for r in rows if r["phrase_r"] is not None and any(test(t["name"]) for t in r["terms"])]
        first = [r for r in hits if test(r["terms"][0]["name"])]
        if first:
            r_ = max(first, key=lambda r: r["phrase_r"])
            print(f"- {label}: {name(r_)}, *{r_['explanation']}*, phrase r {r_['phrase_r']:.3f}, beyond r "
                  f"{r_['beyond_r']:.3f} ({len(first)} cells have it as their first term, {len(hits)} as a term)")
        else:
            print(f"- {label}: no cell")
    print("\nThe explained cells whose phrase says most beyond the last three characters:\n")
    print("| cell | phrase | phrase r | beyond r | context r |\n|---|---|---|---|---|")
    beyond = sorted((r for r in rows if r["explained"] and r["beyond_r"] is not None), key=lambda r: -r["beyond_r"])
    for r_ in beyond[:10]:
        print(f"| {name(r_)} | {r_['explanation']} | {r_['phrase_r']:.3f} | {r_['beyond_r']:.3f} | "
              f"{r_['context_r']:.3f} |")


if __name__ == "__main__":
    main()
