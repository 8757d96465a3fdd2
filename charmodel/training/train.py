"""Train a character-level LSTM into a run folder, sequence to sequence, resumable.

Every position of a chunk predicts the next character, so a chunk of 100 characters gives 100
targets for one forward pass. The post instead cut stride-1 windows of 100 characters with one
target each: the same targets cost about 100 times more compute per epoch.

Order of work at the end of each epoch (each file is written to a temporary name, then renamed):
  1. Keras weights + optimizer state  -> train_state/epoch-NNNN.weights.h5
  2. NumPy weights                     -> latest.npz, best.npz (if improved), checkpoints/ (kept epochs)
  3. sample and history                -> samples/epoch-NNNN.txt, history.csv
  4. train_state.json                  -> names the epoch that is now complete
A kill at any moment leaves train_state.json naming a complete, loadable checkpoint; --resume
continues after it and drops history rows of any epoch it did not finish.

The corpus is never held as text: it is tokenised once into corpus.ids.npy, memory-mapped, and
each batch is gathered from it when due (`batches`). Where the steps run (one device, several
replicas, several workers) is distribute.py's business; with several workers only the chief
writes anything above.
"""

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from charmodel.engine import LN2, Engine
from charmodel.engine.sampling import generate
from charmodel.engine.scoring import split_baselines, write_split_baselines
from charmodel.errors import CharModelError
from charmodel.run import folder as runfolder
from charmodel.run.corpus import MAX_BYTES, Scan, Vocab, id_dtype, scan, sha256, split_point, tokenise
from charmodel.run.handle import RunConfig, write_config
from charmodel.run.settings import ARCH, DEFAULTS, MACHINE, RESUMABLE, TRAINING
from charmodel.run.settings import check as check_settings

# ---------------------------------------------------------------- settings (defined in settings.py)

SAMPLE_LEN = 300  # characters of the per-epoch sample
IDS = "corpus.ids.npy"  # the run's corpus as ids, memory-mapped while training (made again when missing)


# ---------------------------------------------------------------- data

def chunks(ids: np.ndarray, seq_len: int, offset: int = 0):
    """Contiguous (x, y) chunks: y is x shifted by one character. Shapes (N, seq_len)."""
    n = (len(ids) - 1 - offset) // seq_len
    x = ids[offset : offset + n * seq_len].reshape(n, seq_len)
    y = ids[offset + 1 : offset + 1 + n * seq_len].reshape(n, seq_len)
    return x, y


def streams(ids: np.ndarray, seq_len: int, batch_size: int, offset: int = 0):
    """Chunks for carried state: the text is cut into `batch_size` contiguous streams, and row b
    of batch j is the j-th chunk of stream b, so it continues row b of batch j - 1."""
    n = (len(ids) - 1 - offset) // (batch_size * seq_len)  # batches
    span = n * seq_len
    x = ids[offset : offset + batch_size * span].reshape(batch_size, n, seq_len)
    y = ids[offset + 1 : offset + 1 + batch_size * span].reshape(batch_size, n, seq_len)
    return x.transpose(1, 0, 2).reshape(-1, seq_len), y.transpose(1, 0, 2).reshape(-1, seq_len)


