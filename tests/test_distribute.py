"""Training on TensorFlow's distribution strategies, for real, on the CPU: `mirrored` over two
logical CPU devices, `multi-worker` as two processes on 127.0.0.1, and the cuDNN eligibility of
the default settings. The runs are tiny models on 60,000 characters of Alice."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charmodel import CharModelError
from charmodel.engine import Engine
from charmodel.run import folder as runfolder
from charmodel.run.corpus import Vocab
from charmodel.run.settings import DEFAULTS
from charmodel.training.distribute import cudnn_blockers, is_chief

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--layers", "1", "--units", "32", "--embedding", "8", "--seq-len", "40", "--batch-size", "16",
        "--dropout", "0"]
LOSS_TOLERANCE = 1e-4  # the same global batch on 2 replicas or 1 device: summation order only


pytestmark = pytest.mark.slow  # TensorFlow's strategies


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "alice-60k.txt"
    path.write_bytes((ROOT / "data" / "alice.txt").read_bytes()[:60000])
    return path


def train_cli(run, corpus, *flags, env=None, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "charmodel", "train", "--run", str(run), "--text-file", str(corpus), *TINY, *flags]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                         timeout=300)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def history(run) -> list[dict]:
    with open(Path(run) / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# ---------------------------------------------------------------- cuDNN

def test_the_default_settings_are_cudnn_eligible_and_recurrent_dropout_is_named():
    from keras.src.backend.tensorflow.rnn import _do_lstm_arguments_support_cudnn as arguments_ok

    from charmodel.training.model import build

    def keras_would_use_cudnn(model) -> bool:  # Keras' own test on a GPU (`cudnn_ok` less the GPU), as LSTM.call applies it
        lstms = [l for l in model.layers if l.__class__.__name__ == "LSTM"]
        return all(arguments_ok(l.cell.activation, l.cell.recurrent_activation, l.unroll, l.cell.use_bias)
                   and not l.recurrent_dropout and l.use_cudnn in ("auto", True) for l in lstms)

    default = build(10, DEFAULTS["layers"], 8, DEFAULTS["dropout"], 4, recurrent_dropout=DEFAULTS["recurrent_dropout"])
    assert cudnn_blockers(default) == [] and keras_would_use_cudnn(default)
    blocked = build(10, 2, 8, 0.2, 4, recurrent_dropout=0.25)
    assert cudnn_blockers(blocked) == ["recurrent dropout 0.25"] and not keras_would_use_cudnn(blocked)


def test_the_chief_is_the_chief_task_or_worker_zero():
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    assert is_chief("") is True
    assert is_chief(json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})) is True
    assert is_chief(json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})) is False
    with_chief = {**cluster, "chief": ["127.0.0.1:3"]}
    assert is_chief(json.dumps({"cluster": with_chief, "task": {"type": "worker", "index": 0}})) is False
    assert is_chief(json.dumps({"cluster": with_chief, "task": {"type": "chief", "index": 0}})) is True
    for bad in ("{not json", '["a list"]', '{"task": {"index": "one"}}'):
        with pytest.raises(CharModelError, match="TF_CONFIG is not valid JSON with a task and a cluster"):
            is_chief(bad)


# ---------------------------------------------------------------- mirrored

def test_mirrored_on_two_cpu_devices_matches_one_device_and_resumes_either_way(tmp_path, corpus):
    one, two = tmp_path / "one", tmp_path / "two"
    train_cli(one, corpus, "--epochs", "2", "--strategy", "one")
    out = train_cli(two, corpus, "--epochs", "2", "--strategy", "mirrored", env={"CHARMODEL_CPU_DEVICES": "2"})
    assert "training on 2 replicas (mirrored" in out.stderr
    a, b = history(one), history(two)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == [1, 2]
    for key in ("train_loss", "val_loss"):
        assert np.allclose([r[key] for r in a], [r[key] for r in b], atol=LOSS_TOLERANCE, rtol=0), (a, b)
    # the same run folder either way: files, config (the strategy is not a property of the run)
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    c1, c2 = runfolder.read_config(one), runfolder.read_config(two)
    assert {k: v for k, v in c1.items() if k != "created"} == {k: v for k, v in c2.items() if k != "created"}

    # N replicas -> 1 device, and 1 device -> N replicas, continue each other's optimizer state
    train_cli(two, corpus, "--epochs", "3", "--resume", "--strategy", "one")
    train_cli(one, corpus, "--epochs", "3", "--resume", "--strategy", "mirrored", env={"CHARMODEL_CPU_DEVICES": "2"})
    a, b = history(one), history(two)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == [1, 2, 3]
    assert abs(a[2]["train_loss"] - b[2]["train_loss"]) <= LOSS_TOLERANCE
    assert a[2]["train_loss"] < a[0]["train_loss"]


def test_mirrored_refuses_what_it_cannot_do_in_one_line(tmp_path, corpus):
    env = {"CHARMODEL_CPU_DEVICES": "2"}
    out = train_cli(tmp_path / "r", corpus, "--epochs", "1", "--strategy", "mirrored", "--carry-state", env=env,
                    check=False)
    assert out.returncode != 0 and out.stderr.strip().splitlines()[-1].startswith("error: --strategy mirrored cannot")
    out = train_cli(tmp_path / "r", corpus, "--epochs", "1", "--strategy", "mirrored", "--batch-size", "15",
                    env=env, check=False)
    assert out.returncode != 0 and "does not split evenly over 2 replicas" in out.stderr.strip().splitlines()[-1]
    out = train_cli(tmp_path / "r", corpus, "--epochs", "1", "--strategy", "mirrored", env={"CHARMODEL_CPU_DEVICES": "two"},
                    check=False)
    assert out.returncode != 0 and "CHARMODEL_CPU_DEVICES must be a whole number" in out.stderr.strip().splitlines()[-1]
    out = train_cli(tmp_path / "r", corpus, "--epochs", "1", "--strategy", "multi-worker", env={"TF_CONFIG": ""},
                    check=False)
    assert out.returncode != 0 and "needs TF_CONFIG" in out.stderr.strip().splitlines()[-1]
    out = train_cli(tmp_path / "r", corpus, "--epochs", "1", "--strategy", "sideways", check=False)
    assert out.returncode == 2 and "invalid choice: 'sideways'" in out.stderr
    assert not (tmp_path / "r").exists()  # refused before anything was written


# ---------------------------------------------------------------- multi-worker

def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_workers(runs, corpus, *flags, logs: Path, own=None) -> list[subprocess.Popen]:
    """Two workers on 127.0.0.1, worker 0 the chief; each one's output (stdout and stderr) goes to
    logs/worker-N.log, a file rather than a pipe nobody reads while they run. own: flags for one
    worker only, by index."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    logs.mkdir(parents=True, exist_ok=True)
    for index, run in enumerate(runs):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        cmd = [sys.executable, "-m", "charmodel", "train", "--run", str(run), "--text-file", str(corpus), *TINY,
               "--strategy", "multi-worker", *flags, *((own or {}).get(index, ()))]
        with open(logs / f"worker-{index}.log", "w") as log:
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        procs[-1].log = logs / f"worker-{index}.log"
    return procs


