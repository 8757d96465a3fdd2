"""Corpus: read a text file safely, clean it, split it, and map characters to integers.

Cleaning follows the source post (collapse runs of spaces) with fixes: line endings become LF,
control characters other than newline and tab are dropped, and newlines are kept because line
structure is something cells learn.
"""

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charmodel.errors import CharModelError

MAX_BYTES = 50 * 1024 * 1024  # default size limit for a corpus file
LARGEST_BYTES = 1024 * 1024 * 1024  # the most a user may raise it to (train --max-mb 1024)
BLOCK_BYTES = 4 * 1024 * 1024  # corpus files are read, cleaned and tokenised this much at a time
VAL_FRACTION = 0.1  # the last 10% of the cleaned text, contiguous, is validation

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # every C0 control except \t and \n
_SPACES = re.compile(r" {2,}")


def decode(data: bytes, name: str = "text", max_bytes: int = MAX_BYTES) -> str:
    """Bytes -> str, refusing what is not a usable text corpus."""
    if len(data) > max_bytes:
        raise CharModelError(
            f"{name} is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit; "
            "use a smaller file or raise the limit."
        )
    if not data.strip():
        raise CharModelError(f"{name} is empty; give a text with some characters in it.")
    if b"\x00" in data:
        raise CharModelError(f"{name} looks binary (it contains NUL bytes); give a plain UTF-8 text file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CharModelError(
            f"{name} is not UTF-8 (bad byte at offset {e.start}); save it as UTF-8 and try again."
        ) from None


