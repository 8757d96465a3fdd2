"""Where training runs: TensorFlow's own distribution strategies (`--strategy one, mirrored,
multi-worker or auto`) and the training step each uses.

One device uses Keras' `train_on_batch`; the distributed strategies use TensorFlow's documented
custom loop (Keras 3's `fit` does not work with MultiWorkerMirroredStrategy), each replica taking a
contiguous block of the global batch, so a step computes the same loss and gradient as one device.
Only the chief writes the run folder. Imports TensorFlow; docs/training.md has the details.
"""

import json
import os
import re
from contextlib import contextmanager

import numpy as np

from charmodel.errors import CharModelError

CPU_DEVICES_ENV = "CHARMODEL_CPU_DEVICES"


def is_chief(tf_config: str | None = None) -> bool:
    """Whether this process writes the run folder: TF_CONFIG's chief task, or worker 0 when the
    cluster has no chief, or any process without TF_CONFIG. Read without TensorFlow, so a worker
    knows it before anything is imported."""
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not raw.strip():
        return True
    try:
        conf = json.loads(raw)
        task, cluster = conf.get("task", {}), conf.get("cluster", {})
        kind, index = task.get("type"), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError) as e:
        raise CharModelError(f"TF_CONFIG is not valid JSON with a task and a cluster: {e}") from None
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in cluster


class Placement:
    """The strategy this process trains with, and what a user should know about it."""

    def __init__(self, name: str, strategy, chief: bool, notices: list[str]):
        self.name, self.strategy, self.chief, self.notices = name, strategy, chief, notices

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def distributed(self) -> bool:
        return self.name != "one"


def start(name: str, s: dict) -> Placement:
    """Create the strategy. MultiWorkerMirroredStrategy must be made before any other TensorFlow
    call, so this is the first thing training does with TensorFlow. Refuses, in one line, the
    setting combinations a strategy does not support."""
    if name == "multi-worker":  # first: nothing may touch TensorFlow's context before it
        if not os.environ.get("TF_CONFIG", "").strip():
            raise CharModelError("--strategy multi-worker needs TF_CONFIG naming the cluster and this task "
                                 "(see the README's \"Training on GPUs and clusters\").")
        chief = is_chief()
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        import tensorflow as tf

        chief = True
        _split_cpu()
        gpus = tf.config.list_logical_devices("GPU")
        if name == "auto":
            name = "mirrored" if len(gpus) > 1 else "one"
        if name == "mirrored":
            devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices=devices)
        else:
            strategy = tf.distribute.get_strategy()
    notices = []
    if name != "one":
        if s["carry_state"]:
            raise CharModelError(f"--strategy {name} cannot carry the LSTM state between batches (Keras' "
                                 "stateful layers hold one batch); use --strategy one for --carry-state.")
        if name == "multi-worker" and s["minutes"]:
            raise CharModelError("--minutes cannot stop several workers at the same batch (each has its own clock); "
                                 "use --epochs with --strategy multi-worker.")
        if s["batch_size"] % strategy.num_replicas_in_sync:
            raise CharModelError(f"batch size {s['batch_size']} does not split evenly over "
                                 f"{strategy.num_replicas_in_sync} replicas; choose a multiple of it.")
        if s["jit_compile"]:
            notices.append(f"--jit applies to --strategy one only; {name} trains without XLA.")
        devices = strategy.extended.worker_devices
        n = strategy.num_replicas_in_sync
        notices.append(f"training on {n} replica{'s' if n > 1 else ''} ({name}; this worker: "
                       f"{', '.join(d.rsplit('/', 1)[-1] for d in devices)}).")
    if tf.config.list_logical_devices("GPU"):
        blockers = ", ".join(cudnn_blockers_of_settings(s))
        if blockers:
            notices.append(f"training without the cuDNN LSTM kernel because of {blockers} (slower on a GPU).")
    return Placement(name, strategy, chief, notices)


