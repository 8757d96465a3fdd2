"""generate, evaluate and inspect: what the model writes, how well it predicts, one cell's values."""

import json
import sys

from charmodel.cli.common import check_cell, drop_arg, given_text, load_engine, old_text_flag, run_args, text_file
from charmodel.engine import SEED, TEMPERATURE
from charmodel.numbering import layer_index


def add_generate(sub) -> None:
    p = sub.add_parser("generate", help="sample text from a run")
    run_args(p)
    p.add_argument("--length", type=int, default=300, help="new characters per sample")
    p.add_argument("--temperature", type=float, default=TEMPERATURE, help="0 is greedy; higher is more random")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--prime", default="", help="text to start from (default: a newline)")
    p.add_argument("--samples", type=int, default=1, help="how many samples, generated as one batch")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely characters")
    drop_arg(p)
    p.set_defaults(command=cmd_generate)


def cmd_generate(args) -> int:
    from charmodel.engine.sampling import generate

    engine = load_engine(args)
    prime = engine.vocab.drop_unknown(args.prime) if args.drop_unknown else args.prime
    texts = generate(engine, prime, args.length, args.temperature, args.seed, args.top_k, args.samples)
    for n, text in enumerate(texts):
        if n:
            print("-" * 40)
        print(prime + text)
    return 0


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="bits per character on the validation split or a given text")
    run_args(p)
    p.add_argument("--text-file", help="a UTF-8 file to score instead of the validation split")
    old_text_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument("--window", default=None, help="score character t from a zero state over the W characters before "
                                                  "it, leaving out the first W (default: the run's own window, if any)")
    drop_arg(p)
    p.set_defaults(command=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from tqdm import tqdm

    from charmodel.engine.scoring import MIN_BASELINE_CHARS, evaluate

    bars = []  # made at the first progress call, so a mistake found before scoring prints only its line

    def progress(done, total):
        if not bars:
            bars.append(tqdm(total=total, unit="char", unit_scale=True, desc="scoring", file=sys.stderr,
                             disable=args.quiet, leave=False))
        bars[0].update(done - bars[0].n)

    try:
        result = evaluate(args.run, text_file(args), args.checkpoint, progress=progress, drop_unknown=args.drop_unknown,
                          window=args.window)
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        print(json.dumps(result))
    else:
        if result["window"]:
            print(f"{result['bpc']:.4f} bits per character from windows of {result['window']} characters over "
                  f"{result['chars']} characters ({result['source']}; "
                  + ("the first windows padded, as the model's own were)" if result["padded"] else
                     f"the first {result['window']} left out)"))
        else:
            print(f"{result['bpc']:.4f} bits per character over {result['chars']} characters ({result['source']})")
        if result["stateful_bpc"] is not None:
            print(f"{result['stateful_bpc']:.4f} bits per character stateful (the state carried through the whole "
                  "text, which a model trained on windows may not support)")
        for name, bpc in result["baselines"].items():  # gzip, bz2, lzma, 3-gram, 5-gram
            print(f"  {name:6s} {bpc:.4f} bpc")
        if not result["baselines"]:
            print(f"  (no compressor baselines: under {MIN_BASELINE_CHARS} characters they measure the compressor's "
                  "own overhead; the n-gram baselines are left out with them)")
    return 0


def add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="per-character values of one cell (or all of a layer) for a text")
    run_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the text itself")
    src.add_argument("--text-file", help="a UTF-8 file holding the text")
    p.add_argument("--layer", type=int, default=1, help="layer, counted from 1 (default 1)")
    p.add_argument("--cell", type=int, default=None, help="cell index (default: all cells of the layer)")
    p.add_argument("--kind", choices=["h", "c", "i", "f", "g", "o"], default="h",
                   help="h output, c cell state, or gate i, f, g (candidate), o")
    p.add_argument("--json", action="store_true")
    drop_arg(p)
    p.set_defaults(command=cmd_inspect)


def cmd_inspect(args) -> int:
    import numpy as np

    from charmodel.engine import inspect

    engine = load_engine(args)
    text = given_text(args, engine)
    check_cell(args, engine)
    layer = layer_index(args.layer)
    values = inspect(engine, text, record=(args.kind,), layers=[layer]).values(layer, args.kind)  # (T, units)
    if args.cell is not None:
        values = values[:, args.cell]
    if args.json:
        print(json.dumps({"layer": args.layer, "cell": args.cell, "kind": args.kind, "chars": list(text),
                          "values": values.astype(np.float64).round(6).tolist()}))  # no float32 noise
    else:
        for ch, v in zip(text, values):
            shown = f"{v:+.4f}" if args.cell is not None else " ".join(f"{x:+.3f}" for x in v)
            print(f"{ch!r}\t{shown}")
    return 0


COMMANDS = (add_generate, add_evaluate, add_inspect)
