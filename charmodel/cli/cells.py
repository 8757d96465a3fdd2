"""The studies of cells: rank them (cells), export them (lstmvis), ablate, probe, saliency, compare."""

import argparse
import json
from pathlib import Path

from charmodel.cli.common import (checkpoint, csv_flag, drop_arg, file_text, load_engine, open_run, percent_bar,
                                  run_args, text_of)
from charmodel.errors import CharModelError
from charmodel.numbering import layer_index, layer_number


def add_cells(sub) -> None:
    p = sub.add_parser("cells", help="rank cells by how well they track a hypothesis about the text")
    run_args(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--hypothesis", dest="feature", help="a built-in hypothesis; 'list' prints the names")
    what.add_argument("--feature", dest="feature", help=argparse.SUPPRESS)  # the old spelling
    what.add_argument("--regex", help="characters matched by this regular expression are 1 (multi-line: ^ and $ "
                                       "match at every line)")
    p.add_argument("--text-file", help="rank over this text instead of the validation split")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--json", action="store_true")
    drop_arg(p)
    p.set_defaults(command=cmd_cells)


def cmd_cells(args) -> int:
    from charmodel.analysis.cells import FEATURES, batched_activations, rank_cells, signal_for

    if args.feature == "list":
        for name, (description, _) in FEATURES.items():
            print(f"{name:14s} {description}")
        return 0
    if args.top < 1:
        raise CharModelError(f"--top must be at least 1, not {args.top}.")
    engine = load_engine(args)
    text = text_of(args, engine)
    signal = signal_for(text, args.feature, args.regex)  # bad feature or regex fails before the slow part
    if signal.dtype == bool and not 0 < signal.sum() < len(signal):
        raise CharModelError(f"the signal is constant over these {len(text)} characters (all 0 or all 1); "
                             "pick a longer or different text, or another hypothesis.")
    ranked = rank_cells(batched_activations(engine, text), signal, args.top)
    if args.json:
        print(json.dumps([{**{k: d[k] for k in ("kind", "cell", "score", "direction")},
                           "layer": layer_number(d["layer"])} for d in ranked]))
        return 0
    what = args.regex and f"regex {args.regex!r}" or FEATURES[args.feature][0]
    print(f"cells tracking {what} over {len(text)} characters ({'|r|' if ranked[0]['metric'] == 'r' else 'AUC'}):")
    for d in ranked:
        sign = "+" if d["direction"] > 0 else "-"
        print(f"  layer {layer_number(d['layer'])} {d['kind']} cell {d['cell']:4d}  {d['score']:.3f}  ({sign})")
    return 0


def add_lstmvis(sub) -> None:
    p = sub.add_parser("lstmvis", help="export h and c in LSTMVis's format (the files the Cells page's Export writes)")
    run_args(p)
    p.add_argument("--out", required=True, help="folder to write states.h5, train.h5, words.dict and lstm.yml into")
    p.add_argument("--text-file", help="export over this text instead of the validation split")
    p.add_argument("--layers", help="comma-separated layers, counted from 1 (default: all)")
    p.add_argument("--kinds", default="h,c", help="comma-separated, from h and c (default h,c)")
    p.add_argument("--unsigned", action="store_true",
                   help="positive and negative parts as separate cells (k and k + units), so LSTMVis can select "
                        "cells that are low where a pattern holds")
    drop_arg(p)
    p.set_defaults(command=cmd_lstmvis)


def cmd_lstmvis(args) -> int:
    import numpy as np

    from charmodel.analysis.cells import batched_activations
    from charmodel.analysis.study import export_lstmvis, export_size

    engine = load_engine(args)
    layers = [int(v) for v in csv_flag(args.layers, "--layers", list(range(1, engine.layers + 1)))] if args.layers \
        else list(range(1, engine.layers + 1))
    kinds = csv_flag(args.kinds, "--kinds", ["h", "c"])
    text = text_of(args, engine)
    engine.vocab.encode(text, "the text to export")  # names unknown characters before the slow part
    activations = batched_activations(engine, text, kinds=kinds, layers=[layer_index(n) for n in layers], dtype=np.float16)
    files = export_lstmvis(args.out, text, engine.vocab.chars, activations, name=Path(args.run).name, unsigned=args.unsigned)
    size = export_size(len(text), engine.units, len(activations), args.unsigned)
    print(f"wrote {', '.join(f.name for f in files)} to {args.out} ({len(text)} characters, "
          f"states.h5 {size / 2**20:.1f} MB)")
    return 0


def add_ablate(sub) -> None:
    p = sub.add_parser("ablate", help="what the model loses without a cell: bpc with the cell held at a value")
    run_args(p)
    p.add_argument("--layer", type=int, required=True, help="layer, counted from 1")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--cell", type=int, help="the cell to hold")
    which.add_argument("--sweep", action="store_true", help="every cell of the layer, one at a time, largest loss first")
    p.add_argument("--kind", choices=["h", "c"], default="h", help="h output (default) or c cell state")
    p.add_argument("--value", default="mean", help="mean (the cell's mean over the text; default), zero, or a number")
    p.add_argument("--chars", type=int, default=2000, help="characters of the validation text (default 2000)")
    p.add_argument("--text-file", help="a UTF-8 file to use instead of the validation text")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    drop_arg(p)
    p.set_defaults(command=cmd_ablate)


def cmd_ablate(args) -> int:
    from charmodel.analysis.ablate import ablate, sweep

    engine = load_engine(args)
    if args.chars < 2:
        raise CharModelError(f"--chars must be at least 2, not {args.chars}.")
    text = text_of(args, engine)[: args.chars]
    layer = layer_index(args.layer)
    if args.sweep:
        with percent_bar("sweep", args.quiet) as progress:
            from charmodel.engine import blas_threads, cores

            threads = blas_threads() if args.threads is not None else cores()  # the sweep's alone: every core
            rows = sweep(engine, text, layer, args.kind, args.value, progress=progress, blas_threads=threads)
        if args.json:
            print(json.dumps(rows))
        else:
            print(f"layer {args.layer} {args.kind}, each cell held at its {args.value} over {len(text)} characters; "
                  "largest loss first (bits per character):")
            for d in rows:
                print(f"  cell {d['cell']:4d}  {d['delta']:+.4f}")
        return 0
    result = ablate(engine, text, layer, args.kind, args.cell, args.value)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"layer {args.layer} {args.kind} cell {args.cell} held at {result['values'][0]:+.4f} ({args.value}) over "
          f"{len(text)} characters: {result['bpc']:.4f} -> {result['bpc_ablated']:.4f} bits per character "
          f"({result['delta']:+.4f})")
    for label in ("drops", "gains"):
        if result[label]:
            print(f"  next characters that {label[:-1]} most: " +
                  ", ".join(f"{d['char']!r} {d['change']:+.3f} nats (x{d['count']})" for d in result[label]))
    return 0