def finish(procs, timeout=240) -> list[tuple[int, str]]:
    """Each worker's exit code and its output."""
    return [(p.wait(timeout=timeout), p.log.read_text()) for p in procs]


def test_two_workers_train_one_run_that_only_the_chief_writes_and_resume_after_a_kill(tmp_path, corpus):
    chief_run, worker_run = tmp_path / "chief", tmp_path / "worker"  # as on two machines: each its own path
    results = finish(start_workers([chief_run, worker_run], corpus, "--epochs", "2", logs=tmp_path / "first"))
    assert all(code == 0 for code, _ in results), [err[-2000:] for _, err in results]
    assert "training on 2 replicas (multi-worker" in results[0][1]
    assert not worker_run.exists()  # the other worker wrote nothing
    rows = history(chief_run)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["train_loss"] < rows[0]["train_loss"]
    # the weights load in the NumPy engine, and score what the history says
    engine = Engine(runfolder.load_weights_npz(chief_run / "latest.npz"), Vocab(runfolder.read_config(chief_run)["vocab"]))
    assert engine.units == 32

    # kill a worker mid-epoch: the chief stops with one line, and its run folder keeps epoch 3
    procs = start_workers([chief_run, chief_run], corpus, "--epochs", "6", "--resume", logs=tmp_path / "killed")
    deadline = time.monotonic() + 180
    while "epoch 4/6" not in procs[0].log.read_text() and time.monotonic() < deadline:  # epoch 3 saved, 4 begun
        time.sleep(0.05)
    assert runfolder.read_train_state(chief_run)["epoch"] == 3
    procs[1].send_signal(signal.SIGKILL)
    (code, err), _ = finish(procs)
    assert code != 0 and err.strip().splitlines()[-1].startswith("error: another replica of the cluster stopped")
    done = runfolder.read_train_state(chief_run)["epoch"]
    assert done in (3, 4)  # 4 only if all of epoch 4 ran in the moment before the kill
    assert [r["epoch"] for r in history(chief_run)] == list(range(1, done + 1))

    results = finish(start_workers([chief_run, chief_run], corpus, "--epochs", "6", "--resume", logs=tmp_path / "again"))
    assert all(code == 0 for code, _ in results), [err[-2000:] for _, err in results]
    assert f"epoch {done + 1}: train" in results[0][1] and f"epoch {done}: train" not in results[0][1]
    assert [r["epoch"] for r in history(chief_run)] == [1, 2, 3, 4, 5, 6]


def test_a_worker_with_a_mistake_stops_the_others_with_one_line_and_nothing_written(tmp_path, corpus):
    """Worker 1 is told to resume a run that does not exist. Before, the chief waited for it
    forever (and TensorFlow's preemption handler kept SIGTERM from stopping it)."""
    chief_run = tmp_path / "chief"
    procs = start_workers([chief_run, tmp_path / "nowhere"], corpus, "--epochs", "2", logs=tmp_path / "logs",
                          own={1: ["--resume"]})
    (chief_code, chief_out), (code, out) = finish(procs, timeout=120)
    assert code != 0 and out.strip().splitlines()[-1].startswith(f"error: run folder {tmp_path / 'nowhere'} does not exist")
    last = chief_out.strip().splitlines()[-1]
    assert chief_code != 0 and last.startswith("error: another replica of the cluster stopped (")
    assert last.endswith("start every worker again.") and "{{" not in last
    assert not chief_run.exists()  # the chief learnt of it before writing a new run
