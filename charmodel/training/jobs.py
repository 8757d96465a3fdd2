"""The app's background work, in child processes (children.py), never in the server: one training
job per app process, atlas builds, and timings of training speeds.

The app holds one JobManager (st.cache_resource), so a job survives reruns and page switches.
A child reads its job as one JSON line on stdin (any later line, or stdin closing, asks a training
child to stop after its batch, with a checkpoint) and writes one JSON line per event on stdout;
everything else goes to a log whose tail the page shows if the child dies. A crash or kill of a
child is reported; the server keeps working and the run keeps its last finished epoch.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from charmodel.errors import CharModelError

NICE = 10  # the child's priority increment: the app's own reruns come first
LOG_TAIL = 12  # lines of the child's log shown when it dies


@dataclass
class Progress:
    run: str
    status: str = "starting"  # starting, training, stopping, finished, stopped, failed
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    steps: int = 0
    chars_per_s: float = 0.0
    batches: list = field(default_factory=list)  # (epoch, batch, steps, loss)
    rows: list = field(default_factory=list)  # history rows: the run's earlier epochs, then new ones
    samples: dict = field(default_factory=dict)  # epoch -> sample text
    error: str = ""  # one line
    log_tail: str = ""  # the last lines of the child's log, when it failed
    notices: list = field(default_factory=list)  # lines training said at start-up (strategy, cuDNN)
    started: float = field(default_factory=time.time)
    epoch_started: float = field(default_factory=time.time)

    @property
    def running(self) -> bool:
        return self.status in ("starting", "training", "stopping")

    def eta_s(self) -> float | None:
        """Seconds left in this epoch, from its pace so far."""
        if not self.batch or not self.steps:
            return None
        spent = time.time() - self.epoch_started
        return spent / self.batch * (self.steps - self.batch)


def _describe_exit(code: int) -> str:
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        killed = " (killed; out of memory?)" if -code == signal.SIGKILL else ""
        return f"it was ended by {name}{killed}"
    return f"it exited with status {code}"


def _child(module_args: list[str], name: str, stdin: bool = False):
    """(Popen, log path) of `python -m ARGS`, reading JSON lines from its stdout; what it prints to
    stderr goes to a log file. The package is importable in the child however the app was started."""
    fd, log_path = tempfile.mkstemp(prefix=f"charmodel-{name}-", suffix=".log")
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", *module_args], stdin=subprocess.PIPE if stdin else None,
                                   stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1, env=env)
    return process, log_path


def _tail(path, lines: int = LOG_TAIL) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, lines))
    except OSError:
        return ""


class _ChildJob:
    """What every job the app runs in a child process shares: the JSON events it prints, read by
    a thread until its stdout closes (`_follow`), and whether it is still going."""

    process: subprocess.Popen
    reader: threading.Thread

    def _read_events(self, name: str) -> None:
        self.reader = threading.Thread(target=self._follow, name=name, daemon=True)
        self.reader.start()

    def _events(self):
        """The child's events, one dict per JSON line of its stdout (other lines skipped)."""
        for line in self.process.stdout:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue

    def _follow(self):  # each job reads its own events
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        return self.process.poll() is None or self.reader.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the child has exited and its events are read; True if it has."""
        self.reader.join(timeout)
        return not self.reader.is_alive()


class TrainingJob(_ChildJob):
    """A training child process and what the app knows of it."""

    def __init__(self, run: Path, text_path, resume: bool, settings: dict, max_bytes: int,
                 corpus_name: str | None = None, cleanup=(), on_end=None):
        from charmodel.run.folder import read_history

        self.run = Path(run)
        self.on_end = on_end  # called with this job from the reader thread once the child has gone
        self.cleanup = [Path(p) for p in cleanup]  # files to delete when the child has gone (an upload's copy)
        self.lock = threading.Lock()
        self.progress = Progress(run=self.run.name, epochs=settings.get("epochs", 0))
        if resume:
            self.progress.rows = read_history(self.run)  # show the whole history, not only new epochs
        self.process, self.log_path = _child(["charmodel.training.children", "train"], f"train-{self.run.name}", stdin=True)
        job = dict(run=str(self.run), text_path=None if text_path is None else str(text_path), resume=resume,
                   settings=settings, max_bytes=max_bytes, corpus_name=corpus_name)
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        self._read_events(f"train-{self.run.name}")

    def _follow(self):
        """Read the child's events until its stdout closes, then settle the final status."""
        done = False
        for event in self._events():
            with self.lock:
                done |= self._apply(event)
        code = self.process.wait()
        for path in self.cleanup:
            path.unlink(missing_ok=True)
        with self.lock:
            p = self.progress
            if not done:
                p.status = "failed"
                p.error = f"The training process stopped unexpectedly: {_describe_exit(code)}. " \
                          "The run keeps its last finished epoch; Resume continues from it."
            if p.status == "failed":
                p.log_tail = self.log_tail()
        if self.on_end is not None:
            self.on_end(self)

    def _apply(self, event: dict) -> bool:
        p = self.progress
        if event["event"] == "batch":
            if event["epoch"] != p.epoch:
                p.epoch_started = time.time()
            if p.status != "stopping":
                p.status = "training"
            p.epoch, p.batch, p.steps, p.chars_per_s = (event[k] for k in ("epoch", "batch", "steps", "chars_per_s"))
            p.batches.append((event["epoch"], event["batch"], event["steps"], event["loss"]))
        elif event["event"] == "epoch":
            row = event["row"]
            p.rows = [r for r in p.rows if r["epoch"] < row["epoch"]] + [row]
            p.samples[row["epoch"]] = event["sample"]
        elif event["event"] == "notice":
            p.notices.append(event["text"])
        elif event["event"] == "done":
            p.status, p.error = event["status"], event["error"]
            return True
        return False

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        return _tail(self.log_path, lines)

    def stop(self) -> None:
        with self.lock:
            if self.progress.running:
                self.progress.status = "stopping"
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):  # already gone
            pass

    def snapshot(self) -> Progress:
        """A copy the page can read without holding the lock."""
        with self.lock:
            p = self.progress
            return Progress(**{**p.__dict__, "batches": list(p.batches), "rows": list(p.rows), "notices": list(p.notices),
                               "samples": dict(p.samples)})