def add_probe(sub) -> None:
    p = sub.add_parser("probe", help="sparse probes: held-out AUC against the number of cells that carry a hypothesis")
    run_args(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--hypothesis", dest="feature", help="a built-in yes/no hypothesis (cells --hypothesis list)")
    what.add_argument("--feature", dest="feature", help=argparse.SUPPRESS)  # the old spelling, as in cells
    what.add_argument("--regex", help="characters matched by this regular expression are 1 (multi-line)")
    what.add_argument("--explanation", help="one term of an atlas explanation, as `atlas --list` prints it, e.g. \"inside ( … )\" "
                           "(its sign may stay)")
    p.add_argument("--layers", help="comma-separated layers, counted from 1 (default: all)")
    p.add_argument("--kinds", default="h,c", help="comma-separated, from h and c (default h,c)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(command=cmd_probe)


def cmd_probe(args) -> int:
    from charmodel.analysis.cells import FEATURES, SCALAR, regex_signal
    from charmodel.analysis.probe import FIT_CHARS, probe

    engine = load_engine(args)
    layers = [layer_index(int(v)) for v in csv_flag(args.layers, "--layers", list(range(1, engine.layers + 1)))] \
        if args.layers else None
    kinds = csv_flag(args.kinds, "--kinds", ["h", "c"])
    train, val = open_run(args).split()
    if args.feature is not None:
        if args.feature not in FEATURES or args.feature in SCALAR:
            yes_no = [n for n in FEATURES if n not in SCALAR]
            raise CharModelError(f"a probe needs a yes/no hypothesis; choose one of: {', '.join(yes_no)}.")
        signal_of, what = FEATURES[args.feature][1], FEATURES[args.feature][0]
    elif args.regex is not None:
        regex_signal(args.regex, "")  # a bad pattern fails before the slow part
        signal_of, what = (lambda text: regex_signal(args.regex, text)), f"regex {args.regex!r}"
    else:
        from charmodel.analysis import candidates, explain

        terms = explain.term_phrases(args.explanation)
        if len(terms) > 1:
            raise CharModelError(f"{args.explanation!r} has {len(terms)} terms; a probe reads one yes/no term: give one "
                                 f"of {', '.join(repr(t) for t in terms)}.")
        found = candidates.from_phrase(terms[0], train, engine.vocab.chars)
        if found is None or found.metric != "auc":
            raise CharModelError(f"{terms[0]!r} is not a yes/no term of this run's atlas grammar; copy one term of an "
                                 "explanation that `python -m charmodel atlas --run RUN --list` prints.")
        signal_of = lambda text: candidates.signal(found, text, candidates.masks(text, engine.vocab.chars))
        what = args.explanation
    with percent_bar("probes", args.quiet) as progress:
        result = probe(engine, train, val, signal_of, layers, kinds, progress=progress)
    for d in [result["single"], *result["chosen"]["cells"]]:
        d["layer"] = layer_number(d["layer"])
    if args.json:
        print(json.dumps(result))
        return 0
    s = result["single"]
    print(f"probes for {what} (fit on the last {min(len(train), FIT_CHARS)} training characters, AUC on the validation text):")
    print(f"  best single cell: layer {s['layer']} {s['kind']} cell {s['cell']}, AUC {s['auc']:.3f}")
    for d in result["curve"]:
        print(f"  C {d['C']:<9g} {d['cells']:5d} cells  AUC {d['auc']:.3f}")
    chosen = result["chosen"]
    print(f"chosen: C {chosen['C']:g}, {len(chosen['cells'])} cells, AUC {chosen['auc']:.3f}: " +
          ", ".join(f"layer {d['layer']} {d['kind']} {d['cell']} ({d['weight']:+.2f})" for d in chosen["cells"][:20]) +
          (" ..." if len(chosen["cells"]) > 20 else ""))
    return 0


def add_saliency(sub) -> None:
    p = sub.add_parser("saliency", help="which earlier characters drive a cell's value, or the next character's probability")
    run_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the text itself")
    src.add_argument("--text-file", help="a UTF-8 file holding the text")
    p.add_argument("--position", type=int, required=True, help="the character whose value is explained (from 0)")
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--cell", type=int, help="explain this cell's value (with --layer and --kind)")
    goal.add_argument("--next-char", action="store_true", help="explain the log-probability of the next character")
    p.add_argument("--layer", type=int, default=1, help="layer, counted from 1 (default 1)")
    p.add_argument("--kind", choices=["h", "c"], default="h")
    p.add_argument("--method", choices=["occlusion", "gxi", "ig"], default="occlusion",
                   help="occlusion (default: passes the latched-cell check), gradient x input, or integrated gradients")
    p.add_argument("--window", type=int, default=None,
                   help="characters up to and including the position (default 200, or the whole text if shorter)")
    p.add_argument("--json", action="store_true")
    drop_arg(p)
    p.set_defaults(command=cmd_saliency)


def cmd_saliency(args) -> int:
    from charmodel.analysis.saliency import attribute

    engine = load_engine(args)
    if args.text_file:
        text = file_text(args)
    else:
        text = args.text
    text = engine.vocab.drop_unknown(text) if args.drop_unknown else text
    target = {"next": True} if args.next_char else {"layer": layer_index(args.layer), "kind": args.kind, "cell": args.cell}
    result = attribute(engine, text, args.position, target, args.method, args.window,
                       corpus=open_run(args).split()[0])
    if args.json:
        print(json.dumps(result))
        return 0
    what = f"the log-probability of {text[args.position + 1]!r} next" if args.next_char else \
        f"layer {args.layer} {args.kind} cell {args.cell}"
    print(f"{what} at position {args.position} ({text[args.position]!r}) = {result['target']:+.4f}; "
          f"{args.method} over characters {result['start']}–{args.position}, most influential first:")
    order = sorted(range(len(result["scores"])), key=lambda j: -abs(result["scores"][j]))
    for j in order[:15]:
        at = result["start"] + j
        print(f"  #{at:<6d} {text[at]!r:6s} {result['scores'][j]:+.4f}   ...{text[max(0, at - 12) : at + 1]!r}")
    if "completeness" in result:
        print(f"integrated gradients completeness error: {result['completeness']:+.5f}")
    return 0


def add_compare(sub) -> None:
    p = sub.add_parser("compare", help="two checkpoints of a run: layer similarity (linear CKA) and the cells that changed")
    run_args(p)
    p.add_argument("--with", dest="other", required=True, help="the checkpoint to compare with (best, latest, or an epoch)")
    p.add_argument("--top", type=int, default=10, help="cells listed (default 10)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(command=cmd_compare)


def cmd_compare(args) -> int:
    from charmodel.analysis import atlas
    from charmodel.analysis.compare import CKA_CHARS, changed_cells, layer_similarity
    from charmodel.engine import Engine

    first = checkpoint(args)
    a, b = Engine.load(args.run, first), Engine.load(args.run, args.other)
    text = open_run(args).split()[1][:CKA_CHARS]
    similarity = layer_similarity(a, b, text)
    cells, missing = None, []
    for which in (first, args.other):
        if not atlas.atlas_path(args.run, which).is_file():
            missing.append(atlas.build_command(args.run, which))
    if not missing:
        cells = changed_cells(atlas.load(args.run, first), atlas.load(args.run, args.other), args.top)
    if args.json:
        shown = lambda rows: [{**r, "layer": layer_number(r["layer"])} for r in rows]
        print(json.dumps({"checkpoints": [first, args.other], "chars": len(text), "similarity": shown(similarity),
                          "cells": None if cells is None else shown(cells)}))
        return 0
    print(f"checkpoint {first} against {args.other}, linear CKA over {len(text)} validation characters (1: the same "
          "up to a rotation and scale):")
    for d in similarity:
        print(f"  layer {layer_number(d['layer'])} {d['kind']}: {d['cka']:.3f}")
    if cells is None:
        print("cells: the comparison of explanations needs both atlases; build them with: " + "; ".join(missing))
        return 0
    print("cells whose best explanation's held-out score moved most:")
    for d in cells:
        fmt = lambda v: "  -  " if v is None else f"{v:.3f}"
        print(f"  layer {layer_number(d['layer'])} {d['kind']} cell {d['cell']:4d}: {fmt(d['score_before'])} "
              f"{d['before']!s}  ->  {fmt(d['score_after'])} {d['after']!s}")
    return 0


COMMANDS = (add_cells, add_lstmvis, add_ablate, add_probe, add_saliency, add_compare)
