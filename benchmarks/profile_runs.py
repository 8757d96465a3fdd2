"""Issue 29, the atlas's fifth edition: what the runs of characters and the terms each give an
explanation, by both of the atlas's scores.

    python benchmarks/profile_runs.py [--run weights/alice] [--chars 2000]

Three sets of explanations, chosen on the same samples (one `atlas.stream` pass) and scored on the
same held-out positions:
- `character + terms`: the fourth edition, the cell's mean after the current character plus up
  to three terms (explain.choose without the runs);
- `runs alone`: the fifth edition's profile, the cell's mean after the last three characters, with
  no term at all (the forward selection made to choose none, so the runs are fitted on what the
  character profile leaves);
- `runs + terms`: the fifth edition, what the atlas stores.
For each: the median held-out simulation r, the cells explained (r >= 0.5), terms per cell (the
profile one of them), and `replace.summary` on the first --chars validation characters: every
explained cell replaced by its explanation at once, and each layer and kind alone (`recovered`).
Not timed: nothing else needs to be idle. The figures are in docs/atlas.md.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import charmodel  # noqa: E402
from charmodel.analysis import atlas, explain, replace  # noqa: E402
from charmodel.engine import Engine  # noqa: E402


def no_terms(select):
    """forward_select choosing nothing: every explanation is its profile alone."""
    def chosen(*args, **kwargs):
        terms, r = select(*args, **kwargs)
        return np.full_like(terms, -1), np.zeros_like(r)
    return chosen


def report(name, engine, candidates, chosen, contexts, scored):
    draft = atlas.Atlas({"units": engine.units, "layers": engine.layers, "vocab": engine.vocab.chars,
                         "candidates": explain.candidate_dicts(candidates),
                         "contexts": [] if contexts is None else contexts.tolist()}, chosen, None)
    if contexts is None:  # the fourth edition: no runs, a table of none
        chosen["context_profile"] = np.zeros((len(chosen["terms"]), 0), np.float32)
    r = chosen["simulation_r"]
    with replace.blas(2):
        out = replace.summary(engine, draft, scored)
    model = out.pop("model")
    print(f"{name}: median r {np.nanmedian(r):.3f}; explained {int((r >= explain.EXPLAINED_R).sum())} of {len(r)}; "
          f"terms per cell {((chosen['terms'] >= 0).sum(axis=1) + 1).mean():.2f}; replaced all at once: recovered "
          f"{model['recovered']} of {model['cells']} cells (bpc {model['bpc']} unablated, {model['bpc_means']} at "
          f"their means, {model['bpc_explained']} replaced); per layer and kind "
          + ", ".join(f"{k} {v['recovered']}" for k, v in out.items()), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "weights" / "alice"))
    p.add_argument("--chars", type=int, default=replace.REPLACE_CHARS, help="validation characters replaced")
    args = p.parse_args()
    run = charmodel.open_run(args.run)
    engine = Engine.load(run, "best")
    train, val = run.split()
    text = train + val
    samples = atlas.stream(engine, text, len(train))
    scored = val[: args.chars]
    vocab = engine.vocab.chars
    candidates = explain.library(train, vocab, "full")
    fit_signals, held_signals = explain.signal_matrix(candidates, text, vocab, samples.fit, samples.held)
    ids = engine.vocab.encode(text, "the corpus")
    runs = explain.context_codes(ids, len(vocab))
    fit, held = samples.fit, samples.held
    base = (samples.fit_x, fit_signals, samples.held_x, held_signals, candidates, ids[fit], ids[held], len(vocab))
    report("character + terms", engine, candidates, explain.choose(*base), None, scored)
    select = explain.forward_select
    explain.forward_select = no_terms(select)
    try:
        chosen = explain.choose(*base, runs[fit], runs[held])
    finally:
        explain.forward_select = select
    report("runs alone", engine, candidates, chosen, chosen.pop("contexts"), scored)
    chosen = explain.choose(*base, runs[fit], runs[held])
    report("runs + terms", engine, candidates, chosen, chosen.pop("contexts"), scored)


if __name__ == "__main__":
    main()
