"""The app's training job runs in a child process: progress, Stop, a killed child, one job at a time."""

import os
import signal
import time

import pytest
from streamlit.testing.v1 import AppTest

from charmodel.run import folder as runfolder
from charmodel.training.jobs import JobManager

from .conftest import ROOT

TINY = dict(layers=1, units=8, embedding=4, seq_len=20, batch_size=8)


pytestmark = pytest.mark.slow  # training children


def wait_for(predicate, timeout=120.0, step=0.2):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(step)


def test_training_child_reports_progress_and_finishes(tmp_path, small_corpus):
    upload = tmp_path / "upload-123.txt"  # as the Train page writes an upload
    upload.write_bytes(small_corpus.read_bytes())
    job = JobManager().start(tmp_path / "run", upload, settings=dict(TINY, epochs=2), corpus_name="my story.txt",
                             cleanup=[upload])
    assert job.process.pid != os.getpid()
    assert job.wait(180)
    assert not upload.exists()  # the temporary copy is gone; the run keeps corpus.txt
    assert runfolder.read_config(tmp_path / "run")["corpus"]["path"] == "my story.txt"
    p = job.snapshot()
    assert p.status == "finished", (p.error, job.log_tail())
    assert [r["epoch"] for r in p.rows] == [1, 2] and sorted(p.samples) == [1, 2]
    assert p.batches and p.batches[-1][0] == 2 and p.chars_per_s > 0
    assert [r["epoch"] for r in runfolder.read_history(tmp_path / "run")] == [1, 2]


def test_what_training_says_at_start_up_reaches_the_page(tmp_path, small_corpus):
    job = JobManager().start(tmp_path / "run", small_corpus,
                             settings=dict(TINY, epochs=1, strategy="mirrored", jit_compile=True))
    assert job.wait(180)
    p = job.snapshot()
    assert p.status == "finished", (p.error, job.log_tail())
    assert p.notices[0] == "--jit applies to --strategy one only; mirrored trains without XLA."
    assert p.notices[1].startswith("training on 1 replica (mirrored; this worker: ")


def test_stop_ends_the_child_with_a_checkpoint_and_resume_shows_the_whole_history(tmp_path, small_corpus):
    manager = JobManager()
    job = manager.start(tmp_path / "run", small_corpus, settings=dict(TINY, epochs=500))
    wait_for(lambda: job.snapshot().status == "training")
    manager.stop()
    assert job.snapshot().status == "stopping"
    assert job.wait(120)
    p = job.snapshot()
    assert p.status == "stopped" and not p.error
    state = runfolder.read_train_state(tmp_path / "run")
    assert state["epoch"] == len(p.rows) >= 1 and (tmp_path / "run" / state["keras_weights"]).is_file()

    again = manager.start(tmp_path / "run", resume=True, settings={"epochs": state["epoch"] + 1})
    assert again.wait(120) and again.snapshot().status == "finished", again.log_tail()
    assert [r["epoch"] for r in again.snapshot().rows] == list(range(1, state["epoch"] + 2))


def test_a_killed_child_is_one_line_on_the_page_and_the_app_keeps_working(tmp_path, small_corpus, monkeypatch):
    from pages.shared.background import job_manager  # the manager the Train page uses

    monkeypatch.setenv("CHARMODEL_WEIGHTS", str(tmp_path))
    manager = job_manager()
    job = manager.start(tmp_path / "run", small_corpus, settings=dict(TINY, epochs=500))
    try:
        wait_for(lambda: job.snapshot().status == "training")
        home = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
        assert any("Training **run**: epoch" in c.value for c in home.sidebar.caption)  # every page's sidebar
        os.kill(job.process.pid, signal.SIGKILL)
        assert job.wait(60)
    finally:
        manager.stop()
    p = job.snapshot()
    assert p.status == "failed" and "SIGKILL" in p.error and "\n" not in p.error
    assert not job.alive

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert any("stopped unexpectedly" in e.value for e in at.error)
    assert any("failed" in s.value for s in at.subheader)
    assert at.button(key="train_resume").label == "Resume run"  # Resume acts on the job that stopped
    # the server still trains: a new job starts once the dead one is reported
    next_job = manager.start(tmp_path / "next", small_corpus, settings=dict(TINY, epochs=1))
    assert next_job.wait(120) and next_job.snapshot().status == "finished", next_job.log_tail()