def epoch_starts(n_ids: int, seq_len: int, batch_size: int, seed: int, epoch: int, carry_state=False) -> np.ndarray:
    """Where this epoch's chunks start, in batch order (batch j is starts[j * batch_size:][:batch_size]):
    a random start offset and a shuffled order, fixed by (seed, epoch), whole batches only (fixed
    shapes for XLA). With carry_state the order is the text's own (see `streams`)."""
    rng = np.random.default_rng([seed, epoch])
    slack = n_ids - 1 - batch_size * seq_len  # the largest offset that still leaves one batch
    offset = int(rng.integers(max(1, min(seq_len, slack + 1))))
    if carry_state:  # row b of batch j is chunk b * n + j: one unbroken stream per row
        n = (n_ids - 1 - offset) // (batch_size * seq_len)
        j, b = np.meshgrid(np.arange(n), np.arange(batch_size), indexing="ij")
        return offset + (b * n + j).ravel() * seq_len
    n = (n_ids - 1 - offset) // seq_len
    order = rng.permutation(n)
    return offset + order[: n // batch_size * batch_size] * seq_len


def gather(ids: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) for chunks starting at `starts`, as int32: y is x shifted by one character. Reads
    only those chunks, so `ids` may be a memory-mapped file of any size."""
    window = np.asarray(ids[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int32)
    return window[:, :-1], window[:, 1:]


def epoch_batches(ids: np.ndarray, seq_len: int, batch_size: int, seed: int, epoch: int, carry_state=False):
    """This epoch's chunks, all at once (see `epoch_starts`; training reads them a batch at a time)."""
    return gather(ids, epoch_starts(len(ids), seq_len, batch_size, seed, epoch, carry_state), seq_len)


def batches(ids: np.ndarray, starts: np.ndarray, seq_len: int, batch_size: int):
    """This epoch's batches, each gathered from the (memory-mapped) ids when it is due, so the
    corpus is never copied whole. Gathering a batch takes microseconds beside a training step;
    the tf.data pipeline this replaces cost 5-10 s at the start of some epochs (issue 37)."""
    for j in range(len(starts) // batch_size):
        yield gather(ids, starts[j * batch_size : (j + 1) * batch_size], seq_len)


def prepare_corpus(text_path, s: dict, max_bytes: int = MAX_BYTES) -> Scan:
    """One streaming pass over the text (checks, vocabulary, length); refuse one too short to
    make a batch."""
    found = scan(text_path, collapse_spaces=s["collapse_spaces"], max_bytes=max_bytes)
    n_train = found.split_at(s["val_fraction"])
    n_val = found.chars - n_train
    need = s["seq_len"] * s["batch_size"] + 1
    if n_train < need:
        raise CharModelError(
            f"the training part of {text_path} has {n_train} characters, fewer than the "
            f"{need} one batch needs (seq_len x batch_size + 1); use a longer text or smaller settings."
        )
    val_need = s["seq_len"] * (s["batch_size"] if s["carry_state"] else 1) + 1
    if n_val < val_need:
        raise CharModelError(
            f"the validation part of {text_path} has {n_val} characters, fewer than the "
            f"{val_need} one validation batch needs; use a longer text or smaller settings."
        )
    return found


def corpus_ids(text_path, out, config: dict, max_bytes: int = 1 << 62) -> np.ndarray:
    """The corpus as ids, memory-mapped from `out` (a .npy file): reused when it holds what the
    config says, otherwise tokenised afresh from `text_path`, the run's own copy."""
    corpus = config["corpus"]
    vocab = Vocab(config["vocab"])
    out = Path(out)
    if out.is_file():
        try:
            ids = np.load(out, mmap_mode="r", allow_pickle=False)
            if ids.shape == (corpus["chars"],) and ids.dtype == id_dtype(vocab):
                return ids
        except (ValueError, OSError):
            pass  # damaged: made again below
    return tokenise(text_path, out, Scan(vocab, corpus["chars"]), corpus["collapse_spaces"], max_bytes)


def plan_run(run, text_path, settings: dict, max_bytes: int = MAX_BYTES, corpus_name: str | None = None,
             fresh: bool = True):
    """Every check a new run needs, without TensorFlow and without writing anything:
    (settings, config). A UI calls it to report mistakes at once.
    fresh=False skips the check that the run folder is empty (a worker beside the chief)."""
    s = check_settings(settings)
    if fresh and (Path(run) / runfolder.CONFIG).exists():
        raise CharModelError(f"run folder {run} already holds a run; resume it or choose a new run name.")
    if text_path is None:
        raise CharModelError("no text given; pass the corpus file to train on.")
    found = prepare_corpus(text_path, s, max_bytes)
    config = _new_config(text_path, found, s, corpus_name)
    if s["init_from"]:
        _check_init_from(s["init_from"], config)
    return s, config


# ---------------------------------------------------------------- callbacks

class TrainListener:
    """Follow training: the app's job, the console and tests subclass it. Every hook is optional."""

    def on_epoch_start(self, epoch: int, epochs: int, lr: float, steps: int): ...

    def on_batch(self, epoch: int, batch: int, steps: int, loss: float, chars_per_s: float): ...

    def on_epoch(self, row: dict, sample: str): ...

    def on_early_stop(self, stale: int): ...

    def on_notice(self, text: str): ...  # one line a user should read at start-up (strategy, cuDNN)


class ConsoleListener(TrainListener):
    """The command line's view: a progress bar per epoch on stderr, one summary line per epoch."""

    def __init__(self):
        self.bar = None

    def on_epoch_start(self, epoch, epochs, lr, steps):
        from tqdm import tqdm

        self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs} (lr {lr:.3g})", unit="batch", leave=False)

    def on_batch(self, epoch, batch, steps, loss, chars_per_s):
        self.bar.set_postfix(loss=f"{loss:.4f}", chars_per_s=f"{chars_per_s:,.0f}", refresh=False)
        self.bar.update(1)

    def on_epoch(self, row, sample):
        self.bar.close()
        print(f"epoch {row['epoch']}: train {row['train_loss']:.4f}, val {row['val_loss']:.4f} "
              f"({row['val_bpc']:.3f} bpc), {row['chars_per_s']:.0f} chars/s, {row['wall_s']:.1f} s", flush=True)

    def on_early_stop(self, stale):
        print(f"no better validation loss for {stale} epochs; stopping early.", flush=True)

    def on_notice(self, text):
        print(text, file=sys.stderr, flush=True)


class Budget:
    """A session's time budget: when to stop, and how far the learning rate has fallen.

    The learning rate falls linearly to zero over the budget (Li, Yumer and Ramanan, "Budgeted
    Training", ICLR 2020: under a fixed budget, linear decay to zero beat the step and cosine
    schedules they tried). Progress is the larger of the time spent and the steps done, so a
    budget the epochs do not fill still ends at a low rate. No budget: a factor of 1 throughout.
    """

    def __init__(self, minutes: float, steps: int):
        self.seconds = minutes * 60
        self.steps, self.done = max(1, steps), 0  # this session's steps, all epochs
        self.reserve = 0.0  # seconds the last validation and save took: kept free at the end
        self.t0 = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.t0

    def factor(self) -> float:
        if not self.seconds:
            return 1.0
        return max(0.0, 1.0 - max(self.elapsed_s / self.seconds, self.done / self.steps))

    def spent(self) -> bool:
        return bool(self.seconds) and self.elapsed_s + self.reserve >= self.seconds


def _run_epoch(steps, data, n, epoch, listener, stop, budget: Budget, lr: float) -> tuple[float, float, int]:
    """One pass over the epoch's `n` batches of (x, y): (mean batch loss, seconds, batches done).
    Ends early when `stop` is set or the budget is spent.

    A hand-written loop rather than `model.fit` once per epoch: on TensorFlow 2.21 a `fit` call
    sometimes took 10-15 s more to return after its last callback had run (2 x 512, 10 batches),
    and the first Alice run's epochs spent 2-60 s outside their batches (validation included).
    """
    steps.reset()
    losses, t0, chars = [], time.perf_counter(), 0
    for b, (x, y) in enumerate(data):
        if budget.seconds:
            steps.model.optimizer.learning_rate.assign(lr * budget.factor())
        losses.append(steps.train(x, y))
        budget.done += 1
        chars += x.size
        seconds = time.perf_counter() - t0
        cps = chars / max(seconds, 1e-9)
        listener.on_batch(epoch, b + 1, n, losses[-1], cps)
        if stop.is_set() or budget.spent():
            break
    return float(np.mean(losses)), time.perf_counter() - t0, len(losses)


# ---------------------------------------------------------------- train

def train(
    run,
    text_path=None,
    resume: bool = False,
    listener: TrainListener | None = None,
    stop: threading.Event | None = None,
    max_bytes: int = MAX_BYTES,
    corpus_name: str | None = None,
    **settings,
) -> list[dict]:
    """Train into the run folder `run`; with resume=True, continue after its last finished epoch.

    Returns the run's full history. Set `stop` to end after the current batch, with a checkpoint.
    corpus_name: what config.json records as the corpus (default: text_path), for an upload.
    """
    run = Path(run)
    listener = listener or TrainListener()
    try:
        config, s, start, state = _plan(run, text_path, resume, settings, max_bytes, corpus_name)
    except CharModelError:
        if settings.get("strategy") == "multi-worker":
            from charmodel.training.distribute import leave_cluster

            leave_cluster()  # the other workers learn of this mistake instead of waiting for this one
        raise
    from charmodel.training.distribute import peer_stopped
    from charmodel.training.distribute import start as start_strategy

    placement = start_strategy(s["strategy"], s)  # before any other TensorFlow call (multi-worker)
    for notice in placement.notices:
        listener.on_notice(notice)
    # a resumed run's own corpus passed the size limit when the run began: no limit on it now
    source, limit = (run / "corpus.txt", 1 << 62) if resume else (text_path, max_bytes)
    # the model first: its variables are the cluster's first collectives, so a worker that stopped
    # is noticed before this one writes a new run folder
    with peer_stopped("read that worker's error, then start every worker again."):
        model, steps = _build(run, config, s, start, state, placement)
    with tempfile.TemporaryDirectory(prefix="charmodel-ids-") as scratch:
        if placement.chief:
            if not resume:
                _write_new_run(run, text_path, config)
            if not split_baselines(run):  # the line the curves must beat
                write_split_baselines(run)
            ids = corpus_ids(source, run / IDS, config, limit)
        else:  # writes nothing in the run folder
            ids = corpus_ids(source, Path(scratch) / IDS, config, limit)
        return _epochs(run, model, steps, config, s, start, state, ids, listener, stop or threading.Event(),
                       placement.chief)


def _plan(run, text_path, resume, settings, max_bytes, corpus_name):
    """Checked settings and texts, without TensorFlow and without writing anything. A worker other
    than the chief may find the chief's files in a shared run folder: it neither refuses them nor
    writes (see distribute.is_chief)."""
    from charmodel.training.distribute import is_chief

    chief = is_chief() if settings.get("strategy") == "multi-worker" else True
    if resume:
        config, s, start, state = _resume_settings(run, text_path, settings, write=chief)
        if not (run / "corpus.txt").is_file():
            raise CharModelError(f"run folder {run} has no corpus.txt; the run folder is incomplete.")
    else:
        s, config = plan_run(run, text_path, settings, max_bytes, corpus_name, fresh=chief)
        start, state = 0, {"epoch": 0, "best_val_loss": None, "best_epoch": None}
    return config, s, start, state


def _write_new_run(run, text_path, config) -> None:
    run.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(text_path, run / "corpus.txt")
    write_config(run, RunConfig.from_json(config, run / runfolder.CONFIG))


def _build(run, config, s, start, state, placement):
    """The compiled Keras model, with the resumed epoch's weights and optimizer, or a start run's,
    built in the strategy's scope; and the steps that train it (see distribute.py)."""
    import keras  # TensorFlow is imported only here, when training starts

    from charmodel.training import model as kmodel
    from charmodel.training.distribute import DistributedSteps, KerasSteps

    arch = config["architecture"]
    keras.utils.set_random_seed(s["seed"] + start)
    with placement.strategy.scope():
        model = kmodel.build(len(config["vocab"]), arch["layers"], arch["units"], arch["dropout"],
                             arch["embedding"], stateful_batch=s["batch_size"] if s["carry_state"] else None,
                             recurrent_dropout=s["recurrent_dropout"])
        clip = {"global_clipnorm": s["clip_norm"]} if s["clip_norm"] else {}
        if s["weight_decay"]:
            optimizer = keras.optimizers.AdamW(s["lr"], weight_decay=s["weight_decay"], **clip)
        else:
            optimizer = keras.optimizers.Adam(s["lr"], **clip)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=s["jit_compile"] and not placement.distributed,
        )
        model.optimizer.build(model.trainable_variables)
        if start:  # every worker reads the same file, so their copies agree
            model.load_weights(run / state["keras_weights"])
        elif s["init_from"]:
            kmodel.import_weights(model, _init_weights(s["init_from"]))
    if placement.distributed:
        return model, DistributedSteps(placement.strategy, model, s["batch_size"])
    return model, KerasSteps(model)


