"""atlas: explain every cell of a run (build), list the explanations, or simulate one cell."""

import json

from charmodel.cli.common import (check_cell, checkpoint, drop_arg, given_text, load_engine, open_run, percent_bar,
                                  run_args)
from charmodel.errors import CharModelError
from charmodel.numbering import layer_index, layer_number


def add_atlas(sub) -> None:
    p = sub.add_parser("atlas", help="explain every cell of a run: build its atlas file, or --list it")
    run_args(p)
    p.add_argument("--list", action="store_true", help="print every cell's explanation from the atlas file")
    p.add_argument("--min-score", type=float, default=None, help="with --list: only cells whose phrase's "
                   "held-out r (phrase_r) is at least this")
    p.add_argument("--simulate", action="store_true", help="what one cell's phrase predicts over a text, beside "
                   "its background and the cell's own values (with --layer, --kind, --cell and --text or --text-file)")
    p.add_argument("--replace", action="store_true", help="every explained cell (of --layer and --kind, else of "
                   "every layer and kind) held at its mean, replaced by its background (the last three characters), "
                   "by its phrase, and by both: what the phrases win back of what the model knows beyond three "
                   "characters")
    p.add_argument("--weighted", action="store_true", help="with --replace: instead, the share of what single cells "
                   "carry (each held at its mean alone, as the atlas stores it) that sits in explained cells")
    p.add_argument("--min-r", type=float, default=None, help="with --replace: the phrase r from which a cell "
                   "counts as explained (default 0.5)")
    p.add_argument("--chars", type=int, default=None, help="with --replace: validation characters scored "
                   "(default 2000)")
    p.add_argument("--layer", type=int, default=None, help="with --simulate or --replace: layer, counted from 1")
    p.add_argument("--kind", choices=["h", "c"], default=None, help="with --simulate or --replace: h output or c "
                   "cell state")
    p.add_argument("--cell", type=int, default=None, help="with --simulate: the cell")
    p.add_argument("--text", default=None, help="with --simulate: the text itself")
    p.add_argument("--text-file", default=None, help="with --simulate: a UTF-8 file holding the text")
    drop_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON value: the build's summary, or the --list rows")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(command=cmd_atlas)


def cmd_atlas(args) -> int:
    from charmodel.analysis import atlas, explain

    run = open_run(args)
    chosen = checkpoint(args)
    if args.min_score is not None and not args.list:
        raise CharModelError("--min-score filters --list; add --list, or leave it out to build the atlas.")
    cell_flags = [f for f, v in (("--layer", args.layer), ("--kind", args.kind), ("--cell", args.cell),
                                 ("--text", args.text), ("--text-file", args.text_file)) if v is not None]
    if args.simulate:
        return _simulate(args, chosen)
    if args.replace:
        return _replace(args, chosen)
    stray = [f for f, v in (("--min-r", args.min_r), ("--chars", args.chars), ("--weighted", args.weighted or None))
             if v is not None]
    if stray:
        raise CharModelError(f"{stray[0]} goes with --replace; add --replace, or leave it out.")
    if cell_flags:
        raise CharModelError(f"{cell_flags[0]} goes with --simulate; add --simulate, or leave it out.")
    if args.list:
        found = atlas.load(run.path, chosen)
        rows = found.cells()
        if args.min_score is not None:
            rows = [r for r in rows if r["phrase_r"] is not None and r["phrase_r"] >= args.min_score]
        if args.json:
            print(json.dumps([{"layer": layer_number(r["layer"]), **{k: r[k] for k in
                              ("kind", "cell", "explanation", "phrase_r", "context_r", "beyond_r", "auc", "terms",
                               "direction", "group", "ablation_bits", "recovered")}}
                              for r in rows]))
            return 0
        number = lambda v, form, blank: blank if v is None else format(v, form)
        print("phrase: the phrase's held-out r (the score); beyond: what it tells beyond the last three characters; "
              "context: what those already tell")
        for r in rows:
            print(f"layer {layer_number(r['layer'])} {r['kind']} cell {r['cell']:4d}  phrase "
                  f"{number(r['phrase_r'], '+.3f', '  -   ')}  beyond {number(r['beyond_r'], '+.3f', '  -   ')}  "
                  f"context {number(r['context_r'], '+.3f', '  -   ')}  ablation "
                  f"{number(r['ablation_bits'], '+.4f', '   -   ')}  kept {number(r['recovered'], '4.0%', '  - ')}  "
                  f"{r['explanation']}")
        print("In all: " + "; ".join(line for line in (weighted_line(found, explain.EXPLAINED_R), replacement_line(found))
                                     if line) + ".")
        return 0
    run.checkpoint(chosen)  # a bad checkpoint name fails before the slow part
    from charmodel.engine import blas_threads, cores

    threads = blas_threads() if args.threads is not None else cores()  # the ablations' batches: every core, as ablate's
    with percent_bar("atlas", args.quiet) as progress:
        path = atlas.build_for_run(run, chosen, progress=lambda fraction, stage: progress(fraction), blas_threads=threads)
    built = atlas.load(run.path, chosen)
    summary = {**built.coverage(), "seconds": built.meta["seconds"], "bytes": path.stat().st_size, "file": str(path)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['explained']} of {summary['cells']} cells explained (their phrase's held-out r >= "
              f"{explain.EXPLAINED_R}; median phrase r {summary['median_phrase_r']}); beyond the last three "
              f"characters: median r {summary['median_beyond_r']}, {summary['beyond_half']} cells >= "
              f"{explain.EXPLAINED_R}; what those three characters already tell: median r "
              f"{summary['median_context_r']}")
        for part, d in summary["by_layer_kind"].items():
            print(f"  {part}: {d['explained']} of {d['cells']}")
        print("  by the group of their phrase's first term: " +
              ", ".join(f"{g} {n}" for g, n in summary["by_group"].items()))
        for line in (weighted_line(built, explain.EXPLAINED_R), replacement_line(built)):
            if line:
                print(f"  {line}")
        print(f"wrote {path} ({summary['bytes'] / 2**20:.1f} MB) in {summary['seconds']:.0f} s")
    return 0


