"""How phrases are chosen (issue 36): the atlas's own choice against the alternatives, on the same
samples, scored the same way.

    python benchmarks/phrases.py [--run weights/alice] [--chars 2000]

One stream of the run's text (the atlas's samples), then four ways of choosing each cell's terms:

- shipped: the full grammar, chosen for the phrase's R² plus its R² beyond the background;
- without character sets: the same, without "the (previous) character is one of ...";
- for the phrase alone: the full grammar, chosen on the phrase's R² only;
- beyond the background only: the full grammar, chosen on what the background leaves only.

For each: cells explained (phrase r >= 0.5), median phrase r, cells and median at beyond r, and
every explained cell replaced at once over the first --chars validation characters (bpc by the
background alone, by background plus phrases, beyond_context, and recovered by the phrases alone).
No timing here: it runs nothing twice. Nothing else may run on the machine meanwhile.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from charmodel.analysis import atlas, background, explain, replace
from charmodel.analysis.candidates import library, signal_matrix
from charmodel.engine import Engine, cores
from charmodel.run.handle import Run

VARIANTS = {"shipped": (True, (1.0, 1.0)), "without character sets": (False, (1.0, 1.0)),
            "for the phrase alone": (True, (1.0, 0.0)), "beyond the background only": (True, (0.0, 1.0))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path(__file__).resolve().parents[1] / "weights" / "alice")
    ap.add_argument("--chars", type=int, default=replace.REPLACE_CHARS)
    args = ap.parse_args()
    run = Run.of(args.run)
    engine = Engine.load(run, "best")
    train, val = run.split()
    text, vocab = train + val, engine.vocab.chars
    samples = atlas.stream(engine, text, len(train))
    ids = engine.vocab.encode(text, "the corpus").astype(np.int64)
    codes = background.context_codes(ids, len(vocab))
    before = np.where(samples.fit > 0, ids[np.maximum(samples.fit - 1, 0)], -1)
    grammar = library(train, vocab)
    sets = explain.character_sets(samples.fit_x, ids[samples.fit], vocab) + \
        explain.character_sets(samples.fit_x, before, vocab, previous=True)
    base = replace._bpc(engine, engine.vocab.encode(val[: args.chars], "the text"))
    for name, (with_sets, select) in VARIANTS.items():
        t0 = time.perf_counter()
        candidates = grammar + (sets if with_sets else [])
        fit_signals, held_signals = signal_matrix(candidates, text, vocab, samples.fit, samples.held)
        chosen = explain.choose(samples.fit_x, fit_signals, samples.held_x, held_signals, candidates,
                                ids[samples.fit], ids[samples.held], len(vocab), codes[samples.fit],
                                codes[samples.held], select=select)
        seconds = time.perf_counter() - t0
        contexts = chosen.pop("contexts")
        draft = atlas.Atlas({"units": engine.units, "layers": engine.layers, "vocab": vocab,
                             "candidates": explain.candidate_dicts(candidates), "contexts": contexts.tolist()}, chosen, None)
        with replace.blas(cores()):
            model = replace.replace(engine, draft, val[: args.chars], base=base)
        r, beyond = chosen["phrase_r"], chosen["beyond_r"]
        print(f"{name}: {len(candidates)} candidates, chosen in {seconds:.0f} s; explained {int((r >= 0.5).sum())} of "
              f"{len(r)}, median phrase r {np.nanmedian(r):.3f}; beyond r >= 0.5: {int((beyond >= 0.5).sum())}, median "
              f"{np.nanmedian(beyond):.3f}; replaced all at once ({model['cells']} cells): bpc {model['bpc']}, context "
              f"{model['bpc_context']}, both {model['bpc_both']}, beyond_context {model['beyond_context']}; phrases "
              f"alone {model['bpc_phrase']} against {model['bpc_means']} at their means, recovered {model['recovered']}",
              flush=True)


if __name__ == "__main__":
    main()