def _epochs(run, model, steps, config, s, start, state, ids, listener, stop, chief=True) -> list[dict]:
    """The epoch loop: train, validate, then save in the crash-safe order (see the module docstring).
    Only the chief saves; every worker keeps the same history and state in memory."""
    vocab = Vocab(config["vocab"])
    n_train = split_point(config["corpus"]["chars"], s["val_fraction"])
    train_ids, val_ids = ids[:n_train], ids[n_train:]  # views of the memory-mapped file: no copy
    xv, yv = streams(val_ids, s["seq_len"], s["batch_size"]) if s["carry_state"] else chunks(val_ids, s["seq_len"])
    history = [r for r in runfolder.read_history(run) if r["epoch"] <= start]
    stale = state.get("stale", 0)  # epochs since the best validation loss
    lr = state.get("lr", s["lr"] * s["lr_decay"] ** start)
    if s["minutes"]:  # each budget is a new linear schedule, from the run's learning rate (a warm restart)
        lr = s["lr"]
    per_epoch = (len(train_ids) - 1) // s["seq_len"] // s["batch_size"]
    budget = Budget(s["minutes"], (s["epochs"] - start) * per_epoch)

    for epoch in range(start, s["epochs"]):
        if stop.is_set() or budget.spent():
            break
        lr_now = lr * budget.factor()
        model.optimizer.learning_rate.assign(lr_now)
        starts = epoch_starts(len(train_ids), s["seq_len"], s["batch_size"], s["seed"], epoch, s["carry_state"])
        listener.on_epoch_start(epoch + 1, s["epochs"], lr_now, len(starts) // s["batch_size"])
        t0 = time.perf_counter()
        train_loss, train_s, done = _run_epoch(steps, batches(train_ids, starts, s["seq_len"], s["batch_size"]),
                                               len(starts) // s["batch_size"], epoch + 1, listener, stop, budget, lr)
        t_val = time.perf_counter()
        val_loss = steps.validation_loss(xv, yv, s["batch_size"])
        wall_s = time.perf_counter() - t0
        row = dict(
            epoch=epoch + 1,
            train_loss=round(train_loss, 5),
            val_loss=round(val_loss, 5),
            val_bpc=round(val_loss / LN2, 5),
            wall_s=round(wall_s, 2),
            chars_per_s=round(done * s["batch_size"] * s["seq_len"] / train_s, 1),
            lr=float(f"{lr_now:.6g}"),  # at the epoch's start
            batch_s=round(train_s, 2),
        )
        improved = state["best_val_loss"] is None or val_loss < state["best_val_loss"]
        if improved:
            state.update(best_val_loss=val_loss, best_epoch=epoch + 1)
        stale = 0 if improved else stale + 1
        lr *= s["lr_decay"] * (1.0 if improved else s["lr_plateau"])
        state.update(lr=lr, stale=stale)
        history.append(row)
        if chief:
            sample = _save_epoch(run, model, vocab, s, row, history, state, improved)
        else:
            sample = ""
            state.update(epoch=epoch + 1)
        budget.reserve = time.perf_counter() - t_val  # validation and saving: left free before the budget ends
        listener.on_epoch(row, sample)
        if s["patience"] and stale >= s["patience"]:
            listener.on_early_stop(stale)
            break
        if budget.spent():
            listener.on_notice(f"the {s['minutes']:g}-minute budget is spent after epoch {epoch + 1}; the best "
                               f"weights (epoch {state['best_epoch']}) are kept. --resume --minutes M trains on.")
    return history


def _save_epoch(run, model, vocab, s, row, history, state, improved) -> str:
    from charmodel.training.model import export_weights

    epoch = row["epoch"]
    keras_name = f"train_state/epoch-{epoch:04d}.weights.h5"
    with runfolder.atomic_path(run / keras_name, suffix=".weights.h5") as tmp:  # Keras wants that ending
        model.save_weights(tmp)

    weights = export_weights(model)
    runfolder.save_weights_npz(run / "latest.npz", weights)
    if improved:
        runfolder.save_weights_npz(run / "best.npz", weights)
    if epoch in s["keep_epochs"]:
        runfolder.save_weights_npz(run / "checkpoints" / f"epoch-{epoch:04d}.npz", weights)

    sample = generate(Engine(weights, vocab), length=SAMPLE_LEN, temperature=0.8, seed=s["seed"])[0]
    runfolder.atomic_write_text(run / f"samples/epoch-{epoch:04d}.txt", sample)
    runfolder.write_history(run, history)

    old = state.get("keras_weights")
    state.update(epoch=epoch, keras_weights=keras_name)
    runfolder.atomic_write_json(run / "train_state.json", state)
    if old and old != keras_name:
        (run / old).unlink(missing_ok=True)
    return sample


def _check_init_from(init_run, config) -> None:
    """Refuse, before anything is written, a starting run whose weights would not fit this one."""
    theirs = runfolder.read_config(init_run)
    shapes = ("layers", "units", "embedding", "vocab_size")
    if theirs["vocab"] != config["vocab"]:
        raise CharModelError(f"{init_run} was trained on a different vocabulary; it cannot start this run.")
    arch = theirs["architecture"]
    if any(arch[k] != config["architecture"][k] for k in shapes):
        raise CharModelError(
            f"{init_run} has {', '.join(f'{k}={arch[k]}' for k in shapes)}; "
            "this run must use the same to start from its weights."
        )
    if not runfolder.checkpoint_path(init_run, "best").is_file():
        raise CharModelError(f"{init_run} has no best.npz to start from.")


def _init_weights(init_run) -> dict:
    """The best weights of `init_run` (plain arrays; checked by `_check_init_from`)."""
    return runfolder.load_weights_npz(runfolder.checkpoint_path(init_run, "best"))


def _new_config(text_path, found: Scan, s, corpus_name: str | None = None) -> dict:
    vocab = found.vocab  # the whole corpus, so validation text is always encodable
    n_train = found.split_at(s["val_fraction"])
    return {
        "format": 1,
        "architecture": {k: s[k] for k in ARCH} | {"vocab_size": len(vocab)},
        "training": {k: s[k] for k in TRAINING},
        "corpus": {
            "path": corpus_name or str(text_path),  # an upload's own name, not its temporary file
            "sha256": sha256(text_path),
            "collapse_spaces": s["collapse_spaces"],
            "val_fraction": s["val_fraction"],
            "chars": found.chars,
            "train_chars": n_train,
            "val_chars": found.chars - n_train,
        },
        "vocab": vocab.chars,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _resume_settings(run, text_path, settings, write: bool = True):
    config = runfolder.read_config(run)
    state = runfolder.read_train_state(run)
    if state is None and config.get("imported"):
        raise CharModelError(f"{run} was imported from {config['imported'].get('file', 'a model file')}: it has no "
                             "training state here to resume; it opens on every page as it is.")
    if state is None:
        raise CharModelError(f"run folder {run} has no finished epoch to resume from; start it fresh.")
    if not (run / state["keras_weights"]).is_file():
        raise CharModelError(f"{run} lacks {state['keras_weights']}; its training state cannot be resumed.")
    if text_path is not None and sha256(text_path) != config["corpus"]["sha256"]:
        raise CharModelError(f"{text_path} is not the text {run} was trained on (checksum differs).")
    saved = {**config["architecture"], **config["training"],
             "collapse_spaces": config["corpus"]["collapse_spaces"], "val_fraction": config["corpus"]["val_fraction"]}
    saved.pop("vocab_size", None)
    saved = {**{k: DEFAULTS[k] for k in (*ARCH, *TRAINING)}, **saved}  # older runs lack newer settings
    changed = [k for k, v in settings.items() if k not in RESUMABLE and k in saved and v != saved[k]]
    if changed:
        raise CharModelError(
            f"run {run} was trained with {', '.join(f'{k}={saved[k]}' for k in changed)}; "
            f"drop those flags to resume (only {', '.join(RESUMABLE)} can change)."
        )
    s = check_settings({**saved, **{k: v for k, v in settings.items() if k in RESUMABLE or k in MACHINE}})
    if state["epoch"] >= s["epochs"]:
        raise CharModelError(
            f"run {run} has already finished {state['epoch']} of {s['epochs']} epochs; "
            "pass a larger --epochs to train further."
        )
    if write and any(config["training"].get(k) != s[k] for k in RESUMABLE):
        config["training"].update({k: s[k] for k in RESUMABLE})
        write_config(run, RunConfig.from_json(config, run / runfolder.CONFIG))
    return config, s, state["epoch"], state