def weighted_line(found, min_r: float) -> str:
    """'explains N of M cells ..., holding X% of what single cells carry (...)', from the atlas file."""
    import numpy as np

    from charmodel.analysis.atlas import weighted_coverage

    r = found.arrays["phrase_r"]
    w = weighted_coverage(found.arrays["ablation_bits"], r, min_r)
    explains = f"explains {int((np.isfinite(r) & (r >= min_r)).sum()):,} of {len(r):,} cells (phrase r >= {min_r:g})"
    if not found.meta["ablation_chars"]:
        return (f"{explains}; what single cells carry is not measured in a windowed model's atlas (each character "
                "has its own window pass; `ablate --sweep` measures one layer)")
    share = "-" if w["weighted_coverage"] is None else f"{w['weighted_coverage']:.0%}"
    return (f"{explains}, holding {share} of what single cells carry ({w['ablation_bits_explained']:.4f} of "
            f"{w['ablation_bits']:.4f} bits per character, each cell held at its mean alone over "
            f"{found.meta['ablation_chars']:,} validation characters)")


def replacement_line(found) -> str | None:
    """'the phrases win back X% of what the model knows beyond three characters ...', from the atlas file."""
    r = (found.meta.get("replacement") or {}).get("model")
    return None if not r else replacement_sentence(r)


def replacement_sentence(r: dict) -> str:
    """replace.replace_cells' figures in words."""
    share = lambda v: "-" if v is None else f"{v:.0%}"
    return (f"the {r['cells']:,} explained cells replaced all at once by their backgrounds plus their phrases win back "
            f"{share(r['beyond_context'])} of what the model knows beyond three characters ({r['bpc']:.4f} bpc as it "
            f"is; {r['bpc_context']:.4f} by the last three characters alone; {r['bpc_both']:.4f} with the phrases); "
            f"by their phrases alone it reads {r['bpc_phrase']:.4f} against {r['bpc_means']:.4f} held at their "
            f"means ({share(r['recovered'])} recovered)")


