"""Run archives: a run folder as one zip, to train on a rented GPU and explore at home, and an
import that is safe against hostile archives.

An archive holds one folder, NAME/, with only the files a run folder is known to have (its
config, weights, history, samples, corpus, card, atlases and, on request, kept epochs). Import
refuses anything else before writing a byte: unknown, absolute, `..` or symlink members, too many
members, or more than MAX_BYTES declared; it then extracts into a hidden temporary folder inside
the weights folder, counting bytes as it goes, validates the run (the config, every weights file
loaded without pickle into an engine built from that config), and only then renames the folder
into place. A failure leaves nothing behind.
"""

import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from charmodel.errors import CharModelError
from charmodel.run import folder as runfolder

MAX_MEMBERS = 1000
MAX_BYTES = 2 * 2**30  # total uncompressed size an archive may declare and extract
CHUNK = 1 << 20
KNOWN = re.compile(r"^(config\.json|best\.npz|latest\.npz|history\.csv|corpus\.txt|highlights\.json|MODEL_CARD\.md"
                   r"|loss_curve\.png|samples/epoch-\d{4}\.txt|checkpoints/epoch-\d{4}\.npz"
                   r"|atlas-(best|latest|\d+)\.npz)$")
FOLDERS = {"samples/", "checkpoints/"}


def export_run(run, out, with_checkpoints: bool = False) -> Path:
    """Write run folder `run` to the zip `out` (atomically); kept epochs only with_checkpoints."""
    run = Path(run)
    runfolder.read_config(run)  # a damaged or missing run is named before anything is written
    name = run.name
    members = [p for p in sorted(run.rglob("*")) if p.is_file() and KNOWN.match(p.relative_to(run).as_posix())
               and not p.relative_to(run).as_posix().startswith("checkpoints/")]
    if with_checkpoints:
        for folder in runfolder.epoch_dirs(run):
            members += sorted(folder.glob("epoch-*.npz")) if folder.is_dir() else []
    out = Path(out)
    with runfolder.atomic_path(out, suffix=".tmp.zip") as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for p in members:
                inside = f"checkpoints/{p.name}" if p.suffix == ".npz" and p.name.startswith("epoch-") \
                    else p.relative_to(run).as_posix()
                z.write(p, f"{name}/{inside}")
    return out


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_members(z: zipfile.ZipFile, max_members: int = MAX_MEMBERS, max_bytes: int = MAX_BYTES) -> tuple[str, list]:
    """(the archive's run name, its file members), or a CharModelError naming the first problem."""
    infos = z.infolist()
    if len(infos) > max_members:
        raise CharModelError(f"the archive has {len(infos)} members, more than the {max_members} a run may have.")
    top, files, seen = None, [], set()
    for info in infos:
        name = info.filename
        if name.rstrip("/") in seen:  # zip allows it; which copy would win depends on the reader
            raise CharModelError(f"the archive holds {name!r} twice; refused.")
        seen.add(name.rstrip("/"))
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name:
            raise CharModelError(f"the archive member {name!r} has an absolute or Windows path; refused.")
        parts = name.split("/")
        if ".." in parts:
            raise CharModelError(f"the archive member {name!r} climbs out of its folder ('..'); refused.")
        if _is_symlink(info):
            raise CharModelError(f"the archive member {name!r} is a symbolic link; refused.")
        head, _, rest = name.partition("/")
        top = top or head
        if head != top:
            raise CharModelError(f"the archive holds more than one folder ({top!r} and {head!r}); a run archive "
                                 "holds one.")
        if info.is_dir():
            if rest not in ("", *FOLDERS):
                raise CharModelError(f"the archive member {name!r} is not part of a run folder; refused.")
            continue
        if not KNOWN.match(rest):
            raise CharModelError(f"the archive member {name!r} is not a file a run folder has; refused.")
        files.append(info)
    if top is None or not files:
        raise CharModelError("the archive is empty.")
    declared = sum(i.file_size for i in files)
    if declared > max_bytes:
        raise CharModelError(f"the archive would unpack to {declared / 2**20:.0f} MB, over the "
                             f"{max_bytes / 2**20:.0f} MB limit; refused.")
    if not any(i.filename == f"{top}/config.json" for i in files):
        raise CharModelError("the archive has no config.json: it is not a run.")
    return top, files


def _validate(run: Path) -> None:
    """The extracted run is sound: its config reads, and every weights file loads (no pickle) into
    an engine built from that config. Atlases are read with allow_pickle=False too."""
    from charmodel.engine import Engine

    runfolder.read_config(run)
    for which in runfolder.available_checkpoints(run):
        Engine.load(run, which)
    for path in run.glob("atlas-*.npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                for k in f.files:
                    f[k]
        except Exception as e:
            raise CharModelError(f"{path.name} in the archive is not a plain-array atlas ({e.__class__.__name__}).")


def import_run(archive, root, name: str | None = None, max_members: int = MAX_MEMBERS,
               max_bytes: int = MAX_BYTES) -> Path:
    """Unpack a run archive into root/NAME (the archive's own name, or `name`), all or nothing."""
    root = Path(root)
    try:
        z = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise CharModelError(f"{Path(str(archive)).name if isinstance(archive, (str, Path)) else 'the upload'} "
                             f"is not a zip archive ({e.__class__.__name__}).") from None
    with z:
        top, files = check_members(z, max_members, max_bytes)
        target = runfolder.run_in(root, name or top)
        if target.exists():
            raise CharModelError(f"a run named {target.name!r} already exists; import it under another name "
                                 "(--name NEW, or the name box).")
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".import-{target.name}-", dir=root))  # hidden: not listed as a run
        try:
            written = 0
            for info in files:
                dest = tmp / info.filename.partition("/")[2]
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as dst:
                    size = 0
                    while chunk := src.read(CHUNK):
                        size += len(chunk)
                        written += len(chunk)
                        if size > info.file_size or written > max_bytes:
                            raise CharModelError(f"{info.filename} unpacks to more than the archive declares; refused.")
                        dst.write(chunk)
            try:
                _validate(tmp)
            except CharModelError as e:  # name the archive's files, not the temporary folder
                raise CharModelError(f"the archive's run is not sound: {str(e).replace(str(tmp), top)}") from None
            tmp.rename(target)
        except zipfile.BadZipFile as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CharModelError(f"the archive is damaged ({e}); nothing was imported.") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target
