"""Command line: python -m charmodel {train,generate,evaluate,inspect,cells,lstmvis,atlas,ablate,probe,saliency,compare,export,import} ...

A user mistake prints one line on stderr and exits with status 2; programming errors still crash
with a traceback, because those are bugs to fix.
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from .corpus import LARGEST_BYTES, MAX_BYTES
from .engine import layer_index, layer_number
from .errors import CharModelError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, status 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _run_args(parser) -> None:
    """The run to read and which of its checkpoints: shared by every subcommand but train."""
    parser.add_argument("--run", required=True, help="run folder, for example weights/alice")
    parser.add_argument("--checkpoint", default=None, help="best, latest, or a kept epoch number (default: best)")
    parser.add_argument("--threads", default=None, metavar="N",
                        help="BLAS threads for the engine's loops (default: $CHARMODEL_THREADS, else 1; more is faster "
                             "on a machine this command has to itself)")


def _parser() -> argparse.ArgumentParser:
    from . import settings
    from .sample import SEED, TEMPERATURE

    p = _Parser(prog="python -m charmodel", description="Train a character-level LSTM and see what its cells learned.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a run (or continue one with --resume)")
    t.add_argument("--text-file", help="UTF-8 corpus file (required for a new run)")
    _old_text_flag(t)
    t.add_argument("--run", required=True, help="run folder, for example weights/alice")
    t.add_argument("--resume", action="store_true", help="continue the run after its last finished epoch")
    settings.add_flags(t)  # one flag per training setting (charmodel/settings.py)
    t.add_argument("--max-mb", type=float, default=MAX_BYTES / 2**20,
                   help="refuse corpus files larger than this, in MiB (default 50, at most 1024); the corpus streams "
                        "from disk as memory-mapped ids, so a large one costs about its size in memory")

    g = sub.add_parser("generate", help="sample text from a run")
    _run_args(g)
    g.add_argument("--length", type=int, default=300, help="new characters per sample")
    g.add_argument("--temperature", type=float, default=TEMPERATURE, help="0 is greedy; higher is more random")
    g.add_argument("--seed", type=int, default=SEED)
    g.add_argument("--prime", default="", help="text to start from (default: a newline)")
    g.add_argument("--samples", type=int, default=1, help="how many samples, generated as one batch")
    g.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely characters")
    _drop_arg(g)

    e = sub.add_parser("evaluate", help="bits per character on the validation split or a given text")
    _run_args(e)
    e.add_argument("--text-file", help="a UTF-8 file to score instead of the validation split")
    _old_text_flag(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    e.add_argument("--window", default=None, help="score character t from a zero state over the W characters before "
                                                  "it, leaving out the first W (default: the run's own window, if any)")
    _drop_arg(e)

    i = sub.add_parser("inspect", help="per-character values of one cell (or all of a layer) for a text")
    _run_args(i)
    src = i.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the text itself")
    src.add_argument("--text-file", help="a UTF-8 file holding the text")
    i.add_argument("--layer", type=int, default=1, help="layer, counted from 1 (default 1)")
    i.add_argument("--cell", type=int, default=None, help="cell index (default: all cells of the layer)")
    i.add_argument("--kind", choices=["h", "c", "i", "f", "g", "o"], default="h",
                   help="h output, c cell state, or gate i, f, g (candidate), o")
    i.add_argument("--json", action="store_true")
    _drop_arg(i)

    c = sub.add_parser("cells", help="rank cells by how well they track a hypothesis about the text")
    _run_args(c)
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("--hypothesis", dest="feature", help="a built-in hypothesis; 'list' prints the names")
    what.add_argument("--feature", dest="feature", help=argparse.SUPPRESS)  # the old spelling
    what.add_argument("--regex", help="characters matched by this regular expression are 1 (multi-line: ^ and $ "
                                       "match at every line)")
    c.add_argument("--text-file", help="rank over this text instead of the validation split")
    c.add_argument("--top", type=int, default=5)
    c.add_argument("--json", action="store_true")
    _drop_arg(c)
    x = sub.add_parser("lstmvis", help="export h and c in LSTMVis's format (the files the Cells page's Export writes)")
    _run_args(x)
    x.add_argument("--out", required=True, help="folder to write states.h5, train.h5, words.dict and lstm.yml into")
    x.add_argument("--text-file", help="export over this text instead of the validation split")
    x.add_argument("--layers", help="comma-separated layers, counted from 1 (default: all)")
    x.add_argument("--kinds", default="h,c", help="comma-separated, from h and c (default h,c)")
    x.add_argument("--unsigned", action="store_true",
                   help="positive and negative parts as separate cells (k and k + units), so LSTMVis can select "
                        "cells that are low where a pattern holds")
    _drop_arg(x)

    b = sub.add_parser("ablate", help="what the model loses without a cell: bpc with the cell held at a value")
    _run_args(b)
    b.add_argument("--layer", type=int, required=True, help="layer, counted from 1")
    which = b.add_mutually_exclusive_group(required=True)
    which.add_argument("--cell", type=int, help="the cell to hold")
    which.add_argument("--sweep", action="store_true", help="every cell of the layer, one at a time, largest loss first")
    b.add_argument("--kind", choices=["h", "c"], default="h", help="h output (default) or c cell state")
    b.add_argument("--value", default="mean", help="mean (the cell's mean over the text; default), zero, or a number")
    b.add_argument("--chars", type=int, default=2000, help="characters of the validation text (default 2000)")
    b.add_argument("--text-file", help="a UTF-8 file to use instead of the validation text")
    b.add_argument("--json", action="store_true")
    b.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    _drop_arg(b)

    q = sub.add_parser("probe", help="sparse probes: held-out AUC against the number of cells that carry a hypothesis")
    _run_args(q)
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--hypothesis", dest="feature", help="a built-in yes/no hypothesis (cells --hypothesis list)")
    what.add_argument("--feature", dest="feature", help=argparse.SUPPRESS)  # the old spelling, as in cells
    what.add_argument("--regex", help="characters matched by this regular expression are 1 (multi-line)")
    what.add_argument("--explanation", help="one term of an atlas explanation, as `atlas --list` prints it, e.g. \"inside ( … )\" "
                           "(its sign may stay)")
    q.add_argument("--layers", help="comma-separated layers, counted from 1 (default: all)")
    q.add_argument("--kinds", default="h,c", help="comma-separated, from h and c (default h,c)")
    q.add_argument("--json", action="store_true")
    q.add_argument("--quiet", action="store_true", help="no progress bar on stderr")

    z = sub.add_parser("saliency", help="which earlier characters drive a cell's value, or the next character's probability")
    _run_args(z)
    src = z.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the text itself")
    src.add_argument("--text-file", help="a UTF-8 file holding the text")
    z.add_argument("--position", type=int, required=True, help="the character whose value is explained (from 0)")
    goal = z.add_mutually_exclusive_group(required=True)
    goal.add_argument("--cell", type=int, help="explain this cell's value (with --layer and --kind)")
    goal.add_argument("--next-char", action="store_true", help="explain the log-probability of the next character")
    z.add_argument("--layer", type=int, default=1, help="layer, counted from 1 (default 1)")
    z.add_argument("--kind", choices=["h", "c"], default="h")
    z.add_argument("--method", choices=["occlusion", "gxi", "ig"], default="occlusion",
                   help="occlusion (default: passes the latched-cell check), gradient x input, or integrated gradients")
    z.add_argument("--window", type=int, default=None,
                   help="characters up to and including the position (default 200, or the whole text if shorter)")
    z.add_argument("--json", action="store_true")
    _drop_arg(z)

    m = sub.add_parser("compare", help="two checkpoints of a run: layer similarity (linear CKA) and the cells that changed")
    _run_args(m)
    m.add_argument("--with", dest="other", required=True, help="the checkpoint to compare with (best, latest, or an epoch)")
    m.add_argument("--top", type=int, default=10, help="cells listed (default 10)")
    m.add_argument("--json", action="store_true")

    ex = sub.add_parser("export", help="a run folder as one zip archive, to carry to another machine; or, with "
                                       "--format keras, its model as a Keras 3 .keras file")
    ex.add_argument("--run", required=True, help="run folder, for example weights/alice")
    ex.add_argument("--out", required=True, help="the file to write: a .zip, or a .keras with --format keras")
    ex.add_argument("--format", choices=("archive", "keras"), default="archive",
                    help="archive (default): the run folder as a zip; keras: the model (ids in, next-character "
                         "probabilities out), with its characters in OUT's name .chars.json")
    ex.add_argument("--checkpoint", default=None, help="with --format keras: best, latest, or a kept epoch (default: best)")
    ex.add_argument("--with-checkpoints", action="store_true", help="include the kept epochs")
    im = sub.add_parser("import", help="a run archive, or a Keras char-LSTM (.keras or .h5), as a run in the weights "
                                       "folder (checked, all or nothing; a Keras file's code is never run)")
    im.add_argument("archive", metavar="FILE", help="a zip written by `export`, or a Keras .keras / .h5 model "
                                                    "(told apart by content)")
    im.add_argument("--name", help="import under this name instead of the archive's (required for a Keras file)")
    im.add_argument("--chars", default=None, help="Keras file: a JSON list of the model's characters in index order")
    im.add_argument("--vocab-from", default=None, help="Keras file: the text the model was trained on; its sorted set "
                                                       "of characters is the vocabulary, as the post built it")
    im.add_argument("--corpus", default=None, help="Keras file: the text the run shows and explains (default: the "
                                                   "--vocab-from text)")
    im.add_argument("--input", default=None, help="Keras file: embedding, onehot or scalar (index / vocabulary size); "
                                                  "default: read from the model")
    im.add_argument("--window", default=None, help="Keras file: the model was trained on windows of W characters from "
                                                   "a zero state (default: the model's fixed input length, if any)")
    im.add_argument("--lowercase", action="store_true", help="Keras file: the model saw its text lowercased, as the "
                                                              "post did; lowercase --vocab-from and --corpus")
    im.add_argument("--config", default=None, help="Keras file: the architecture (model.to_json()) for a weights-only "
                                                   ".h5")
    im.add_argument("--into", default=os.environ.get("CHARMODEL_WEIGHTS", "weights"),
                    help="the weights folder (default: weights, or $CHARMODEL_WEIGHTS)")

    a = sub.add_parser("atlas", help="explain every cell of a run: build its atlas file, or --list it")
    _run_args(a)
    a.add_argument("--list", action="store_true", help="print every cell's explanation from the atlas file")
    a.add_argument("--min-score", type=float, default=None, help="with --list: only cells whose held-out "
                   "simulation r is at least this")
    a.add_argument("--simulate", action="store_true", help="what one cell's explanation predicts over a text, "
                   "beside the cell's own values (with --layer, --kind, --cell and --text or --text-file)")
    a.add_argument("--layer", type=int, default=None, help="with --simulate: layer, counted from 1")
    a.add_argument("--kind", choices=["h", "c"], default=None, help="with --simulate: h output or c cell state")
    a.add_argument("--cell", type=int, default=None, help="with --simulate: the cell")
    a.add_argument("--text", default=None, help="with --simulate: the text itself")
    a.add_argument("--text-file", default=None, help="with --simulate: a UTF-8 file holding the text")
    _drop_arg(a)
    a.add_argument("--json", action="store_true", help="one JSON value: the build's summary, or the --list rows")
    a.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    a.add_argument("--events", action="store_true", help=argparse.SUPPRESS)  # JSON progress lines, for the app's job
    return p


def _old_text_flag(parser) -> None:
    """train and evaluate once took the file as --text; everywhere else --text is the text itself
    and --text-file a file. The old spelling still works, with a note."""
    parser.add_argument("--text", dest="old_text", help=argparse.SUPPRESS)


def _text_file(args) -> str | None:
    if args.old_text is not None:
        print(f"note: {args.command} --text FILE is now --text-file FILE (--text means the text itself, as in "
              "inspect); the old spelling will go.", file=sys.stderr)
        return args.text_file or args.old_text
    return args.text_file


def _drop_arg(parser) -> None:
    parser.add_argument("--drop-unknown", action="store_true",
                        help="drop characters the model has never seen from the text, instead of refusing it")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None:
            from .engine import set_threads

            set_threads(args.threads)
        return COMMANDS[args.command](args)
    except CharModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _train(args) -> int:
    from .settings import from_args
    from .train import ConsoleListener, train

    settings = from_args(args)
    if not 0 < args.max_mb <= LARGEST_BYTES / 2**20:
        raise CharModelError(f"--max-mb must be more than 0 and at most {LARGEST_BYTES / 2**20:.0f}, not {args.max_mb:g}.")
    if settings.get("minutes") and not args.resume and _text_file(args):
        settings = _recipe(args, settings)
    train(args.run, _text_file(args), resume=args.resume, listener=ConsoleListener(),
          max_bytes=int(args.max_mb * 2**20), **settings)
    return 0


def _recipe(args, settings: dict) -> dict:
    """The settings a --minutes budget's recipe chooses (flags given win); the time spent timing
    shapes comes out of the budget."""
    from .recipe import for_text, threads_for
    from .settings import check

    check(settings)  # a bad flag is named before anything is timed
    t0 = time.monotonic()
    say = lambda key: print(f"timing a few batches of {key} on this machine…", file=sys.stderr, flush=True)
    chosen, sentence = for_text(_text_file(args), settings, threads_for(app=False), int(args.max_mb * 2**20), say)
    if sentence:
        print(sentence, flush=True)
    spent = (time.monotonic() - t0) / 60
    return {**chosen, "minutes": max(chosen["minutes"] - spent, 0.1)}


def _engine(args):
    from . import runfolder
    from .engine import Engine

    return Engine.load(args.run, args.checkpoint or runfolder.default_checkpoint(args.run))


def _generate(args) -> int:
    from .sample import generate

    engine = _engine(args)
    prime = engine.vocab.drop_unknown(args.prime) if args.drop_unknown else args.prime
    texts = generate(engine, prime, args.length, args.temperature, args.seed, args.top_k, args.samples)
    for n, text in enumerate(texts):
        if n:
            print("-" * 40)
        print(prime + text)
    return 0


def _evaluate(args) -> int:
    from tqdm import tqdm

    from .evaluate import MIN_BASELINE_CHARS, evaluate

    bars = []  # made at the first progress call, so a mistake found before scoring prints only its line

    def progress(done, total):
        if not bars:
            bars.append(tqdm(total=total, unit="char", unit_scale=True, desc="scoring", file=sys.stderr,
                             disable=args.quiet, leave=False))
        bars[0].update(done - bars[0].n)

    try:
        result = evaluate(args.run, _text_file(args), args.checkpoint, progress=progress, drop_unknown=args.drop_unknown,
                          window=args.window)
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        print(json.dumps(result))
    else:
        if result["window"]:
            print(f"{result['bpc']:.4f} bits per character from windows of {result['window']} characters over "
                  f"{result['chars']} characters ({result['source']}; the first {result['window']} left out)")
        else:
            print(f"{result['bpc']:.4f} bits per character over {result['chars']} characters ({result['source']})")
        if result["stateful_bpc"] is not None:
            print(f"{result['stateful_bpc']:.4f} bits per character stateful (the state carried through the whole "
                  "text, which a model trained on windows may not support)")
        for name, bpc in result["baselines"].items():
            print(f"  {name:5s} {bpc:.4f}")
        if not result["baselines"]:
            print(f"  (no compressor baselines: under {MIN_BASELINE_CHARS} characters they measure the compressor's "
                  "own overhead)")
    return 0


def _inspect(args) -> int:
    import numpy as np

    from .engine import inspect

    engine = _engine(args)
    text = _given_text(args, engine)
    _check_cell(args, engine)
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


def _given_text(args, engine) -> str:
    """--text, or --text-file cleaned as the run's corpus was (CRLF, a BOM, runs of spaces);
    --drop-unknown drops characters the model has never seen."""
    from . import runfolder
    from .corpus import clean, read_text

    if args.text is not None:
        text = args.text
    else:
        text = clean(read_text(args.text_file), runfolder.read_config(args.run)["corpus"]["collapse_spaces"])
    if args.drop_unknown:
        text = engine.vocab.drop_unknown(text)
    if not text:
        raise CharModelError("the text is empty; give at least one character.")
    engine.vocab.encode(text, "the text")  # unknown characters are named before the slow part
    return text


def _check_cell(args, engine) -> None:
    if not 1 <= args.layer <= engine.layers:
        raise CharModelError(f"--layer {args.layer} is out of range; this run has layers 1 to {engine.layers}.")
    if args.cell is not None and not 0 <= args.cell < engine.units:
        raise CharModelError(f"--cell {args.cell} is out of range; this run has cells 0 to {engine.units - 1}.")


def _text_of(args, engine) -> str:
    """The text a command reads: --text-file, cleaned as the run's corpus was, or else the run's
    validation split; --drop-unknown drops characters the model has never seen."""
    from . import runfolder
    from .corpus import clean, read_text

    config = runfolder.read_config(args.run)
    if args.text_file:
        text = clean(read_text(args.text_file), config["corpus"]["collapse_spaces"])
    else:
        text = runfolder.split_text(args.run, config)[1]
    return engine.vocab.drop_unknown(text) if args.drop_unknown else text


def _cells(args) -> int:
    from .cells import FEATURES, batched_activations, rank_cells, signal_for

    if args.feature == "list":
        for name, (description, _) in FEATURES.items():
            print(f"{name:14s} {description}")
        return 0
    if args.top < 1:
        raise CharModelError(f"--top must be at least 1, not {args.top}.")
    engine = _engine(args)
    text = _text_of(args, engine)
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


def _csv(value: str, flag: str, allowed: list) -> list:
    """A comma-separated flag's items, each one of `allowed` (compared as text), in the given order."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in [str(a) for a in allowed]]
    if bad or not items:
        raise CharModelError(f"{flag} {value!r} is not a comma-separated list of {', '.join(map(str, allowed))}.")
    return list(dict.fromkeys(items))