class JobManager:
    """Holds at most one running job; a second start is refused while its process lives."""

    def __init__(self, atlas_after: bool = True):
        self._lock = threading.Lock()
        self.job: TrainingJob | None = None
        self.atlases: dict[tuple[str, str], AtlasJob] = {}  # atlas builds of this app process, by (run folder, checkpoint)
        self.speeds: SpeedJob | None = None
        self.atlas_after = atlas_after  # build a run's atlas when its training job ends

    def start(self, run, text_path=None, resume=False, settings=None, max_bytes=10 * 2**20, corpus_name=None,
              cleanup=()) -> TrainingJob:
        with self._lock:
            if self.job is not None and self.job.alive:
                raise CharModelError(
                    f"a training job for run '{self.job.run.name}' is already running; "
                    "stop it or wait for it to finish before starting another."
                )
            self.job = TrainingJob(run, text_path, resume, dict(settings or {}), max_bytes, corpus_name, cleanup,
                                   on_end=self._trained if self.atlas_after else None)
            return self.job

    def _trained(self, job: TrainingJob) -> None:
        """The atlas of the best weights waits for the person when training ends (an epoch finished)."""
        if any(r["epoch"] for r in job.snapshot().rows) and (job.run / "best.npz").is_file():
            self.start_atlas(job.run, "best")

    def start_atlas(self, run, checkpoint: str) -> "AtlasJob":
        """Build this checkpoint's atlas in a child process, unless a build of it is under way."""
        key = (str(Path(run)), checkpoint)
        with self._lock:
            if key not in self.atlases or not self.atlases[key].alive:
                self.atlases[key] = AtlasJob(run, checkpoint)
            return self.atlases[key]

    def atlas(self, run, checkpoint: str) -> "AtlasJob | None":
        return self.atlases.get((str(Path(run)), checkpoint))

    def time_speeds(self, settings_list: list[dict], vocab_size: int = 100) -> "SpeedJob":
        """Time these training settings here in a child process, unless a timing is under way (or
        the same timing failed: its error stands, rather than a new child on every page run)."""
        with self._lock:
            last = self.speeds
            if last is None or not last.alive and not (last.status == "failed" and last.settings == settings_list):
                self.speeds = SpeedJob(settings_list, vocab_size)
            return self.speeds

    def stop(self) -> None:
        with self._lock:
            if self.job is not None:
                self.job.stop()


class AtlasJob(_ChildJob):
    """An atlas build (`python -m charmodel atlas --events`) in a child process at low priority, and
    what the app knows of it: fraction done, stage, and at the end the build's summary or an error."""

    def __init__(self, run, checkpoint: str):
        self.run, self.checkpoint = Path(run), checkpoint
        self.fraction, self.stage, self.status, self.error, self.summary = 0.0, "starting", "running", "", None
        self.process, self.log_path = _child(["charmodel.training.children", "atlas", str(self.run), checkpoint],
                                              f"atlas-{self.run.name}")
        self._read_events(f"atlas-{self.run.name}")

    def _follow(self):
        for event in self._events():
            if event.get("event") == "progress":
                self.fraction, self.stage = event["fraction"], event["stage"]
            elif event.get("event") == "done":
                self.summary, self.fraction, self.status = event, 1.0, "finished"
        code = self.process.wait()
        if self.status != "finished":
            errors = [l[len("error: "):].strip() for l in _tail(self.log_path).splitlines() if l.startswith("error: ")]
            self.error = errors[-1] if errors else f"the atlas build stopped: {_describe_exit(code)}."
            self.status = "failed"


