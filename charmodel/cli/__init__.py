"""The command line: python -m charmodel COMMAND. Each module builds its own commands' flags:

    train   train (and --resume, --minutes)
    text    generate, evaluate, inspect
    cells   cells, lstmvis, ablate, probe, saliency, compare
    atlas   atlas (build, --list, --simulate)
    runs    export, import

A user mistake prints one line on stderr and exits with status 2; programming errors still crash
with a traceback, because those are bugs to fix.
"""

import os
import sys

from charmodel.cli import atlas, cells, runs, text, train
from charmodel.cli.common import Parser
from charmodel.errors import CharModelError

GROUPS = (train, text, cells, runs, atlas)  # in the order `--help` lists them


def parser() -> Parser:
    p = Parser(prog="python -m charmodel", description="Train a character-level LSTM and see what its cells learned.")
    sub = p.add_subparsers(dest="name", required=True, parser_class=Parser)
    for group in GROUPS:
        for add in group.COMMANDS:
            add(sub)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None:
            from charmodel.engine import set_threads

            set_threads(args.threads)
        return args.command(args)
    except CharModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