def _lstmvis(args) -> int:
    import numpy as np

    from .study import export_lstmvis, export_size
    from .cells import batched_activations

    engine = _engine(args)
    layers = [int(v) for v in _csv(args.layers, "--layers", list(range(1, engine.layers + 1)))] if args.layers \
        else list(range(1, engine.layers + 1))
    kinds = _csv(args.kinds, "--kinds", ["h", "c"])
    text = _text_of(args, engine)
    engine.vocab.encode(text, "the text to export")  # names unknown characters before the slow part
    activations = batched_activations(engine, text, kinds=kinds, layers=[layer_index(n) for n in layers], dtype=np.float16)
    files = export_lstmvis(args.out, text, engine.vocab.chars, activations, name=Path(args.run).name, unsigned=args.unsigned)
    size = export_size(len(text), engine.units, len(activations), args.unsigned)
    print(f"wrote {', '.join(f.name for f in files)} to {args.out} ({len(text)} characters, "
          f"states.h5 {size / 2**20:.1f} MB)")
    return 0


def _ablate(args) -> int:
    from .ablate import ablate, sweep

    engine = _engine(args)
    if args.chars < 2:
        raise CharModelError(f"--chars must be at least 2, not {args.chars}.")
    text = _text_of(args, engine)[: args.chars]
    layer = layer_index(args.layer)
    if args.sweep:
        from tqdm import tqdm

        with tqdm(total=100, unit="%", desc="sweep", file=sys.stderr, disable=args.quiet, leave=False) as bar:
            from .engine import blas_threads, cores

            threads = blas_threads() if args.threads is not None else cores()  # the sweep's alone: every core
            rows = sweep(engine, text, layer, args.kind, args.value, progress=lambda f: bar.update(round(100 * f) - bar.n),
                         blas_threads=threads)
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