def _split_cpu() -> None:
    """CHARMODEL_CPU_DEVICES=N: N logical CPU devices, so that `mirrored` has replicas on a CPU."""
    raw = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if not raw:
        return
    import tensorflow as tf

    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise CharModelError(f"{CPU_DEVICES_ENV} must be a whole number from 1 to 64, not {raw!r}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(raw))
    except RuntimeError:  # TensorFlow already started in this process (a test, a second run): keep its devices
        pass


def leave_cluster() -> None:
    """Join the cluster TF_CONFIG names, then return so the caller can exit with its one-line
    error. A worker that stopped before joining would leave the others waiting for it while
    TensorFlow connects the cluster, with no timeout; once it has joined, its exit breaks their
    first collective, and each of them stops with one line too (see `peer_stopped`)."""
    if os.environ.get("TF_CONFIG", "").strip():
        import tensorflow as tf

        tf.distribute.MultiWorkerMirroredStrategy()


@contextmanager
def peer_stopped(advice: str):
    """A peer that stopped (killed, crashed, unreachable, or a mistake in its flags) aborts the
    collective ops; that becomes one line for the user, ending with `advice`, instead of a gRPC
    traceback."""
    import tensorflow as tf

    errors = tf.errors
    try:
        yield
    except (errors.UnavailableError, errors.CancelledError, errors.InternalError, errors.UnknownError,
            errors.DeadlineExceededError, errors.AbortedError) as e:
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        reason = next((l for l in lines if "aborted" in l.lower() or "unavailable" in l.lower()),
                      lines[0] if lines else e.__class__.__name__)
        reason = re.sub(r"\{\{.*?\}\}\s*", "", reason).rstrip(":")  # TensorFlow's op name, then the cause
        raise CharModelError(f"another replica of the cluster stopped ({reason}); {advice}") from None


# ---------------------------------------------------------------- cuDNN

def cudnn_blockers(model) -> list[str]:
    """Why Keras would not use the cuDNN kernel for this model's LSTM layers on a GPU (empty: it
    would). The conditions are Keras' own (LSTM's documentation): tanh and sigmoid activations,
    no recurrent dropout, no unroll, a bias."""
    out = []
    for layer in model.layers:
        if layer.__class__.__name__ != "LSTM":
            continue
        cell = getattr(layer, "cell", layer)
        why = []
        if getattr(cell.activation, "__name__", "") != "tanh":
            why.append("a non-tanh activation")
        if getattr(cell.recurrent_activation, "__name__", "") != "sigmoid":
            why.append("a non-sigmoid recurrent activation")
        if cell.recurrent_dropout:
            why.append(f"recurrent dropout {cell.recurrent_dropout:g}")
        if layer.unroll:
            why.append("unroll")
        if not cell.use_bias:
            why.append("no bias")
        if getattr(layer, "use_cudnn", "auto") is False:
            why.append("use_cudnn=False")
        out += [w for w in why if w not in out]
    return out


def cudnn_blockers_of_settings(s: dict) -> list[str]:
    """`cudnn_blockers` of the model these settings build (the model's code is the only other input)."""
    from charmodel.training.model import build

    model = build(8, 1, 4, s["dropout"], 4, recurrent_dropout=s["recurrent_dropout"])
    return cudnn_blockers(model)


# ---------------------------------------------------------------- steps

class KerasSteps:
    """One device: Keras' own `train_on_batch` and `test_on_batch`."""

    def __init__(self, model):
        self.model = model

    def reset(self) -> None:
        """Zero a stateful model's carried state (the start of an epoch)."""
        from charmodel.training.model import reset_states

        reset_states(self.model)

    def train(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(self.model.train_on_batch(x, y))

    def validation_loss(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
        """Mean loss per character over the validation chunks: state reset at every chunk, or,
        for a stateful model, carried along each stream (see `train.streams`)."""
        from charmodel.training.model import reset_states

        reset_states(self.model)
        total = 0.0
        for i in range(0, len(x), batch_size):  # x, y may be views of a memory-mapped uint8 file
            xb, yb = np.asarray(x[i : i + batch_size], np.int32), np.asarray(y[i : i + batch_size], np.int32)
            total += float(self.model.test_on_batch(xb, yb)) * len(xb)
        reset_states(self.model)
        return total / len(x)


class DistributedSteps:
    """Several replicas: the custom loop of TensorFlow's multi-worker guide. Every worker calls
    `train` with the same global batch (each builds the same batches from the same seed); each
    local replica takes its block of rows."""

    def __init__(self, strategy, model, batch_size: int):
        import keras
        import tensorflow as tf

        self.tf, self.strategy, self.model, self.batch_size = tf, strategy, model, batch_size
        self.replicas = strategy.num_replicas_in_sync
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        optimizer = model.optimizer

        def train_step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                per_row = tf.reduce_mean(loss_fn(y, logits), axis=1)
                loss = tf.nn.compute_average_loss(per_row, global_batch_size=batch_size)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))  # sums over replicas
            return loss

        def eval_step(x, y, weight):
            per_row = tf.reduce_sum(loss_fn(y, model(x, training=False)), axis=1)
            return tf.reduce_sum(per_row * weight)

        @tf.function
        def train_global(x, y):
            return strategy.reduce("SUM", strategy.run(train_step, args=(x, y)), axis=None)

        @tf.function
        def eval_global(x, y, weight):
            return strategy.reduce("SUM", strategy.run(eval_step, args=(x, y, weight)), axis=None)

        self._train, self._eval = train_global, eval_global

    def reset(self) -> None:  # nothing carries over: distributed training refuses --carry-state
        pass

    def _split(self, a: np.ndarray):
        """A global batch as per-replica values: replica r gets rows [r * per, (r + 1) * per)."""
        per = len(a) // self.replicas
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: self.tf.constant(a[ctx.replica_id_in_sync_group * per:(ctx.replica_id_in_sync_group + 1) * per]))

    def _call(self, fn, *arrays) -> float:
        """Run one global step (see `peer_stopped` for a peer that stopped)."""
        with peer_stopped("the run folder keeps its last finished epoch: restart every worker with --resume."):
            return float(fn(*(self._split(a) for a in arrays)))

    def train(self, x: np.ndarray, y: np.ndarray) -> float:
        return self._call(self._train, x, y)

    def validation_loss(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
        """Mean loss per character over every validation chunk, in global batches; the last one
        is padded with rows of weight 0, so every replica always gets the same shape."""
        total = 0.0
        for i in range(0, len(x), batch_size):  # x, y may be views of a memory-mapped uint8 file
            xb, yb = np.asarray(x[i : i + batch_size], np.int32), np.asarray(y[i : i + batch_size], np.int32)
            weight = np.ones(batch_size, np.float32)
            if len(xb) < batch_size:
                pad = batch_size - len(xb)
                weight[len(xb):] = 0
                xb = np.concatenate([xb, np.zeros((pad, xb.shape[1]), xb.dtype)])
                yb = np.concatenate([yb, np.zeros((pad, yb.shape[1]), yb.dtype)])
            total += self._call(self._eval, xb, yb, weight)
        return total / x.size
