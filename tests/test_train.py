import json
import os
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.engine import Engine
from charmodel.engine.scoring import BASELINES
from charmodel.run import folder as runfolder
from charmodel.run.corpus import Vocab
from charmodel.run.handle import Run
from charmodel.training.train import TrainListener, epoch_batches, streams, train

from .conftest import ROOT, TINY

pytestmark = pytest.mark.slow  # training with real TensorFlow


def optimizer_steps(run) -> int:
    state = runfolder.read_train_state(run)
    with h5py.File(run / state["keras_weights"], "r") as f:
        return int(f["optimizer/vars/0"][()])  # Adam's iteration counter


def test_training_writes_a_complete_run_folder(trained_run):
    config = runfolder.read_config(trained_run)
    assert config["architecture"] == {"layers": 1, "units": 16, "dropout": 0.0, "recurrent_dropout": 0.0,
                                      "embedding": 8, "vocab_size": len(config["vocab"])}
    assert len(config["corpus"]["sha256"]) == 64 and config["corpus"]["val_fraction"] == 0.1
    history = runfolder.read_history(trained_run)
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(r["val_bpc"] > 0 and r["chars_per_s"] > 0 and 0 < r["batch_s"] <= r["wall_s"] for r in history)
    assert sorted(runfolder.read_samples(trained_run)) == [1, 2]
    assert (trained_run / BASELINES).is_file()  # written when training began (800 validation characters: none)
    assert runfolder.available_checkpoints(trained_run) == ["best", "latest", "1", "2"]
    assert runfolder.read_train_state(trained_run)["epoch"] == 2
    for which in runfolder.available_checkpoints(trained_run):
        Engine.load(trained_run, which)


def test_resume_continues_at_the_next_epoch_with_intact_history(trained_copy):
    before = runfolder.read_history(trained_copy)
    steps_before = optimizer_steps(trained_copy)
    history = train(trained_copy, resume=True, epochs=3)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert runfolder.read_history(trained_copy) == history
    assert history[:2] == before
    # the optimizer state came back: Adam's step counter kept counting instead of restarting
    assert optimizer_steps(trained_copy) > steps_before * 1.4
    assert list((trained_copy / "train_state").iterdir()) == [trained_copy / "train_state/epoch-0003.weights.h5"]


def test_plateau_cuts_the_learning_rate_and_patience_stops_across_a_resume(trained_copy):
    # the fixture ran 2 epochs with the defaults: a constant learning rate
    assert [r["lr"] for r in runfolder.read_history(trained_copy)] == [0.002, 0.002]
    # pretend the best validation loss so far was perfect: no later epoch can improve on it
    state = runfolder.read_train_state(trained_copy)
    runfolder.atomic_write_json(trained_copy / "train_state.json", {**state, "best_val_loss": 0.0})
    history = train(trained_copy, resume=True, epochs=9, lr_plateau=0.1, patience=3)
    assert runfolder.read_config(trained_copy)["training"]["lr_plateau"] == 0.1
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]  # three epochs without progress, then stop
    assert [r["lr"] for r in history[2:]] == pytest.approx([0.002, 0.0002, 0.00002])
    assert runfolder.read_train_state(trained_copy)["lr"] == pytest.approx(0.000002)


def test_resume_refuses_a_changed_architecture(trained_copy):
    with pytest.raises(CharModelError, match="units=16"):
        train(trained_copy, resume=True, epochs=3, units=32)


def test_resume_of_an_older_run_refuses_a_setting_it_did_not_have(trained_copy):
    config = runfolder.read_config(trained_copy)
    del config["architecture"]["recurrent_dropout"], config["training"]["weight_decay"]  # as written before them
    runfolder.atomic_write_json(trained_copy / "config.json", config)
    with pytest.raises(CharModelError, match="recurrent_dropout=0.0"):
        train(trained_copy, resume=True, epochs=3, recurrent_dropout=0.3)
    with pytest.raises(CharModelError, match="weight_decay=0.0"):
        train(trained_copy, resume=True, epochs=3, weight_decay=0.1)


def test_resume_of_a_finished_run_asks_for_more_epochs(trained_copy):
    with pytest.raises(CharModelError, match="already finished 2 of 2"):
        train(trained_copy, resume=True)