def _probe(args) -> int:
    from . import runfolder
    from .cells import FEATURES, SCALAR, regex_signal
    from .probe import FIT_CHARS, probe

    engine = _engine(args)
    layers = [layer_index(int(v)) for v in _csv(args.layers, "--layers", list(range(1, engine.layers + 1)))] \
        if args.layers else None
    kinds = _csv(args.kinds, "--kinds", ["h", "c"])
    train, val = runfolder.split_text(args.run)
    if args.feature is not None:
        if args.feature not in FEATURES or args.feature in SCALAR:
            yes_no = [n for n in FEATURES if n not in SCALAR]
            raise CharModelError(f"a probe needs a yes/no hypothesis; choose one of: {', '.join(yes_no)}.")
        signal_of, what = FEATURES[args.feature][1], FEATURES[args.feature][0]
    elif args.regex is not None:
        regex_signal(args.regex, "")  # a bad pattern fails before the slow part
        signal_of, what = (lambda text: regex_signal(args.regex, text)), f"regex {args.regex!r}"
    else:
        from . import explain

        terms = [re.sub(r"\s*\([+−-]\)$", "", t.strip()) for t in args.explanation.split(" · ")]  # as --list prints
        if len(terms) > 1:
            raise CharModelError(f"{args.explanation!r} has {len(terms)} terms; a probe reads one yes/no term: give one "
                                 f"of {', '.join(repr(t) for t in terms)}.")
        found = [c for c in explain.library(train, engine.vocab.chars) if c.phrase == terms[0]]
        if not found or found[0].metric != "auc":
            raise CharModelError(f"{terms[0]!r} is not a yes/no term of this run's atlas grammar; copy one term of an "
                                 "explanation that `python -m charmodel atlas --run RUN --list` prints.")
        signal_of = lambda text: explain.signal(found[0], text, explain.masks(text, engine.vocab.chars))
        what = args.explanation
    from tqdm import tqdm

    with tqdm(total=100, unit="%", desc="probes", file=sys.stderr, disable=args.quiet, leave=False) as bar:
        result = probe(engine, train, val, signal_of, layers, kinds, progress=lambda f: bar.update(round(100 * f) - bar.n))
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


