"""export and import: a run as one archive or a Keras file, and back."""

import os
from pathlib import Path

from charmodel.errors import CharModelError
from charmodel.run.handle import Run

KERAS_FLAGS = ("chars", "vocab_from", "corpus", "input", "window", "config", "lowercase")
TEXTGENRNN_FLAGS = ("textgenrnn_vocab", "textgenrnn_config")


def add_export(sub) -> None:
    p = sub.add_parser("export", help="a run folder as one zip archive, to carry to another machine; or, with "
                                       "--format keras, its model as a Keras 3 .keras file")
    p.add_argument("--run", required=True, help="run folder, for example weights/alice")
    p.add_argument("--out", required=True, help="the file to write: a .zip, or a .keras with --format keras")
    p.add_argument("--format", choices=("archive", "keras"), default="archive",
                    help="archive (default): the run folder as a zip; keras: the model (ids in, next-character "
                         "probabilities out), with its characters in OUT's name .chars.json")
    p.add_argument("--checkpoint", default=None, help="with --format keras: best, latest, or a kept epoch (default: best)")
    p.add_argument("--with-checkpoints", action="store_true", help="include the kept epochs")
    p.set_defaults(command=cmd_export)


def cmd_export(args) -> int:
    if args.format == "keras":
        from charmodel.exchange.keras_io import export_keras

        if args.with_checkpoints:
            raise CharModelError("--with-checkpoints belongs to the archive format; a .keras file holds one checkpoint "
                                 "(--checkpoint).")
        model, chars = export_keras(args.run, args.out, args.checkpoint)
        print(f"wrote {model} ({model.stat().st_size / 2**20:.1f} MB) and {chars}")
        return 0
    from charmodel.exchange.archive import export_run

    out = export_run(args.run, args.out, args.with_checkpoints)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB)")
    return 0


def add_import(sub) -> None:
    p = sub.add_parser("import", help="a run archive, or a Keras char-LSTM (.keras or .h5), as a run in the weights "
                                       "folder (checked, all or nothing; a Keras file's code is never run)")
    p.add_argument("archive", metavar="FILE", help="a zip written by `export`, or a Keras .keras / .h5 model "
                                                    "(told apart by content)")
    p.add_argument("--name", help="import under this name instead of the archive's (required for a Keras file)")
    p.add_argument("--chars", default=None, help="Keras file: a JSON list of the model's characters in index order")
    p.add_argument("--vocab-from", default=None, help="Keras file: the text the model was trained on; its sorted set "
                                                       "of characters is the vocabulary, as the post built it")
    p.add_argument("--corpus", default=None, help="Keras file: the text the run shows and explains (default: the "
                                                   "--vocab-from text)")
    p.add_argument("--input", default=None, help="Keras file: embedding, onehot or scalar (index / vocabulary size); "
                                                  "default: read from the model")
    p.add_argument("--window", default=None, help="Keras file: the model was trained on windows of W characters from "
                                                   "a zero state (default: the model's fixed input length, if any)")
    p.add_argument("--lowercase", action="store_true", help="Keras file: the model saw its text lowercased, as the "
                                                              "post did; lowercase --vocab-from and --corpus")
    p.add_argument("--config", default=None, help="Keras file: the architecture (model.to_json()) for a weights-only "
                                                   ".h5")
    p.add_argument("--textgenrnn-vocab", default=None, metavar="FILE",
                   help="textgenrnn model: its vocabulary (default: NAME_vocab.json beside NAME_weights.hdf5)")
    p.add_argument("--textgenrnn-config", default=None, metavar="FILE",
                   help="textgenrnn model: its config (default: NAME_config.json beside the weights; without one, "
                        "textgenrnn's defaults, as for its pretrained model)")
    p.add_argument("--into", default=os.environ.get("CHARMODEL_WEIGHTS", "weights"),
                    help="the weights folder (default: weights, or $CHARMODEL_WEIGHTS)")
    p.set_defaults(command=cmd_import)


def cmd_import(args) -> int:
    from charmodel.exchange.archive import import_run
    from charmodel.exchange.keras_io import import_keras, is_textgenrnn, refuse_foreign, sniff

    if not Path(args.archive).is_file():
        raise CharModelError(f"{args.archive} does not exist.")
    kind = sniff(args.archive)
    flag = lambda k: "--" + k.replace("_", "-")
    given = [flag(k) for k in KERAS_FLAGS if getattr(args, k) not in (None, False)]
    textgenrnn = [flag(k) for k in TEXTGENRNN_FLAGS if getattr(args, k) is not None]
    if kind in ("keras", "h5") and is_textgenrnn(args.archive):
        refuse_foreign(args.archive, args.textgenrnn_config)  # word-level or bidirectional: before --name
        other = [f for f in given if f != "--corpus"]
        if other:
            raise CharModelError(f"{other[0]} is for a Keras char-LSTM; {Path(args.archive).name} is a textgenrnn model, "
                                 "whose characters and settings are its NAME_vocab.json and NAME_config.json "
                                 "(--textgenrnn-vocab, --textgenrnn-config).")
        if not args.name:
            raise CharModelError("a textgenrnn model has no run name in it; pass --name NAME.")
        from charmodel.exchange.textgenrnn import import_textgenrnn

        run = import_textgenrnn(args.archive, args.into, args.name, args.corpus, args.textgenrnn_vocab,
                                args.textgenrnn_config)
        config = Run.open(run).config
        print(f"imported {run.name} into {args.into}/ from {Path(args.archive).name} (textgenrnn, "
              f"{config.architecture.layers}x{config.architecture.units}, windows of {config.window} characters, "
              "attention head)")
        return 0
    if textgenrnn:
        raise CharModelError(f"{textgenrnn[0]} is for a textgenrnn model, but {Path(args.archive).name} is not one.")
    if kind in ("keras", "h5"):
        if not args.name:
            raise CharModelError("a Keras file has no run name in it; pass --name NAME.")
        run = import_keras(args.archive, args.into, args.name, args.chars, args.vocab_from, args.corpus, args.input,
                           args.window, args.config, lowercase=args.lowercase)
        config = Run.open(run).config
        print(f"imported {run.name} into {args.into}/ from {Path(args.archive).name} "
              f"({config.architecture.layers}x{config.architecture.units}, input {config.input}, "
              + (f"windows of {config.window} characters)" if config.window else "stateful)"))
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


COMMANDS = (add_export, add_import)
