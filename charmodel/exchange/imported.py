"""An imported run folder written all or nothing, for every importer (keras_io, textgenrnn): its
config, corpus and weights in a hidden folder, the engine loaded from it and checked against Keras,
then renamed into place."""

import shutil
import tempfile
from pathlib import Path

import numpy as np

from charmodel.errors import CharModelError
from charmodel.run import folder as runfolder
from charmodel.run.corpus import Vocab
from charmodel.run.handle import RunConfig, write_config

IMPORT_TOLERANCE = 1e-4  # largest difference in next-character probability the self-check accepts


def check_corpus(vocab: Vocab, text: str, text_path) -> None:
    """Refuse a corpus with characters the model does not know, naming them."""
    unknown = vocab.unknown(text)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise CharModelError(f"the corpus {Path(text_path).name} has {len(unknown)} character(s) the model does not "
                             f"know: {shown}; give the text prepared as the model's was (lowercased, say).")


def write_imported(root, name: str, config: RunConfig, raw: str, weights: dict, check, report=print) -> Path:
    """Write run folder root/NAME, all or nothing: its config, corpus and weights in a hidden folder,
    the engine loaded from it and `check(engine)` -> (difference, how) run (None: not checked), then
    renamed into place. Nothing is left behind when anything fails."""
    from charmodel.engine import Engine

    target = runfolder.run_in(root, name)
    if target.exists():
        raise CharModelError(f"a run named {target.name!r} already exists; import under another --name.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=root))  # hidden: not listed as a run
    try:
        write_config(tmp, config)
        runfolder.atomic_write_bytes(tmp / "corpus.txt", raw.encode("utf-8"))
        runfolder.save_weights_npz(tmp / "best.npz", weights, dtype=np.float32)  # as the file has them
        engine = Engine.load(tmp, "best")
        if check is not None:
            difference, how = check(engine)
            if difference is None:
                report(f"not checked against Keras: {how}")
            elif not difference <= IMPORT_TOLERANCE:
                raise CharModelError(f"the engine's next-character probabilities differ from Keras' by {difference:.1e} "
                                     f"(over {IMPORT_TOLERANCE:g}) {how}; nothing was imported.")
            else:
                report(f"checked against Keras {how}: largest difference in next-character probability "
                       f"{difference:.1e} (at most {IMPORT_TOLERANCE:g} accepted)")
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