def _saliency(args) -> int:
    from . import runfolder
    from .corpus import clean, read_text
    from .saliency import attribute

    engine = _engine(args)
    if args.text_file:
        text = clean(read_text(args.text_file), runfolder.read_config(args.run)["corpus"]["collapse_spaces"])
    else:
        text = args.text
    text = engine.vocab.drop_unknown(text) if args.drop_unknown else text
    target = {"next": True} if args.next_char else {"layer": layer_index(args.layer), "kind": args.kind, "cell": args.cell}
    result = attribute(engine, text, args.position, target, args.method, args.window,
                       corpus=runfolder.split_text(args.run)[0])
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


def _compare(args) -> int:
    from . import atlas, runfolder
    from .compare import CKA_CHARS, changed_cells, layer_similarity
    from .engine import Engine

    first = args.checkpoint or runfolder.default_checkpoint(args.run)
    a, b = Engine.load(args.run, first), Engine.load(args.run, args.other)
    text = runfolder.split_text(args.run)[1][:CKA_CHARS]
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


def _export(args) -> int:
    if args.format == "keras":
        from .keras_io import export_keras

        if args.with_checkpoints:
            raise CharModelError("--with-checkpoints belongs to the archive format; a .keras file holds one checkpoint "
                                 "(--checkpoint).")
        model, chars = export_keras(args.run, args.out, args.checkpoint)
        print(f"wrote {model} ({model.stat().st_size / 2**20:.1f} MB) and {chars}")
        return 0
    from .archive import export_run

    out = export_run(args.run, args.out, args.with_checkpoints)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB)")
    return 0