class SpeedJob(_ChildJob):
    """A few timed batches of each of several training settings (`recipe.time_missing`), in a
    child process set up as the training child is (lower priority, every core),
    recorded in speeds.json; what the app knows of it: which settings it is timing, and whether
    it failed."""

    def __init__(self, settings_list: list[dict], vocab_size: int = 100):
        self.settings, self.timing, self.status, self.error = settings_list, "", "running", ""
        self.process, self.log_path = _child(["charmodel.training.children", "speeds"], "speeds", stdin=True)
        self.process.stdin.write(json.dumps({"settings": settings_list, "vocab_size": vocab_size}) + "\n")
        self.process.stdin.close()
        self._read_events("speeds")

    def _follow(self):
        for event in self._events():
            if event.get("event") == "timing":
                self.timing = event["key"]
            elif event.get("event") == "done":
                self.status, self.error = event["status"], event.get("error", "")
        code = self.process.wait()
        if self.status == "running":
            self.status, self.error = "failed", f"timing the batches stopped: {_describe_exit(code)}."


def training_policy(settings) -> tuple[bool, int | None, str]:
    """(enabled, max_epochs, message) from a mapping such as os.environ or st.secrets.

    CHARMODEL_TRAINING=off switches training off (for hosted deployments);
    CHARMODEL_MAX_EPOCHS=N caps the epochs of any job started from the app.
    """
    enabled = str(settings.get("CHARMODEL_TRAINING", "on")).strip().lower() not in ("off", "0", "false", "no")
    cap = settings.get("CHARMODEL_MAX_EPOCHS")
    try:
        cap = int(cap) if cap not in (None, "") else None
    except (TypeError, ValueError):
        raise CharModelError(f"CHARMODEL_MAX_EPOCHS={cap!r} is not a whole number; fix the setting.") from None
    if not enabled:
        return False, cap, "Training is switched off on this deployment (CHARMODEL_TRAINING=off)."
    if cap is not None:
        return True, cap, f"Training is capped at {cap} epochs on this deployment (CHARMODEL_MAX_EPOCHS)."
    return True, None, ""


def corpus_facts_of(path) -> tuple[int, int]:
    """(characters, distinct characters) of a text file (raw, before cleaning: enough for an estimate)."""
    from charmodel.run.corpus import read_text

    text = read_text(path)
    return len(text), len(set(text))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


def describe_shape(settings: dict) -> str:
    """The settings that set training speed, in words: "2x512 at batch 64 without recurrent dropout"."""
    rd = "with" if settings.get("recurrent_dropout") else "without"
    return f"{settings['layers']}x{settings['units']} at batch {settings['batch_size']} {rd} recurrent dropout"


def training_speed(root, settings: dict) -> tuple[float, str] | None:
    """(chars/s, where the figure comes from) for these settings in the app's training child: the
    median epoch speed of the run under `root` with the same size, batch and use of recurrent
    dropout that has the longest record; else a few batches timed here (speeds.json); else None."""
    from statistics import median

    from charmodel.run.folder import list_runs, read_config, read_history
    from charmodel.training.recipe import EFFICIENCY, known_speeds, speed_key, training_threads

    key = lambda layers, units, batch, rd: (layers, units, batch, bool(rd))
    wanted = key(settings["layers"], settings["units"], settings["batch_size"], settings.get("recurrent_dropout", 0.0))
    measured = {}
    for name in list_runs(root):
        try:
            config = read_config(Path(root) / name)
            arch, training = config["architecture"], config["training"]
            rows = read_history(Path(root) / name)
            found = key(arch["layers"], arch["units"], training["batch_size"], arch.get("recurrent_dropout", 0.0))
        except (CharModelError, KeyError, TypeError):
            continue
        if found == wanted and rows:
            measured[name] = (len(rows), median(r["chars_per_s"] for r in rows))
    if measured:
        name = max(measured, key=lambda n: measured[n][0])  # the longest record
        return measured[name][1], f"the {measured[name][1]:,.0f} chars/s run {name} recorded (median of its epochs)"
    timed = known_speeds().get(speed_key(settings, training_threads()))
    if timed:  # validation, checkpoints and samples take their share of the time too
        return timed * EFFICIENCY, (f"{timed * EFFICIENCY:,.0f} chars/s (a few batches timed on this machine, less the "
                                    f"{1 - EFFICIENCY:.0%} of training spent outside batches)")
    return None


def training_estimate(root, settings: dict, chars: int | None) -> str | None:
    """One line: about how long these settings take on `chars` characters (with settings["minutes"]:
    how many passes fit in the budget), at training_speed's figure; "" without a corpus; None when
    this machine has no speed for these settings yet (JobManager.time_speeds measures one)."""
    from charmodel.run.corpus import VAL_FRACTION

    if not chars:
        return ""
    found = training_speed(root, settings)
    if found is None:
        return None
    chars_per_s, source = found
    train_chars = chars * (1 - VAL_FRACTION)
    what = f"{describe_shape(settings)} on {chars:,} characters"
    full_s = settings["epochs"] * train_chars / chars_per_s
    minutes = settings.get("minutes")
    if minutes and full_s > minutes * 60:
        passes = minutes * 60 * chars_per_s / train_chars
        return f"About {passes:.0f} passes over the text in {minutes:g} minutes: {what}, at {source}."
    return f"About {_duration(full_s)} for {settings['epochs']} epochs of {what}, at {source}."