def _replace(args, checkpoint: str) -> int:
    """atlas --replace: explained cells held at their means, and replaced by their explanations."""
    from charmodel.analysis import atlas, explain
    from charmodel.analysis.replace import REPLACE_CHARS, cell_sentence, replace, replace_cell

    others = [f for f, v in (("--text", args.text), ("--text-file", args.text_file), ("--list", args.list or None))
              if v is not None]
    if others:
        raise CharModelError(f"{others[0]} does not go with --replace; it scores explained cells on the validation "
                             "text.")
    if (args.layer is None) != (args.kind is None) or args.cell is not None and args.layer is None:
        raise CharModelError("--replace takes --layer and --kind together (one layer and kind, or with --cell one "
                             "cell), or neither (the model).")
    chars = REPLACE_CHARS if args.chars is None else args.chars
    if chars < 2:
        raise CharModelError(f"--chars must be at least 2, not {chars}.")
    found = atlas.load(args.run, checkpoint)  # a missing or stale atlas fails before the engine loads
    min_r = explain.EXPLAINED_R if args.min_r is None else args.min_r
    if args.weighted:
        if args.layer is not None or args.chars is not None:
            flag = "--chars" if args.chars is not None else "--layer, --kind and --cell"
            raise CharModelError(f"--weighted reads every cell's ablation from the atlas; leave out {flag}.")
        result = atlas.weighted_coverage(found.arrays["ablation_bits"], found.arrays["phrase_r"], min_r)
        print(json.dumps(result) if args.json else weighted_line(found, min_r))
        return 0
    engine = load_engine(args)
    parts = None
    if args.layer is not None:
        check_cell(args, engine)
        parts = [(layer_index(args.layer), args.kind)]
    text = open_run(args).split()[1][:chars]
    if args.cell is not None:
        if not found.terms(found.index(layer_index(args.layer), args.kind, args.cell)):
            raise CharModelError(f"layer {args.layer} {args.kind} cell {args.cell} has no explanation to replace it by.")
        result = replace_cell(engine, found, text, layer_index(args.layer), args.kind, args.cell)
        if args.json:
            print(json.dumps(result))
        else:
            print(f"layer {args.layer} {args.kind} cell {args.cell}: " + cell_sentence(result["ablation_bits"],
                                                                                  result["recovered"], True))
        return 0
    with percent_bar("replace", args.quiet) as progress:
        result = replace(engine, found, text, parts, min_r, progress=progress)
    if args.json:
        print(json.dumps(result))
        return 0
    what = f"layer {args.layer} {args.kind}" if parts else "every layer and kind"
    print(f"{result['cells']} explained cells of {what} (phrase r >= {min_r:g}), over {len(text)} validation "
          f"characters:")
    print(f"  {replacement_sentence(result)}")
    return 0


def _simulate(args, checkpoint: str) -> int:
    """atlas --simulate: the explanation's prediction and the cell's own values over a text."""
    import numpy as np

    from charmodel.analysis import atlas
    from charmodel.engine import inspect

    missing = [f for f, v in (("--layer", args.layer), ("--kind", args.kind), ("--cell", args.cell)) if v is None]
    if missing:
        raise CharModelError(f"--simulate needs {', '.join(missing)}: which cell to simulate.")
    if (args.text is None) == (args.text_file is None):
        raise CharModelError("--simulate needs the text: give --text or --text-file (one of them).")
    found = atlas.load(args.run, checkpoint)  # a missing or stale atlas fails before the engine loads
    engine = load_engine(args)
    check_cell(args, engine)
    text = given_text(args, engine)
    layer = layer_index(args.layer)
    row = found.index(layer, args.kind, args.cell)
    terms = found.terms(row)
    simulated = found.simulate(layer, args.kind, args.cell, text)
    context = found.simulate(layer, args.kind, args.cell, text, "context")
    actual = inspect(engine, text, record=(args.kind,), layers=[layer]).values(layer, args.kind)[:, args.cell]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = float(np.corrcoef(simulated, actual)[0, 1]) if len(text) > 1 else float("nan")
    out = {"layer": args.layer, "kind": args.kind, "cell": args.cell,
           "explanation": found.phrase(terms), "terms": terms, "chars": list(text),
           "simulated": np.round(simulated, 6).tolist(), "context": np.round(context, 6).tolist(),
           "actual": actual.astype(np.float64).round(6).tolist(), "r": None if not np.isfinite(r) else round(r, 4)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"layer {args.layer} {args.kind} cell {args.cell}: {out['explanation']}")
        print(f"r between simulated and actual over {len(text)} characters: {out['r']}")
        for ch, s_, a in zip(text, out["simulated"], out["actual"]):
            print(f"{ch!r}\t{s_:+.4f}\t{a:+.4f}")
    return 0


COMMANDS = (add_atlas,)