KERAS_FLAGS = ("chars", "vocab_from", "corpus", "input", "window", "config", "lowercase")


def _import(args) -> int:
    from .archive import import_run
    from .keras_io import import_keras, sniff

    if not Path(args.archive).is_file():
        raise CharModelError(f"{args.archive} does not exist.")
    kind = sniff(args.archive)
    given = ["--" + k.replace("_", "-") for k in KERAS_FLAGS if getattr(args, k) not in (None, False)]
    if kind in ("keras", "h5"):
        if not args.name:
            raise CharModelError("a Keras file has no run name in it; pass --name NAME.")
        run = import_keras(args.archive, args.into, args.name, args.chars, args.vocab_from, args.corpus, args.input,
                           args.window, args.config, lowercase=args.lowercase)
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
        window = config["window"]
        print(f"imported {run.name} into {args.into}/ from {Path(args.archive).name} "
              f"({config['architecture']['layers']}x{config['architecture']['units']}, input "
              f"{config['architecture']['input']}, " + (f"windows of {window} characters)" if window else "stateful)"))
        return 0
    if given:
        raise CharModelError(f"{given[0]} is for a Keras file, but {Path(args.archive).name} is "
                             + ("a run archive." if kind == "archive" else "not a Keras file."))
    if kind != "archive":
        raise CharModelError(f"{Path(args.archive).name} is not a zip archive (a run archive or a Keras .keras file) "
                             "nor an HDF5 .h5 file.")
    run = import_run(args.archive, args.into, args.name)
    print(f"imported {run.name} into {args.into}/")
    return 0


