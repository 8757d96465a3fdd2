"""A run, opened once: its config.json as a typed object, read and checked in one place and
written by one function (training and the Keras import both call `write_config`), and what a
run folder holds (its split texts, checkpoints) as attributes. Analyses, the CLI and the app take a
Run instead of a path each re-reads."""

import functools
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from charmodel.errors import CharModelError
from charmodel.run import folder
from charmodel.run.corpus import Vocab, clean, decode, split


@dataclass(frozen=True)
class Architecture:
    """The network's shape."""

    layers: int  # LSTM layers
    units: int  # cells per layer
    vocab_size: int  # characters the model reads and predicts
    embedding: int  # size of the character embedding (the one-hot or scalar input's width, for an import)
    dropout: float = 0.0  # dropout after each LSTM layer, in training
    recurrent_dropout: float | None = None  # dropout inside the recurrence (trained runs only)
    input: str | None = None  # a Keras import's input: embedding, onehot or scalar (None: embedding)
    head: str | None = None  # what reads the LSTMs: None, a Dense on the last layer; "attention", textgenrnn's
    padding: int | None = None  # the id a text's first windows are padded with (textgenrnn's 0); never sampled
    start: int | None = None  # the id every text begins with (textgenrnn's <s>); generation puts it first


@dataclass(frozen=True)
class Corpus:
    """The text the run learned, and how it was split."""

    path: str  # the file's name as the person gave it
    sha256: str  # of the file as read, to refuse resuming on another text
    collapse_spaces: bool  # runs of spaces were collapsed when cleaning
    val_fraction: float  # the last share of the cleaned text, contiguous, is validation
    chars: int  # cleaned characters in all
    train_chars: int
    val_chars: int


@dataclass(frozen=True)
class RunConfig:
    """config.json: one run's architecture, training settings, corpus and vocabulary."""

    architecture: Architecture
    training: dict  # the training settings (settings.py) as trained; empty for an import
    corpus: Corpus
    vocab: str  # the characters, in index order
    window: int | None = None  # trained on windows of this many characters from a zero state; None: stateful
    imported: dict | None = None  # where a Keras import came from (file, format, Keras version, layers)
    created: str | None = None  # when training started it
    format: int = 1

    @classmethod
    def from_json(cls, data: dict, where) -> "RunConfig":
        for key in ("architecture", "training", "corpus", "vocab"):
            if key not in data:
                raise CharModelError(f"{where} has no '{key}' section; the run folder is damaged.")
        try:
            return cls(architecture=Architecture(**_known(Architecture, data["architecture"])),
                       corpus=Corpus(**_known(Corpus, data["corpus"])),
                       **{k: data[k] for k in ("training", "vocab", "window", "imported", "created", "format")
                          if k in data})
        except TypeError as e:
            raise CharModelError(f"{where} lacks a field it needs ({e}); the run folder is damaged.") from None

    def to_json(self) -> dict:
        """The dict config.json holds (optional fields that are None left out; the window always written)."""
        out = {"format": self.format, "architecture": _present(asdict(self.architecture)), "training": self.training,
               "corpus": asdict(self.corpus), "vocab": self.vocab}
        return out | {"window": self.window} | _present({"imported": self.imported, "created": self.created})

    @property
    def input(self) -> str:
        return self.architecture.input or "embedding"


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _present(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None}


def write_config(run, config: RunConfig) -> None:
    """The one writer of config.json (atomic: a crash leaves the old file or the new one)."""
    folder.atomic_write_json(Path(run) / folder.CONFIG, config.to_json())


@dataclass(frozen=True, eq=False)
class Run:
    """One run folder, its config read once. Run.open(path); Run.of(run_or_path) takes either."""

    path: Path
    config: RunConfig
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, path) -> "Run":
        path = Path(path)
        return cls(path, RunConfig.from_json(folder.read_config(path), path / folder.CONFIG))

    @classmethod
    def of(cls, run) -> "Run":
        return run if isinstance(run, Run) else cls.open(run)

    def __fspath__(self) -> str:  # a Run goes wherever a path to its folder goes
        return str(self.path)

    def __truediv__(self, name) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        return self.path.name

    @functools.cached_property
    def vocab(self) -> Vocab:
        return Vocab(self.config.vocab)

    @property
    def window(self) -> int | None:
        return self.config.window

    def corpus_text(self) -> str:
        """The run's cleaned corpus, from its own copy, cleaned with the run's own options."""
        if "corpus" not in self._cache:
            path = self.path / "corpus.txt"
            if not path.is_file():
                raise CharModelError(f"run folder {self.path} has no corpus.txt; the run folder is incomplete.")
            raw = decode(path.read_bytes(), name=str(path), max_bytes=1 << 62)
            self._cache["corpus"] = clean(raw, collapse_spaces=self.config.corpus.collapse_spaces)
        return self._cache["corpus"]

    def split(self) -> tuple[str, str]:
        """(train, val), by the run's own split rule."""
        return split(self.corpus_text(), self.config.corpus.val_fraction)

    def clean(self, text: str) -> str:
        """Another text cleaned as this run's corpus was."""
        return clean(text, self.config.corpus.collapse_spaces)

    def checkpoint(self, which: str | None = None) -> Path:
        """The file of 'best', 'latest' or a kept epoch; None: the default checkpoint."""
        return folder.checkpoint_path(self.path, which or self.default_checkpoint())

    def checkpoints(self) -> list[str]:
        return folder.available_checkpoints(self.path)

    def default_checkpoint(self) -> str:
        """'best' if the run has it, else the first checkpoint it has (folder.default_checkpoint)."""
        return folder.default_checkpoint(self.path)

    def history(self) -> list[dict]:
        return folder.read_history(self.path)
