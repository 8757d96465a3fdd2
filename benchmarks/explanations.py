"""Issue 29's experiment: would explanations that start from the cell's character profile carry more
of what the model uses? Measured against the shipped atlas's own explanations, on the same samples.

    python benchmarks/explanations.py [--run weights/alice] [--terms 2 3]

Variants, each scored by the atlas's two scores (docs/atlas.md):
- `atlas`: the atlas file's explanations (since the fourth edition: its character profile and up to 3 terms;
  since the fifth, the profile reaches back to the last three characters);
- `profile+K`: the cell's mean for each current character on the fit positions (its profile), plus
  up to K terms chosen by the atlas's own forward selection on what the profile leaves (the cell
  and every candidate's signal with their per-character means taken out, so a character detector
  adds nothing), fitted by least squares. The profile counts as one term.
For each: the held-out median simulation r, explained cells (r >= 0.5), terms per cell, explained
cells by their first term's group; `recovered` of all explained cells replaced at once and of each
layer and kind, both for the variant's own explained cells and for the atlas's; and the median
`recovered` of the cells the model uses (the atlas's ablation_bits >= 0.002) that the variant explains.
Not timed: nothing else needs to be idle. The figures are in docs/atlas.md.
"""

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import charmodel  # noqa: E402
from charmodel.analysis import atlas, explain  # noqa: E402
from charmodel.analysis import replace as rp  # noqa: E402
from charmodel.analysis.ablate import layer_pass, rows_bpc  # noqa: E402
from charmodel.engine import LN2, Engine  # noqa: E402


class Variant:
    """One way of predicting every cell: predict(signals (n, C), chars (n,)) -> (n, N)."""

    def __init__(self, name, terms, weights, intercept, profile=None, signal_means=None, contexts=None,
                 context_profile=None):
        self.name, self.terms, self.weights, self.intercept = name, terms, weights, intercept
        self.profile, self.signal_means = profile, signal_means
        self.contexts, self.context_profile = contexts, context_profile  # the atlas's (K,) run codes, (N, K) corrections

    def predict(self, signals: np.ndarray, chars: np.ndarray, codes: np.ndarray) -> np.ndarray:
        out = np.broadcast_to(self.intercept.astype(np.float32), (len(chars), len(self.intercept))).copy()
        if self.profile is not None:
            out += self.profile[chars]
        if self.context_profile is not None:
            columns = explain.context_columns(self.contexts, codes)
            for level in range(columns.shape[1]):
                seen = columns[:, level] >= 0
                out[seen] += self.context_profile.T[columns[seen, level]]
        for k in range(self.terms.shape[1]):
            has = self.terms[:, k] >= 0
            j = np.where(has, self.terms[:, k], 0)
            s = signals[:, j] - (self.signal_means[chars][:, j] if self.signal_means is not None else 0)
            out += np.where(has, self.weights[:, k], 0).astype(np.float32) * s
        return out

    def count_terms(self) -> np.ndarray:
        return (self.terms >= 0).sum(axis=1) + (self.profile is not None)


def profile_variant(k, fit_x, fit_signals, fit_chars, held_n, candidates, V) -> Variant:
    metrics = np.array([c.metric for c in candidates])
    named = np.array([c.named for c in candidates])
    px, ps = explain.per_char_means(fit_x, fit_chars, V), explain.per_char_means(fit_signals, fit_chars, V)
    rx, rs = fit_x - px[fit_chars], fit_signals - ps[fit_chars]
    ok = explain.eligible(fit_signals, metrics, held_n) & (rs.std(axis=0) > 1e-6)
    r = explain.correlations(rx, rs)
    z, s_mean, s_sd = explain._standardised(rs)
    gram = (z.T.astype(np.float64) @ z) / len(z)
    terms, _ = explain.forward_select(r, gram, ok, named, max_terms=k)
    x_mean, x_sd = explain.moments(rx)
    weights, intercept = explain.least_squares(terms, r, gram, s_mean, s_sd, x_mean, x_sd)
    return Variant(f"profile+{k}", terms, weights, intercept, px, ps)