def read_text(path, max_bytes: int = MAX_BYTES) -> str:
    """Read a corpus file as UTF-8, with the checks in `decode`."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise CharModelError(f"text file {path} does not exist.") from None
    except IsADirectoryError:
        raise CharModelError(f"{path} is a folder, not a text file.") from None
    return decode(data, name=str(path), max_bytes=max_bytes)


def clean(text: str, collapse_spaces: bool = True, start: bool = True) -> str:
    """Drop a leading byte-order mark, normalise line endings, drop control characters, and
    optionally collapse runs of spaces. start=False: a later block of the same text (see
    `clean_blocks`), where a U+FEFF is a character like any other."""
    if start:
        text = text.removeprefix("\ufeff")  # a BOM is an encoding mark, not a character of the text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if collapse_spaces:
        text = _SPACES.sub(" ", text)
    return text


def _cut(block: bytes) -> int:
    """Where a block may end so that cleaning it apart gives what cleaning the whole text gives:
    after its last ASCII byte that cleaning keeps and that is neither a space nor a CR (a whole
    UTF-8 character, not the first half of CR LF, not inside a run of spaces that dropping control
    characters could join). 0: no such byte."""
    for i in range(len(block) - 1, -1, -1):
        b = block[i]
        if b < 0x80 and (b >= 0x21 or b in (0x09, 0x0A)) and b != 0x7F:
            return i + 1
    return 0


def clean_blocks(path, collapse_spaces: bool = True, max_bytes: int = MAX_BYTES, block_bytes: int = BLOCK_BYTES):
    """The cleaned text of a corpus file, block by block, with `read_text`'s checks: concatenated,
    the blocks are exactly `clean(read_text(path))`. Memory stays about one block, whatever the
    size of the file."""
    path = Path(path)
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except FileNotFoundError:
        raise CharModelError(f"text file {path} does not exist.") from None
    except IsADirectoryError:
        raise CharModelError(f"{path} is a folder, not a text file.") from None
    if size > max_bytes:
        raise CharModelError(f"{path} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit; "
                             "use a smaller file or raise the limit.")
    with f:
        carry, offset, start, printable = b"", 0, True, False
        while True:
            data = f.read(block_bytes)
            block = carry + data
            if not block:
                break
            cut = _cut(block) if data else len(block)  # at the end of the file, everything left
            block, carry = block[:cut], block[cut:]
            if not block:
                continue
            if b"\x00" in block:
                raise CharModelError(f"{path} looks binary (it contains NUL bytes); give a plain UTF-8 text file.")
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CharModelError(f"{path} is not UTF-8 (bad byte at offset {offset + e.start}); save it as "
                                     "UTF-8 and try again.") from None
            printable = printable or bool(block.strip())
            offset += len(block)
            yield clean(text, collapse_spaces, start=start)
            start = False
    if not printable:
        raise CharModelError(f"{path} is empty; give a text with some characters in it.")


@dataclass(frozen=True)
class Scan:
    """What one streaming pass over a corpus file finds: its vocabulary and cleaned length."""

    vocab: "Vocab"
    chars: int

    def split_at(self, val_fraction: float = VAL_FRACTION) -> int:
        """Where validation starts, as `split` cuts the text."""
        return split_point(self.chars, val_fraction)


def scan(path, collapse_spaces: bool = True, max_bytes: int = MAX_BYTES) -> Scan:
    seen, n = set(), 0
    for block in clean_blocks(path, collapse_spaces, max_bytes):
        seen.update(block)
        n += len(block)
    return Scan(Vocab("".join(sorted(seen))), n)


def id_dtype(vocab: "Vocab"):
    """The smallest unsigned integer type that holds every id: one byte for most corpora."""
    return np.uint8 if len(vocab) <= 256 else np.uint16 if len(vocab) <= 65536 else np.uint32


def tokenise(path, out, found: Scan, collapse_spaces: bool = True, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Encode a corpus file into a .npy file of ids (`id_dtype`), block by block, through a
    temporary name renamed at the end; returns it memory-mapped read-only. `found` is `scan` of
    the same file with the same options: its vocabulary and length."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    codes = np.array([ord(ch) for ch in found.vocab.chars], dtype=np.uint32)  # sorted: an id is a position
    ids = np.lib.format.open_memmap(tmp, mode="w+", dtype=id_dtype(found.vocab), shape=(found.chars,))
    at = 0
    for block in clean_blocks(path, collapse_spaces, max_bytes):
        cps = np.frombuffer(block.encode("utf-32-le"), dtype=np.uint32)
        where = np.minimum(np.searchsorted(codes, cps), len(codes) - 1)
        if at + len(cps) > found.chars or (codes[where] != cps).any():
            raise CharModelError(f"{path} changed while it was read; try again.")
        ids[at : at + len(cps)] = where
        at += len(cps)
    if at != found.chars:
        raise CharModelError(f"{path} changed while it was read; try again.")
    ids.flush()
    del ids
    os.replace(tmp, out)
    return np.load(out, mmap_mode="r", allow_pickle=False)


def sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()  # reads in blocks, not the whole file


def split_point(chars: int, val_fraction: float = VAL_FRACTION) -> int:
    """Where validation starts in a text of `chars` characters: the last `val_fraction` of it."""
    return chars - int(round(chars * val_fraction))


def split(text: str, val_fraction: float = VAL_FRACTION) -> tuple[str, str]:
    """(train, val): validation is the last `val_fraction` of the text, contiguous."""
    at = split_point(len(text), val_fraction)
    return text[:at], text[at:]


def paragraph_start(text: str, at: int = 0) -> int:
    """Where the paragraph holding position `at` begins: just after the last blank line before it
    (0 if there is none). Passages shown to a user start there, not mid-word."""
    i = text.rfind("\n\n", 0, max(at, 0) + 1)
    return 0 if i < 0 else min(i + 2, len(text))


def opening(text: str, words: int = 2, at: int = 0) -> str:
    """The first `words` words of the first paragraph that starts after `at` (its indentation
    included, and one space after them): a prime in the text's own voice ("  `I'm glad ",
    "    @classmethod\n    def "). A text without paragraphs (verse, one line each) starts at the
    next line instead, and one without lines at the next word: never inside a word ("cept")."""
    i = text.find("\n\n", at)
    if i >= 0:
        start = i + 2
    elif "\n" in text[at:]:
        start = text.index("\n", at) + 1
    else:
        found = re.search(r"\s\S", text[at:])
        start = at + found.start() + 1 if found else at  # one word: all there is
    while start < len(text) and text[start] == "\n":
        start += 1
    found = re.match(r"(\s*\S+){1,%d} ?" % words, text[start : start + 200])
    return found.group() if found else ""


@dataclass(frozen=True)
class Vocab:
    """Characters in sorted order; a character's id is its index."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def index(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.chars)}

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, in order of first appearance."""
        known = set(self.chars)
        return list(dict.fromkeys(ch for ch in text if ch not in known))

    def encode(self, text: str, what: str = "text") -> np.ndarray:
        bad = self.unknown(text)
        if bad:
            shown = ", ".join(repr(ch) for ch in bad[:20]) + (" ..." if len(bad) > 20 else "")
            raise CharModelError(
                f"{what} has {len(bad)} character(s) not in the model's vocabulary: {shown}; "
                "remove them, or drop them (the command line's --drop-unknown, the app's 'Drop them' box)."
            )
        index = self.index
        return np.fromiter((index[ch] for ch in text), dtype=np.int32, count=len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def drop_unknown(self, text: str) -> str:
        known = set(self.chars)
        return "".join(ch for ch in text if ch in known)
