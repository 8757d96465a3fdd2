"""A run is a folder. This module knows its layout and reads and writes its files safely.

    weights/NAME/
      config.json            architecture, training settings, corpus (path, sha256, cleaning, split), vocab
      corpus.txt             a copy of the raw corpus, so the run is self-contained
      latest.npz             NumPy weights of the last finished epoch (what the engine reads)
      best.npz               NumPy weights of the epoch with the lowest validation loss
      checkpoints/epoch-NNNN.npz   kept epochs, to watch a cell being learned (a shipped run keeps
                             them beside it, in NAME.checkpoints/, so its own folder stays small)
      history.csv            epoch, train_loss, val_loss, val_bpc, wall_s, chars_per_s, lr
      samples/epoch-NNNN.txt one sample per epoch
      train_state.json       last finished epoch, best so far, Keras checkpoint for --resume
      train_state/           Keras weights + optimizer state for --resume
      highlights.json        the headline cell of a checkpoint (written with the model card)

No TensorFlow here: the app lists and reads runs without importing it.
"""

import csv
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from charmodel.errors import CharModelError
from charmodel.numbering import layer_index, layer_number

CONFIG = "config.json"
HISTORY_FIELDS = ["epoch", "train_loss", "val_loss", "val_bpc", "wall_s", "chars_per_s"]
HISTORY_OPTIONAL = ["lr", "batch_s"]  # learning rate at the epoch's start, seconds in its batches; older runs lack them
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# ---------------------------------------------------------------- atomic files

@contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path beside `path`; when the block ends, fsync it and rename it over
    `path`. If the block fails (or the process dies), `path` keeps its old content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_weights_npz(path, weights: dict, dtype=np.float16) -> None:
    """Plain named arrays: loading them never runs code (np.load with allow_pickle=False).

    Stored as float16 and computed in float32: on the Alice model this moved validation bits
    per character by about 1e-6, and it halves every checkpoint.
    """
    with atomic_path(path, suffix=".npz") as tmp:  # np.savez adds .npz to other names
        np.savez(tmp, **{k: np.asarray(v, dtype=dtype) for k, v in weights.items()})


def load_weights_npz(path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k].astype(np.float32) for k in z.files}
    except FileNotFoundError:
        raise CharModelError(f"checkpoint {path} does not exist; train the run first.") from None
    except Exception as e:  # zip/format errors from a damaged file
        raise CharModelError(f"checkpoint {path} is damaged or not a weights file ({e.__class__.__name__}).") from None


# ---------------------------------------------------------------- names and folders

def check_name(name: str) -> str:
    """A run name is one plain folder name: no slashes, no '..', no absolute paths."""
    if not _NAME.match(name or ""):
        raise CharModelError(
            f"run name {name!r} is not allowed; use letters, digits, '-', '_' or '.', "
            "starting with a letter or digit, with no slashes."
        )
    return name


def run_in(root, name: str) -> Path:
    """The folder for run `name` inside `root` (for example weights/), refusing escapes."""
    root = Path(root).resolve()
    path = (root / check_name(name)).resolve()
    if path.parent != root:
        raise CharModelError(f"run name {name!r} escapes {root}; use a plain folder name.")
    return path


