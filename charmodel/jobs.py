"""One background training job per process, for the app.

The app holds a single `JobManager` (through st.cache_resource), so the job survives reruns,
page switches and browser refreshes. The worker thread never touches Streamlit: it writes to a
lock-protected progress record, and the page polls `snapshot()`. Generation and visualisation
read checkpoint files, never the model being trained.
"""

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CharModelError
from .train import TrainListener


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
    rows: list = field(default_factory=list)  # history rows as they arrive
    samples: dict = field(default_factory=dict)  # epoch -> sample text
    error: str = ""
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


class _Listener(TrainListener):
    def __init__(self, job: "TrainingJob"):
        self.job = job

    def on_batch(self, epoch, batch, steps, loss, chars_per_s):
        with self.job.lock:
            p = self.job.progress
            if epoch != p.epoch:
                p.epoch_started = time.time()
            p.status = "stopping" if self.job.stop.is_set() else "training"
            p.epoch, p.batch, p.steps, p.chars_per_s = epoch, batch, steps, chars_per_s
            p.batches.append((epoch, batch, steps, loss))

    def on_epoch(self, row, sample):
        with self.job.lock:
            self.job.progress.rows.append(dict(row))
            self.job.progress.samples[row["epoch"]] = sample


class TrainingJob:
    def __init__(self, run: Path, text_path, resume: bool, settings: dict, max_bytes: int):
        self.run, self.stop, self.lock = Path(run), threading.Event(), threading.Lock()
        self.progress = Progress(run=self.run.name, epochs=settings.get("epochs", 0))
        self._args = (text_path, resume, settings, max_bytes)
        self.thread = threading.Thread(target=self._work, name=f"train-{self.run.name}", daemon=True)

    def _work(self):
        from .train import train  # imports TensorFlow, in this thread, only now

        text_path, resume, settings, max_bytes = self._args
        try:
            train(self.run, text_path, resume=resume, listener=_Listener(self), stop=self.stop,
                  max_bytes=max_bytes, **settings)
            status, error = ("stopped" if self.stop.is_set() else "finished"), ""
        except CharModelError as e:
            status, error = "failed", str(e)
        except Exception as e:  # a bug: keep the app alive, show the last line, log the rest
            traceback.print_exc()
            status, error = "failed", f"training crashed: {e.__class__.__name__}: {e}"
        with self.lock:
            self.progress.status, self.progress.error = status, error

    def snapshot(self) -> Progress:
        """A copy the page can read without holding the lock."""
        with self.lock:
            p = self.progress
            return Progress(**{**p.__dict__, "batches": list(p.batches), "rows": list(p.rows),
                               "samples": dict(p.samples)})


class JobManager:
    """Holds at most one running job; a second start is refused."""

    def __init__(self):
        self._lock = threading.Lock()
        self.job: TrainingJob | None = None

    def start(self, run, text_path=None, resume=False, settings=None, max_bytes=10 * 2**20) -> TrainingJob:
        with self._lock:
            if self.job is not None and self.job.thread.is_alive():
                raise CharModelError(
                    f"a training job for run '{self.job.run.name}' is already running; "
                    "stop it or wait for it to finish before starting another."
                )
            self.job = TrainingJob(run, text_path, resume, dict(settings or {}), max_bytes)
            self.job.thread.start()
            return self.job

    def stop(self) -> None:
        with self._lock:
            if self.job is not None:
                self.job.stop.set()


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