def _atlas(args) -> int:
    from . import atlas, explain, runfolder

    checkpoint = args.checkpoint or runfolder.default_checkpoint(args.run)
    if args.min_score is not None and not args.list:
        raise CharModelError("--min-score filters --list; add --list, or leave it out to build the atlas.")
    cell_flags = [f for f, v in (("--layer", args.layer), ("--kind", args.kind), ("--cell", args.cell),
                                 ("--text", args.text), ("--text-file", args.text_file)) if v is not None]
    if args.simulate:
        return _simulate(args, checkpoint)
    if cell_flags:
        raise CharModelError(f"{cell_flags[0]} goes with --simulate; add --simulate, or leave it out.")
    if args.list:
        rows = atlas.load(args.run, checkpoint).cells()
        if args.min_score is not None:
            rows = [r for r in rows if r["simulation_r"] is not None and r["simulation_r"] >= args.min_score]
        if args.json:
            print(json.dumps([{"layer": layer_number(r["layer"]), **{k: r[k] for k in
                              ("kind", "cell", "explanation", "simulation_r", "auc", "terms", "direction", "group")}}
                              for r in rows]))
            return 0
        for r in rows:
            score = "  -  " if r["simulation_r"] is None else f"{r['simulation_r']:+.3f}"
            print(f"layer {layer_number(r['layer'])} {r['kind']} cell {r['cell']:4d}  r {score}  {r['explanation']}")
        return 0
    runfolder.checkpoint_path(args.run, checkpoint)  # a bad checkpoint name fails before the slow part
    if args.events:  # a job the app started: the app's own work comes first
        from .jobs import NICE

        os.nice(NICE)
    progress = _atlas_progress(args)
    try:
        path = atlas.build_for_run(args.run, checkpoint, progress=progress)
    finally:
        progress(None, None)
    built = atlas.load(args.run, checkpoint)
    summary = {**built.coverage(), "seconds": built.meta["seconds"], "bytes": path.stat().st_size, "file": str(path)}
    if args.events:
        print(json.dumps({"event": "done", **summary}), flush=True)
    elif args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['explained']} of {summary['cells']} cells explained (held-out simulation r >= "
              f"{explain.EXPLAINED_R}; median r {summary['median_simulation_r']}); long context: "
              f"{summary['by_group']['long']}")
        for part, d in summary["by_layer_kind"].items():
            print(f"  {part}: {d['explained']} of {d['cells']}")
        print("  by the group of their best explanation: " +
              ", ".join(f"{g} {n}" for g, n in summary["by_group"].items()))
        print(f"wrote {path} ({summary['bytes'] / 2**20:.1f} MB) in {summary['seconds']:.0f} s")
    return 0


