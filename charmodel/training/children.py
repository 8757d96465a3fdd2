"""The app's child processes, one JSON line per event on stdout (their log on stderr): a training
job, a timing of training speeds, an atlas build. `python -m charmodel.training.children KIND`;
jobs.py starts them and reads their events. TensorFlow loads here, never in the app's server."""

import json
import os
import sys
import threading

from charmodel.engine import cores, set_threads
from charmodel.errors import CharModelError
from charmodel.training.jobs import NICE


def _lower_priority() -> None:
    """Run below the app: TensorFlow keeps every core (as from the command line), and the app's
    own reruns still come first (benchmarks/app_load.py measures a page while this trains)."""
    try:
        os.nice(NICE)
    except OSError:
        pass


def _event_stream():
    """(the events file, send): this child's stdout becomes the event stream of JSON lines, and
    anything else printed goes to the log (stderr), never into it."""
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)

    def send(**event):
        events.write(json.dumps(event) + "\n")

    return events, send


def train_main() -> int:
    from charmodel.training.train import TrainListener, train

    events, send = _event_stream()
    job = json.loads(sys.stdin.readline())
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.readline()  # a "stop" line, or EOF when the server has gone
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    class Listener(TrainListener):
        def on_batch(self, epoch, batch, steps, loss, chars_per_s):
            send(event="batch", epoch=epoch, batch=batch, steps=steps, loss=loss, chars_per_s=chars_per_s)

        def on_epoch(self, row, sample):
            send(event="epoch", row=row, sample=sample)

        def on_notice(self, text):
            send(event="notice", text=text)

    try:
        _lower_priority()
        train(job["run"], job["text_path"], resume=job["resume"], listener=Listener(), stop=stop,
              max_bytes=job["max_bytes"], corpus_name=job["corpus_name"], **job["settings"])
        send(event="done", status="stopped" if stop.is_set() else "finished", error="")
    except CharModelError as e:
        send(event="done", status="failed", error=str(e))
    except Exception as e:  # a bug: report one line, keep the traceback in the log
        import traceback

        traceback.print_exc()
        send(event="done", status="failed", error=f"training crashed: {e.__class__.__name__}: {e}")
    events.close()
    return 0


def speeds_main() -> int:
    """The SpeedJob's child: time what it is given, one JSON line per event on stdout."""
    from charmodel.training.recipe import time_missing, training_threads

    events, send = _event_stream()
    job = json.loads(sys.stdin.readline())
    try:
        _lower_priority()
        time_missing(job["settings"], training_threads(), job["vocab_size"], say=lambda key: send(event="timing", key=key))
        send(event="done", status="finished")
    except CharModelError as e:
        send(event="done", status="failed", error=str(e))
    except Exception as e:  # a bug: one line here, the traceback in the log
        import traceback

        traceback.print_exc()
        send(event="done", status="failed", error=f"timing crashed: {e.__class__.__name__}: {e}")
    events.close()
    return 0


def atlas_main(run: str, checkpoint: str) -> int:
    """The AtlasJob's child: build the atlas, one JSON line per progress step, then its summary."""
    from charmodel.analysis import atlas

    events, send = _event_stream()
    os.nice(NICE)
    set_threads(1)
    try:
        path = atlas.build_for_run(run, checkpoint, progress=lambda fraction, stage: send(
            event="progress", fraction=round(fraction, 4), stage=stage), blas_threads=cores())  # niced: the app comes first
        built = atlas.load(run, checkpoint)
        send(event="done", **built.coverage(), seconds=built.meta["seconds"], bytes=path.stat().st_size, file=str(path))
    except CharModelError as e:
        print(f"error: {e}", file=sys.stderr)
        events.close()
        return 2
    events.close()
    return 0


MAINS = {"train": train_main, "speeds": speeds_main, "atlas": atlas_main}

if __name__ == "__main__":
    sys.exit(MAINS[sys.argv[1]](*sys.argv[2:]))