def test_new_training_never_overwrites_an_existing_run(trained_copy, small_corpus):
    with pytest.raises(CharModelError, match="already holds a run"):
        train(trained_copy, small_corpus, **TINY)


def test_listener_streams_batches_and_epochs_and_stop_ends_with_a_checkpoint(tmp_path, small_corpus):
    stop = threading.Event()

    class Recorder(TrainListener):
        batches, epochs = [], []

        def on_batch(self, epoch, batch, steps, loss, chars_per_s):
            self.batches.append((epoch, batch, steps, loss))
            if epoch == 2 and batch == 3:
                stop.set()

        def on_epoch(self, row, sample):
            self.epochs.append((row, sample))

    rec = Recorder()
    history = train(tmp_path / "r", small_corpus, listener=rec, stop=stop, **{**TINY, "epochs": 5})
    assert [r["epoch"] for r in history] == [1, 2]  # stopped during epoch 2, which was checkpointed
    steps = rec.batches[0][2]
    assert [b[:2] for b in rec.batches] == [(1, i) for i in range(1, steps + 1)] + [(2, 1), (2, 2), (2, 3)]
    assert all(b[3] > 0 for b in rec.batches)
    assert [r["epoch"] for r, _ in rec.epochs] == [1, 2] and all(s for _, s in rec.epochs)
    assert runfolder.read_train_state(tmp_path / "r")["epoch"] == 2
    Engine.load(tmp_path / "r", "latest")