def report(variant, engine, found, candidates, held_x, held_signals, chars, codes, scored, scored_signals):
    a, U = found.arrays, engine.units
    predicted = variant.predict(held_signals, chars["held"], codes["held"])
    p, x = predicted - predicted.mean(0), held_x - held_x.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (p * x).sum(0) / np.sqrt((p * p).sum(0) * (x * x).sum(0))
    r = np.where(np.isfinite(r), r, np.nan)
    ok = np.isfinite(r) & (r >= 0.5)
    groups = np.array([candidates[j].group if j >= 0 else "current" for j in variant.terms[:, 0]])
    print(f"{variant.name}: median r {np.nanmedian(r):.3f}; explained {int(ok.sum())} of {len(r)}; terms per cell "
          f"{variant.count_terms().mean():.2f}; explained by first term's group "
          + ", ".join(f"{g} {int((ok & (groups == g)).sum())}" for g in explain.GROUPS), flush=True)
    on_text = variant.predict(scored_signals, chars["scored"], codes["scored"])  # (T, N)
    rp.predictions = lambda _, layer, kind, cells, text: on_text[:, (2 * layer + "hc".index(kind)) * U + cells]
    atlas_ok = np.isfinite(a["simulation_r"]) & (a["simulation_r"] >= 0.5)
    parts = [(layer, kind) for layer in range(engine.layers) for kind in "hc"]
    for label, chosen in (("its own explained cells", ok), ("the atlas's explained cells", atlas_ok)):
        sets = [(l, k, np.flatnonzero(chosen[(2 * l + "hc".index(k)) * U : (2 * l + "hc".index(k) + 1) * U]))
                for l, k in parts]
        model = rp.replace_cells(engine, found, scored, sets)["recovered"]
        each = [rp.replace_cells(engine, found, scored, [s])["recovered"] for s in sets]
        print(f"  {label}: recovered, all at once {model}; per layer and kind "
              + ", ".join(f"{l + 1} {k} {v}" for (l, k), v in zip(parts, each)), flush=True)
    # cell by cell: the cells the model uses that this variant explains
    ids = engine.vocab.encode(scored, "the text")
    base = float(-rp.logprobs(engine, ids)[0].mean() / LN2)
    kept = []
    for n, (layer, kind) in enumerate(parts):
        rows = np.arange(n * U, (n + 1) * U)
        cells = np.flatnonzero((a["ablation_bits"][rows] >= rp.MIN_ABLATION_BITS) & ok[rows])
        if not len(cells):
            continue
        means, below = layer_pass(engine, ids, layer, kind)
        held = rows_bpc(engine, ids, layer, kind, cells, lambda c, s, e: means[c][:, None], below)
        column = {int(c): i for i, c in enumerate(cells)}
        values = on_text[:, n * U + cells].T
        replaced = rows_bpc(engine, ids, layer, kind, cells, lambda c, s, e: values[[column[int(x)] for x in c], s:e, None],
                            below)
        kept += list((held - replaced) / (held - base))
    print(f"  cell by cell: {len(kept)} used cells explained; median recovered "
          f"{statistics.median(kept) if kept else float('nan'):.3f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "weights" / "alice"))
    p.add_argument("--terms", type=int, nargs="+", default=[2, 3], help="K of each profile+K variant")
    args = p.parse_args()
    run = charmodel.open_run(args.run)
    engine, found = Engine.load(run, "best"), atlas.load(run.path, "best")
    train, val = run.split()
    text = train + val
    samples = atlas.stream(engine, text, len(train))
    candidates = explain.library(train, engine.vocab.chars, "full")
    assert [c.name for c in candidates] == [c.name for c in found.candidates], "the atlas is of another grammar"
    fit_signals, held_signals = explain.signal_matrix(candidates, text, engine.vocab.chars, samples.fit, samples.held)
    scored = val[: found.meta["ablation_chars"]]
    scored_signals = explain.signal_matrix(candidates, scored, engine.vocab.chars, np.arange(len(scored)))
    ids = engine.vocab.encode(text, "the corpus")
    chars = {"fit": ids[samples.fit], "held": ids[samples.held], "scored": engine.vocab.encode(scored, "the text")}
    runs = explain.context_codes(ids, len(engine.vocab))
    codes = {"held": runs[samples.held], "scored": explain.context_codes(chars["scored"], len(engine.vocab))}
    a = found.arrays
    variants = [Variant("atlas", a["terms"].astype(int), a["weights"], a["intercept"], a["profile"].T,
                        contexts=found.meta["contexts"], context_profile=a["context_profile"].astype(np.float32))]
    variants += [profile_variant(k, samples.fit_x, fit_signals, chars["fit"], len(samples.held), candidates,
                                 len(engine.vocab)) for k in args.terms]
    for variant in variants:
        report(variant, engine, found, candidates, samples.held_x, held_signals, chars, codes, scored, scored_signals)


if __name__ == "__main__":
    main()
