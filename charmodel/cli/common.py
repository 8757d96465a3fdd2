"""What the commands share: the parser's one-line errors, the flags every run command takes, the
text a command reads, the engine of the chosen checkpoint, and progress bars on stderr."""

import argparse
import contextlib
import sys

from charmodel.errors import CharModelError


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, status 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def run_args(parser) -> None:
    """The run to read and which of its checkpoints: shared by every subcommand but train."""
    parser.add_argument("--run", required=True, help="run folder, for example weights/alice")
    parser.add_argument("--checkpoint", default=None, help="best, latest, or a kept epoch number (default: best)")
    parser.add_argument("--threads", default=None, metavar="N",
                        help="BLAS threads for the engine's loops (default: $CHARMODEL_THREADS, else 1; more is faster "
                             "on a machine this command has to itself)")


def old_text_flag(parser) -> None:
    """train and evaluate once took the file as --text; everywhere else --text is the text itself
    and --text-file a file. The old spelling still works, with a note."""
    parser.add_argument("--text", dest="old_text", help=argparse.SUPPRESS)


def text_file(args) -> str | None:
    if args.old_text is not None:
        print(f"note: {args.name} --text FILE is now --text-file FILE (--text means the text itself, as in "
              "inspect); the old spelling will go.", file=sys.stderr)
        return args.text_file or args.old_text
    return args.text_file


def drop_arg(parser) -> None:
    parser.add_argument("--drop-unknown", action="store_true",
                        help="drop characters the model has never seen from the text, instead of refusing it")


def open_run(args):
    """The run of --run, opened once per command (config read and checked once)."""
    from charmodel.run.handle import Run

    if getattr(args, "opened", None) is None:
        args.opened = Run.open(args.run)
    return args.opened


def checkpoint(args) -> str:
    """--checkpoint, else the run's default (best, else latest, else its first kept epoch)."""
    return args.checkpoint or open_run(args).default_checkpoint()


def load_engine(args):
    from charmodel.engine import Engine

    return Engine.load(open_run(args), checkpoint(args))


def file_text(args) -> str:
    """--text-file, read safely and cleaned as the run's corpus was (CRLF, a BOM, runs of spaces)."""
    from charmodel.run.corpus import read_text

    return open_run(args).clean(read_text(args.text_file))


def given_text(args, engine) -> str:
    """--text, or --text-file; --drop-unknown drops characters the model has never seen."""
    text = args.text if args.text is not None else file_text(args)
    if args.drop_unknown:
        text = engine.vocab.drop_unknown(text)
    if not text:
        raise CharModelError("the text is empty; give at least one character.")
    engine.vocab.encode(text, "the text")  # unknown characters are named before the slow part
    return text


def check_cell(args, engine) -> None:
    if not 1 <= args.layer <= engine.layers:
        raise CharModelError(f"--layer {args.layer} is out of range; this run has layers 1 to {engine.layers}.")
    if args.cell is not None and not 0 <= args.cell < engine.units:
        raise CharModelError(f"--cell {args.cell} is out of range; this run has cells 0 to {engine.units - 1}.")


def text_of(args, engine) -> str:
    """The text a command reads: --text-file, or else the run's validation split; --drop-unknown
    drops characters the model has never seen."""
    text = file_text(args) if args.text_file else open_run(args).split()[1]
    return engine.vocab.drop_unknown(text) if args.drop_unknown else text


def csv_flag(value: str, flag: str, allowed: list) -> list:
    """A comma-separated flag's items, each one of `allowed` (compared as text), in the given order."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in [str(a) for a in allowed]]
    if bad or not items:
        raise CharModelError(f"{flag} {value!r} is not a comma-separated list of {', '.join(map(str, allowed))}.")
    return list(dict.fromkeys(items))


@contextlib.contextmanager
def percent_bar(desc: str, quiet: bool):
    """A tqdm bar on stderr, in percent; yields the progress callable (fraction done)."""
    from tqdm import tqdm

    with tqdm(total=100, unit="%", desc=desc, file=sys.stderr, disable=quiet, leave=False) as bar:
        yield lambda fraction: bar.update(round(100 * fraction) - bar.n)