def test_resume_continues_after_kill(tmp_path, small_corpus):
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "charmodel", "train", "--text-file", str(small_corpus), "--run", str(run),
           "--layers", "1", "--units", "16", "--embedding", "8", "--seq-len", "20", "--batch-size", "8",
           "--epochs", "4", "--dropout", "0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while runfolder.read_train_state(run) is None or runfolder.read_train_state(run)["epoch"] < 1:
        assert time.time() < deadline and proc.poll() is None, "training never finished an epoch"
        time.sleep(0.02)
    time.sleep(0.3)  # somewhere in the middle of epoch 2 or its checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    state = runfolder.read_train_state(run)
    assert state["epoch"] in (1, 2, 3)
    Engine.load(run, "latest")  # still loadable
    assert [r["epoch"] for r in runfolder.read_history(run)][: state["epoch"]] == list(range(1, state["epoch"] + 1))

    done = subprocess.run(cmd[:8] + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [r["epoch"] for r in runfolder.read_history(run)] == [1, 2, 3, 4]
    assert runfolder.read_train_state(run)["epoch"] == 4
    assert not list(run.rglob("*.tmp")) and not list(run.glob("train_state/tmp-*"))
    assert json.loads((run / "config.json").read_text())["training"]["epochs"] == 4


def test_kept_epochs_can_live_beside_the_run(trained_copy):
    (trained_copy / "checkpoints").rename(trained_copy.parent / f"{trained_copy.name}.checkpoints")
    assert runfolder.available_checkpoints(trained_copy) == ["best", "latest", "1", "2"]
    assert runfolder.checkpoint_path(trained_copy, "2").parent.name == f"{trained_copy.name}.checkpoints"
    Engine.load(trained_copy, "2")
    with pytest.raises(CharModelError, match="not best, latest or an epoch"):
        runfolder.checkpoint_path(trained_copy, "../../etc")


def test_streams_continue_each_other_row_by_row():
    ids = np.arange(1000)
    x, y = streams(ids, seq_len=10, batch_size=4, offset=3)
    assert x.shape == (4 * 24, 10) and (y == x + 1).all()
    batches = x.reshape(24, 4, 10)  # (batch, row, time)
    # row b of batch j + 1 starts where row b of batch j stopped: one unbroken stream per row
    assert (batches[1:, :, 0] == batches[:-1, :, -1] + 1).all()
    assert list(batches[0, :, 0]) == [3, 243, 483, 723]


def test_stateful_model_carries_state_between_calls():
    from charmodel.training.model import build, reset_states

    ids = np.random.default_rng(0).integers(10, size=(2, 12)).astype("int32")
    model = build(10, layers=1, units=8, dropout=0.0, embedding=4, stateful_batch=2)
    whole = np.asarray(model(ids))
    reset_states(model)
    halves = np.concatenate([np.asarray(model(ids[:, :6])), np.asarray(model(ids[:, 6:]))], axis=1)
    np.testing.assert_allclose(halves, whole, atol=1e-5)
    reset_states(model)
    assert not np.allclose(np.asarray(model(ids[:, 6:])), whole[:, 6:], atol=1e-3)  # zero state again


def test_a_run_can_start_from_another_runs_weights_with_carried_state(trained_run, tmp_path):
    corpus = trained_run.parent / "small.txt"
    history = train(tmp_path / "warm", corpus, **{**TINY, "epochs": 1, "lr": 1e-9},
                    init_from=str(trained_run), carry_state=True)
    config = runfolder.read_config(tmp_path / "warm")
    assert config["training"]["init_from"] == str(trained_run) and config["training"]["carry_state"] is True
    # a learning rate of 1e-9 leaves the starting weights as they were
    start, after = (runfolder.load_weights_npz(runfolder.checkpoint_path(r, "best")) for r in (trained_run, tmp_path / "warm"))
    for name in start:
        np.testing.assert_allclose(after[name], start[name], atol=1e-3)
    assert history[0]["val_loss"] < runfolder.read_history(trained_run)[0]["val_loss"]


def test_starting_from_a_run_of_another_shape_is_refused_before_anything_is_written(trained_run, tmp_path):
    with pytest.raises(CharModelError, match="units=16"):
        train(tmp_path / "warm", trained_run.parent / "small.txt", **{**TINY, "units": 32}, init_from=str(trained_run))
    assert not (tmp_path / "warm").exists()
    with pytest.raises(CharModelError, match="does not exist"):
        train(tmp_path / "warm", trained_run.parent / "small.txt", **TINY, init_from=str(tmp_path / "nope"))


@pytest.mark.parametrize("carry_state", [False, True])
def test_a_text_just_long_enough_gives_one_batch_in_every_epoch(carry_state):
    ids = np.arange(4 * 10 + 1)  # batch_size x seq_len + 1: no room for a random offset
    for epoch in range(5):
        x, y = epoch_batches(ids, 10, 4, seed=0, epoch=epoch, carry_state=carry_state)
        assert x.shape == (4, 10) and (y == x + 1).all()


def test_weight_decay_is_recorded_and_pulls_the_weights_towards_zero(trained_run, tmp_path):
    corpus = trained_run.parent / "small.txt"
    norms = {}
    for wd in (0.0, 0.5):
        run = tmp_path / f"wd{wd}"
        train(run, corpus, **{**TINY, "epochs": 1}, init_from=str(trained_run), weight_decay=wd)
        assert runfolder.read_config(run)["training"]["weight_decay"] == wd
        weights = runfolder.load_weights_npz(runfolder.checkpoint_path(run, "latest"))
        norms[wd] = sum(float(np.sum(w.astype(np.float64) ** 2)) for w in weights.values())
    # same start, seed and batches: only the decay differs
    assert norms[0.5] < norms[0.0]
    with pytest.raises(CharModelError, match="weight_decay must be"):
        train(tmp_path / "bad", corpus, **TINY, weight_decay=-0.1)


def test_clip_norm_is_recorded_and_changes_the_updates(trained_run, tmp_path):
    corpus = trained_run.parent / "small.txt"
    weights = {}
    for clip in (0.0, 1e-4):  # 1e-4: every batch's gradient is scaled to that norm, each by its own factor
        run = tmp_path / f"clip{clip}"
        train(run, corpus, **{**TINY, "epochs": 1}, init_from=str(trained_run), clip_norm=clip)
        assert runfolder.read_config(run)["training"]["clip_norm"] == clip
        weights[clip] = runfolder.load_weights_npz(runfolder.checkpoint_path(run, "latest"))
    # same start, seed and batches: Adam sees each batch's gradient rescaled, so the steps differ
    assert not np.allclose(weights[0.0]["lstm0_recurrent"], weights[1e-4]["lstm0_recurrent"], atol=1e-6)
    with pytest.raises(CharModelError, match="clip_norm must be"):
        train(tmp_path / "bad", corpus, **TINY, clip_norm=-1.0)


def test_recurrent_dropout_is_random_in_training_only_and_recorded(trained_run, tmp_path):
    from charmodel.training.model import build

    ids = np.arange(24).reshape(2, 12) % 10
    for rate in (0.0, 0.5):
        model = build(10, layers=1, units=8, dropout=0.0, embedding=4, recurrent_dropout=rate)
        first, second = (np.asarray(model(ids, training=True)) for _ in range(2))
        assert np.allclose(first, second) == (rate == 0.0)  # a fresh mask on every training call
        np.testing.assert_allclose(np.asarray(model(ids)), np.asarray(model(ids)))  # none at inference
    run = tmp_path / "rd"
    train(run, trained_run.parent / "small.txt", **{**TINY, "epochs": 1}, recurrent_dropout=0.25)
    assert runfolder.read_config(run)["architecture"]["recurrent_dropout"] == 0.25
    with pytest.raises(CharModelError, match="recurrent_dropout=0.25"):
        train(run, resume=True, epochs=2, recurrent_dropout=0.0)


def test_carried_batches_keep_the_streams_layout():
    from charmodel.training.train import epoch_starts

    ids = np.arange(1000)
    for epoch in range(3):
        offset = int(epoch_starts(len(ids), 10, 4, seed=0, epoch=epoch, carry_state=True)[0])
        x, y = epoch_batches(ids, 10, 4, seed=0, epoch=epoch, carry_state=True)
        xs, ys = streams(ids, 10, 4, offset)
        assert (x == xs).all() and (y == ys).all()


def test_the_corpus_is_memory_mapped_ids_that_are_made_again_when_damaged(trained_copy):
    from charmodel.training.train import IDS, corpus_ids

    config = runfolder.read_config(trained_copy)
    text = Run.open(trained_copy).corpus_text()
    ids = np.array(np.load(trained_copy / IDS, allow_pickle=False))  # a copy: the file is damaged below
    assert ids.dtype == np.uint8 and (np.asarray(ids) == Vocab(config["vocab"]).encode(text)).all()
    for damage in (b"not a numpy file", np.save, "short"):  # written in place: nothing maps the file now
        if damage == "short":
            np.save(trained_copy / IDS, ids[:100])
        elif damage is np.save:
            np.save(trained_copy / IDS, np.asarray(ids, dtype=np.int64))  # right length, wrong type
        else:
            (trained_copy / IDS).write_bytes(damage)
        again = corpus_ids(trained_copy / "corpus.txt", trained_copy / IDS, config)
        assert again.dtype == np.uint8 and (np.asarray(again) == ids).all()
        del again


def test_a_resume_remakes_missing_corpus_ids_whatever_the_size_limit(trained_copy):
    from charmodel.training.train import IDS

    (trained_copy / IDS).unlink()
    # the run's corpus (8,000 bytes) passed the limit when the run began; a resume does not re-check it
    history = train(trained_copy, resume=True, epochs=3, max_bytes=100)
    assert [r["epoch"] for r in history] == [1, 2, 3] and (trained_copy / IDS).is_file()


def test_a_time_budget_stops_training_with_the_best_weights_and_resume_gives_more_time(tmp_path, small_corpus):
    class Recorder(TrainListener):
        notices, lrs = [], []

        def on_notice(self, text):
            self.notices.append(text)

        def on_epoch_start(self, epoch, epochs, lr, steps):
            self.lrs.append(lr)

    run, rec = tmp_path / "budget", Recorder()
    t0 = time.monotonic()
    history = train(run, small_corpus, listener=rec, **{**TINY, "epochs": 10_000, "minutes": 0.1})
    assert time.monotonic() - t0 < 6 + 20  # the budget, plus building the model; never the 10,000 epochs
    assert 1 <= len(history) < 10_000
    assert rec.lrs == sorted(rec.lrs, reverse=True) and rec.lrs[-1] < rec.lrs[0]  # falling over the budget
    assert any("0.1-minute budget is spent" in n for n in rec.notices)
    state = runfolder.read_train_state(run)
    assert state["epoch"] == len(history)
    best = min(history, key=lambda r: r["val_loss"])
    assert state["best_epoch"] == best["epoch"]
    Engine.load(run, "best")
    assert "minutes" not in json.loads((run / "config.json").read_text())["training"]  # a session's, not the run's

    more = train(run, resume=True, **{"minutes": 0.05})
    assert len(more) > len(history) and more[: len(history)] == history
