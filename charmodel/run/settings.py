"""Every training setting, defined once: its default, valid range or type, help text, whether
--resume may change it, and where a user sets it.

Three things are built from SETTINGS and nothing else: `check` (what train.py accepts), the
`train` subcommand's flags (cli.py) and the Train page's widgets (pages/train.py). A new setting is
one new entry here; `tests/test_settings.py` shows it reaching all three.
"""

from dataclasses import dataclass, field
from typing import Any

from charmodel.errors import CharModelError
from charmodel.run.corpus import VAL_FRACTION


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str  # one phrase, the same on the CLI and in the app
    label: str = ""  # the Train page's label (default: the name in words)
    low: float | None = None  # valid range; None is unbounded
    high: float | None = None
    low_open: bool = False  # True: value > low (else >=)
    high_open: bool = False  # True: value < high (else <=)
    resumable: bool = False  # --resume may change it
    section: str = "training"  # where config.json records it: architecture, training or corpus (machine: nowhere)
    page: str | None = "more"  # where the Train page shows it: "main", "more", or None (CLI only)
    step: float | None = None  # the widget's step
    flag: str = ""  # CLI flag (default: --name-with-dashes); a bool's flag sets it to `not default`
    meta: dict = field(default_factory=dict)  # extra widget arguments (for example a number format)
    toggle: tuple | None = None  # the Train page's checkbox instead: (label, value when ticked, value when not)
    choices: tuple | None = None  # the values a text setting may take

    @property
    def kind(self) -> type:
        return type(self.default) if self.default is not None else str

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def range_text(self) -> str:
        if self.low is None and self.high is None:
            return "(any value)"
        if self.low is None:
            return f"at most {self.high:g}" if not self.high_open else f"less than {self.high:g}"
        lo = ("(" if self.low_open else "[") + f"{self.low:g}"
        if self.high is None:
            return f"at least {self.low:g}" if not self.low_open else f"more than {self.low:g}"
        return f"in {lo}, {self.high:g}" + (")" if self.high_open else "]")

    def check(self, value) -> Any:
        """The value, converted to this setting's type, or a CharModelError naming the setting."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise CharModelError(f"{self.name} must be true or false, not {value!r}.")
            return value
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise CharModelError(f"{self.name} must be a whole number {self.range_text()}, not {value!r}.")
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise CharModelError(f"{self.name} must be a number {self.range_text()}, not {value!r}.")
            value = float(value)
        elif self.choices is not None:
            if value not in self.choices:
                raise CharModelError(f"{self.name} must be one of {', '.join(self.choices)}, not {value!r}.")
            return value
        else:
            return value  # other text or list settings: their meaning is checked where they are used
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise CharModelError(f"{self.name} must be {self.range_text()}, not {value}.")
        return value


SETTINGS = [
    # architecture
    Setting("layers", 2, "LSTM layers, each followed by dropout", "LSTM layers", low=1, section="architecture",
            page="main"),
    Setting("units", 512, "units per LSTM layer (a unit is one cell: one h, one c)", "Units per layer", low=1,
            section="architecture", page="main", step=8),
    Setting("dropout", 0.2, "dropout after each LSTM layer", low=0, high=1, high_open=True, section="architecture",
            page="main", step=0.05),
    Setting("embedding", 64, "size of the character embedding", "Embedding size", low=1, section="architecture",
            page="main"),
    Setting("recurrent_dropout", 0.0, "variational dropout on each LSTM's recurrent input, one mask per sequence; "
            "slower per batch", low=0, high=1, high_open=True, section="architecture", step=0.05),
    # training
    Setting("seq_len", 100, "characters per training chunk (and per validation chunk)", "Sequence length", low=1,
            page="main", step=10),
    Setting("batch_size", 64, "chunks per batch", "Batch size", low=1, page="main"),
    Setting("epochs", 30, "total epochs; --resume continues up to this", low=1, resumable=True, page="main"),
    Setting("lr", 0.002, "Adam learning rate at epoch 1", "Learning rate", low=0, low_open=True, page="main",
            meta={"format": "%.4f"}),
    Setting("lr_decay", 1.0, "multiply the learning rate by this after each epoch", "Learning rate factor per epoch",
            low=0, low_open=True, high=1, step=0.05, page=None),
    Setting("lr_plateau", 1.0, "also multiply it by this after an epoch without a better validation loss "
            "(0.5 halves it; 1: off)", "Learning rate factor after an epoch without progress", low=0, low_open=True,
            high=1, resumable=True, step=0.05,
            toggle=("Halve the learning rate when validation stalls", 0.5, 1.0)),
    Setting("clip_norm", 0.0, "scale each batch's gradients down to at most this global norm (0: off)",
            "Gradient clipping (global norm)", low=0, step=0.5),
    Setting("weight_decay", 0.0, "decoupled weight decay (AdamW); 0 is plain Adam", "Weight decay", low=0, high=1,
            high_open=True, step=0.01),
    Setting("patience", 0, "stop after this many epochs without a better validation loss (0: never)",
            "Stop after epochs without progress", low=0, resumable=True),
    Setting("seed", 0, "random seed: weights, chunk offsets and order, per-epoch samples", low=0, page=None),
    Setting("jit_compile", False, "compile with XLA (helps small models on a CPU; measure first)", flag="--jit",
            page=None),
    Setting("carry_state", False, "batches continue each other and the LSTM state carries over (char-rnn's layout)",
            "Carry state between batches"),
    Setting("init_from", None, "start from the best weights of this run (same architecture and vocabulary)",
            "Start from the weights of"),
    Setting("keep_epochs", [1, 2, 5, 10, 20, 50, 100], "epochs kept under checkpoints/", page=None, flag="-"),
    # corpus
    Setting("collapse_spaces", True, "keep runs of spaces instead of collapsing them to one", "Collapse runs of "
            "spaces", section="corpus", flag="--keep-spaces", toggle=("Keep runs of spaces", False, True)),
    Setting("val_fraction", VAL_FRACTION, "last fraction of the cleaned text used for validation", low=0,
            low_open=True, high=0.5, high_open=True, section="corpus", page=None),
    # machine: how this session trains, not what the run is; config.json does not record it, and
    # --resume takes it afresh (a run trained on N replicas resumes on one, and the reverse)
    Setting("minutes", 0.0, "stop after this many minutes, keeping the best weights, with the learning rate falling "
            "linearly to zero over them (0: no time limit, train until the epochs are done); --resume --minutes M "
            "gives a run M more minutes", low=0, section="machine", page=None),
    Setting("strategy", "auto", "tf.distribute strategy: auto (mirrored when several GPUs are visible, else one), "
            "one device, mirrored (every local GPU), multi-worker (machines named by TF_CONFIG)",
            section="machine", page=None, choices=("auto", "one", "mirrored", "multi-worker")),
]
DEFAULTS = {s.name: s.default for s in SETTINGS}
RESUMABLE = tuple(s.name for s in SETTINGS if s.resumable)
ARCH = tuple(s.name for s in SETTINGS if s.section == "architecture")
TRAINING = tuple(s.name for s in SETTINGS if s.section == "training")
MACHINE = tuple(s.name for s in SETTINGS if s.section == "machine")


def check(settings: dict) -> dict:
    """Every setting, defaults filled in, each converted and checked; unknown names refused."""
    unknown = set(settings) - {s.name for s in SETTINGS}
    if unknown:
        raise CharModelError(f"unknown training setting(s): {', '.join(sorted(unknown))}.")
    return {s.name: s.check(settings.get(s.name, s.default)) for s in SETTINGS}


def add_flags(parser) -> None:
    """The train subcommand's flags, one per setting that has one."""
    for s in SETTINGS:
        if s.cli_flag == "-":
            continue
        if s.kind is bool:  # the flag sets the opposite of the default
            parser.add_argument(s.cli_flag, dest=s.name, action="store_const", const=not s.default, help=s.help)
        else:
            default = "" if s.default is None else f" (default {s.default})"
            parser.add_argument(s.cli_flag, dest=s.name, type=s.kind if s.kind in (int, float) else str,
                                choices=s.choices, help=s.help + default)


def from_args(args) -> dict:
    """The settings a parsed command line gave (flags left out are not included)."""
    return {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name, None) is not None}
