"""Corpus: read a text file safely, clean it, split it, and map characters to integers.

Cleaning follows the source post (collapse runs of spaces) with fixes: line endings become LF,
control characters other than newline and tab are dropped, and newlines are kept because line
structure is something cells learn.
"""

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from .errors import CharModelError

MAX_BYTES = 50 * 1024 * 1024  # default size limit for a corpus file
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


def clean(text: str, collapse_spaces: bool = True) -> str:
    """Drop a leading byte-order mark, normalise line endings, drop control characters, and
    optionally collapse runs of spaces."""
    text = text.removeprefix("\ufeff")  # a BOM is an encoding mark, not a character of the text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if collapse_spaces:
        text = _SPACES.sub(" ", text)
    return text


def sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()  # reads in blocks, not the whole file


def split(text: str, val_fraction: float = VAL_FRACTION) -> tuple[str, str]:
    """(train, val): validation is the last `val_fraction` of the text, contiguous."""
    n_val = int(round(len(text) * val_fraction))
    return text[: len(text) - n_val], text[len(text) - n_val :]


def paragraph_start(text: str, at: int = 0) -> int:
    """Where the paragraph holding position `at` begins: just after the last blank line before it
    (0 if there is none). Passages shown to a user start there, not mid-word."""
    i = text.rfind("\n\n", 0, max(at, 0) + 1)
    return 0 if i < 0 else min(i + 2, len(text))


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