def _simulate(args, checkpoint: str) -> int:
    """atlas --simulate: the explanation's prediction and the cell's own values over a text."""
    import numpy as np

    from . import atlas, explain
    from .engine import inspect

    missing = [f for f, v in (("--layer", args.layer), ("--kind", args.kind), ("--cell", args.cell)) if v is None]
    if missing:
        raise CharModelError(f"--simulate needs {', '.join(missing)}: which cell to simulate.")
    if (args.text is None) == (args.text_file is None):
        raise CharModelError("--simulate needs the text: give --text or --text-file (one of them).")
    found = atlas.load(args.run, checkpoint)  # a missing or stale atlas fails before the engine loads
    engine = _engine(args)
    _check_cell(args, engine)
    text = _given_text(args, engine)
    layer = layer_index(args.layer)
    row = found.index(layer, args.kind, args.cell)
    terms = found.terms(row)
    simulated = found.simulate(layer, args.kind, args.cell, text)
    actual = inspect(engine, text, record=(args.kind,), layers=[layer]).values(layer, args.kind)[:, args.cell]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = float(np.corrcoef(simulated, actual)[0, 1]) if len(text) > 1 else float("nan")
    out = {"layer": args.layer, "kind": args.kind, "cell": args.cell,
           "explanation": explain.phrase(terms) if terms else None, "terms": terms, "chars": list(text),
           "simulated": np.round(simulated, 6).tolist(), "actual": actual.astype(np.float64).round(6).tolist(),
           "r": None if not np.isfinite(r) else round(r, 4)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"layer {args.layer} {args.kind} cell {args.cell}: {out['explanation']}")
        print(f"r between simulated and actual over {len(text)} characters: {out['r']}")
        for ch, s_, a in zip(text, out["simulated"], out["actual"]):
            print(f"{ch!r}\t{s_:+.4f}\t{a:+.4f}")
    return 0


def _atlas_progress(args):
    """A progress callable for atlas.build: a tqdm bar on stderr, or (--events) JSON lines on stdout.
    Called with (None, None) at the end, to close the bar."""
    from tqdm import tqdm

    bar = None

    def progress(fraction, stage):
        nonlocal bar
        if args.events:
            if fraction is not None:
                print(json.dumps({"event": "progress", "fraction": round(fraction, 4), "stage": stage}), flush=True)
            return
        if fraction is None:
            if bar is not None:
                bar.close()
            return
        if bar is None:
            bar = tqdm(total=100, unit="%", desc="atlas", file=sys.stderr, disable=args.quiet, leave=False)
        bar.set_description(f"atlas: {stage}")
        bar.update(round(100 * fraction) - bar.n)

    return progress


COMMANDS = {"train": _train, "generate": _generate, "evaluate": _evaluate, "inspect": _inspect, "cells": _cells,
            "lstmvis": _lstmvis, "atlas": _atlas, "ablate": _ablate, "probe": _probe, "saliency": _saliency,
            "compare": _compare, "export": _export, "import": _import}
