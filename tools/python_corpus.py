"""Write data/python.txt: a few MB of the Python standard library's own source, read from the
interpreter that runs this script (the code model's corpus; see weights/python/MODEL_CARD.md).

The Python Software Foundation License lets anyone copy and redistribute the standard library's
source, with its licence notice kept: data/README.md carries it.

Files are taken in sorted path order, pure ASCII only (a few carry other scripts in strings or
comments, which would bloat the vocabulary), leaving out tests, generated tables and vendored
packages, until the corpus reaches MAX_BYTES. Each file is preceded by a comment line naming it.

    python tools/python_corpus.py [--out data/python.txt] [--max-mb 3]
"""

import argparse
import sys
import sysconfig
from pathlib import Path

MAX_BYTES = 3 * 2**20
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "encodings", "pydoc_data", "lib2to3", "ensurepip",
             "__pycache__", "turtledemo", "tkinter", "idlelib", "config-3.11-x86_64-linux-gnu"}
SKIP_FILES = {"_pydecimal.py", "_pyio.py", "unicodedata.py"}  # long, and the former two duplicate C modules


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/python.txt")
    p.add_argument("--max-mb", type=float, default=MAX_BYTES / 2**20)
    args = p.parse_args(argv)
    lib = Path(sysconfig.get_paths()["stdlib"])
    limit, parts, size, used = int(args.max_mb * 2**20), [], 0, 0
    for path in sorted(lib.rglob("*.py")):
        rel = path.relative_to(lib)
        if SKIP_DIRS & set(rel.parts[:-1]) or rel.name in SKIP_FILES or rel.name.startswith("test_"):
            continue
        raw = path.read_bytes()
        if not raw.isascii() or b"\r" in raw or b"\x0c" in raw:
            continue
        piece = f"# file: {rel.as_posix()}\n".encode() + raw.rstrip(b"\n") + b"\n\n"
        if size + len(piece) > limit:
            continue
        parts.append(piece)
        size += len(piece)
        used += 1
    Path(args.out).write_bytes(b"".join(parts))
    print(f"{args.out}: {used} files, {size:,} bytes, from {lib} (Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
