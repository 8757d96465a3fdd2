"""train: a new run, or --resume one; --minutes lets a recipe choose the size."""

import sys
import time

from charmodel.cli.common import old_text_flag, text_file
from charmodel.errors import CharModelError
from charmodel.run import settings
from charmodel.run.corpus import LARGEST_BYTES, MAX_BYTES


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a run (or continue one with --resume)")
    p.add_argument("--text-file", help="UTF-8 corpus file (required for a new run)")
    old_text_flag(p)
    p.add_argument("--run", required=True, help="run folder, for example weights/alice")
    p.add_argument("--resume", action="store_true", help="continue the run after its last finished epoch")
    settings.add_flags(p)  # one flag per training setting (charmodel/run/settings.py)
    p.add_argument("--max-mb", type=float, default=MAX_BYTES / 2**20,
                   help="refuse corpus files larger than this, in MiB (default 50, at most 1024); the corpus streams "
                        "from disk as memory-mapped ids, so a large one costs about its size in memory")
    p.set_defaults(command=cmd_train)


def cmd_train(args) -> int:
    from charmodel.run.settings import from_args
    from charmodel.training.train import ConsoleListener, train

    chosen = from_args(args)
    if not 0 < args.max_mb <= LARGEST_BYTES / 2**20:
        raise CharModelError(f"--max-mb must be more than 0 and at most {LARGEST_BYTES / 2**20:.0f}, not {args.max_mb:g}.")
    if chosen.get("minutes") and not args.resume and text_file(args):
        chosen = _recipe(args, chosen)
    train(args.run, text_file(args), resume=args.resume, listener=ConsoleListener(),
          max_bytes=int(args.max_mb * 2**20), **chosen)
    return 0


def _recipe(args, settings: dict) -> dict:
    """The settings a --minutes budget's recipe chooses (flags given win); the time spent timing
    shapes comes out of the budget."""
    from charmodel.run.settings import check
    from charmodel.training.recipe import for_text, training_threads

    check(settings)  # a bad flag is named before anything is timed
    t0 = time.monotonic()
    say = lambda key: print(f"timing a few batches of {key} on this machine…", file=sys.stderr, flush=True)
    chosen, sentence = for_text(text_file(args), settings, training_threads(), int(args.max_mb * 2**20), say)
    if sentence:
        print(sentence, flush=True)
    spent = (time.monotonic() - t0) / 60
    return {**chosen, "minutes": max(chosen["minutes"] - spent, 0.1)}


COMMANDS = (add_train,)