def list_runs(root) -> list[str]:
    """Names of the folders in `root` that hold a config.json, sorted; hidden ones (an import
    being unpacked, see archive.py) are not runs yet."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG).is_file() and not p.name.startswith("."))


# ---------------------------------------------------------------- config

def read_config(run) -> dict:
    path = Path(run) / CONFIG
    if not Path(run).is_dir():
        raise CharModelError(f"run folder {run} does not exist; train it first or pick another run.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CharModelError(f"run folder {run} has no {CONFIG}; it is not a charmodel run.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CharModelError(f"{path} is not valid JSON ({e}); the run folder is damaged.") from None
    for key in ("architecture", "training", "corpus", "vocab"):
        if key not in config:
            raise CharModelError(f"{path} has no '{key}' section; the run folder is damaged.")
    return config


# ---------------------------------------------------------------- checkpoints

def epoch_dirs(run) -> list[Path]:
    """Where kept epochs live: checkpoints/ inside the run, or a sibling NAME.checkpoints/ folder
    (shipped runs keep them beside the run so the run folder itself stays small)."""
    run = Path(run)
    return [run / "checkpoints", run.parent / f"{run.name}.checkpoints"]


def checkpoint_path(run, which: str = "best") -> Path:
    """'best', 'latest', or an epoch number kept under checkpoints/."""
    run = Path(run)
    if which in ("best", "latest"):
        return run / f"{which}.npz"
    if not str(which).isdigit():
        raise CharModelError(f"checkpoint {which!r} is not best, latest or an epoch number.")
    name = f"epoch-{int(which):04d}.npz"
    for folder in epoch_dirs(run):
        if (folder / name).is_file():
            return folder / name
    return epoch_dirs(run)[0] / name


def available_checkpoints(run) -> list[str]:
    """Checkpoints the run has, in the order a user would pick them: best, latest, then epochs."""
    run = Path(run)
    names = [w for w in ("best", "latest") if checkpoint_path(run, w).is_file()]
    kept = {int(p.stem.split("-")[1]) for d in epoch_dirs(run) for p in d.glob("epoch-*.npz")}
    return names + [str(e) for e in sorted(kept)]


def default_checkpoint(run) -> str:
    read_config(run)  # a missing or damaged folder is named before "no checkpoint"
    found = available_checkpoints(run)
    if not found:
        raise CharModelError(f"run folder {run} has no checkpoint yet; wait for the first epoch to finish.")
    return found[0]


# ---------------------------------------------------------------- history and samples

def read_history(run) -> list[dict]:
    path = Path(run) / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        try:
            out.append({k: (int(row[k]) if k == "epoch" else float(row[k])) for k in HISTORY_FIELDS}
                       | {k: float(row[k]) for k in HISTORY_OPTIONAL if row.get(k)})
        except (KeyError, TypeError, ValueError):
            raise CharModelError(f"{path} has a malformed row {row}; the run folder is damaged.") from None
    return out


def write_history(run, rows: list[dict]) -> None:
    with atomic_path(Path(run) / "history.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS + HISTORY_OPTIONAL, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_samples(run) -> dict[int, str]:
    """{epoch: sample text} for every epoch that wrote one."""
    out = {}
    for p in sorted((Path(run) / "samples").glob("epoch-*.txt")):
        out[int(p.stem.split("-")[1])] = p.read_text(encoding="utf-8")
    return out


HIGHLIGHTS = "highlights.json"


def write_highlights(run, checkpoint: str, headline: dict) -> None:
    """Store the run's headline cell (see cells.headline), so pages open on it without a ranking.
    The file is for people too, so its layer is counted from 1."""
    shown = {**headline, "layer": layer_number(headline["layer"])}
    atomic_write_json(Path(run) / HIGHLIGHTS, {"checkpoint": checkpoint, "text": "validation", "headline": shown})


def read_highlights(run, checkpoint: str) -> dict | None:
    """The stored headline cell for this checkpoint, or None (none stored, or for another checkpoint)."""
    path = Path(run) / HIGHLIGHTS
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = data["headline"] if data["checkpoint"] == checkpoint else None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise CharModelError(f"{path} is damaged; delete it and it will be measured again.") from None
    if found is not None and not all(k in found for k in ("layer", "kind", "cell", "score", "feature")):
        raise CharModelError(f"{path} is damaged; delete it and it will be measured again.")
    return None if found is None else {**found, "layer": layer_index(found["layer"])}


def read_train_state(run) -> dict | None:
    path = Path(run) / "train_state.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise CharModelError(f"{path} is not valid JSON; the run folder is damaged.") from None


def fsync_file(path) -> None:
    """Flush a file another library wrote, before it is renamed into place."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
