"""Train: pick a corpus and settings, run training in the background, watch it live."""

import os
import tempfile

import pandas as pd
import streamlit as st

from charmodel import CharModelError
from charmodel.exchange.archive import export_run, import_run
from charmodel.exchange.keras_io import import_uploads, sniff_bytes
from charmodel.run import folder as runfolder
from charmodel.run.corpus import decode
from charmodel.engine.scoring import best_baseline, split_baselines
from charmodel.run.settings import SETTINGS, Setting
from charmodel.training import recipe as recipes
from charmodel.training.jobs import corpus_facts_of, training_estimate, training_policy
from charmodel.training.train import plan_run
from charmodel.view.charts import batch_frame, epoch_frame, loss_chart
from pages.shared.background import job_manager
from pages.shared.mode import BUNDLED, run_path, weights_root
from pages.shared.widgets import atlas_after_training, keep_widget_values, open_links, user_message

UPLOAD_MB = 10  # largest upload the page accepts
BUDGETS = {"5 minutes": 5, "10 minutes": 10, "30 minutes": 30, "1 hour": 60, "Until the epochs are done": 0}


def _policy():
    settings = dict(os.environ)
    try:
        settings.update({k: v for k, v in st.secrets.items() if k.startswith("CHARMODEL_")})
    except Exception:  # no secrets.toml: environment variables only
        pass
    return training_policy(settings)


keep_widget_values()  # the form keeps its values while the user visits other pages
st.title("Train")
try:
    enabled, max_epochs, policy_note = _policy()
except CharModelError as e:
    st.error(str(e))
    st.stop()
if policy_note:
    st.info(policy_note, icon=":material/info:")
manager = job_manager()

# ---------------------------------------------------------------- budget, corpus and settings
minutes = BUDGETS[st.radio("How long may it train?", list(BUDGETS), index=1, horizontal=True, key="train_budget",
                           help="training stops at the budget and keeps its best weights; the learning rate falls "
                                "to zero over it. Resume gives a run more time.")]
source = st.radio("Corpus", [*BUNDLED, "Upload a .txt file"], horizontal=True, key="train_source")
upload = None
if source == "Upload a .txt file":
    upload = st.file_uploader(f"UTF-8 text, up to {UPLOAD_MB} MB", type=["txt"], key="train_upload",
                              max_upload_size=UPLOAD_MB)
auto = bool(minutes) and st.toggle("Choose the size, batch and learning rate for this budget", True, key="train_auto",
                                   help="from a few batches of each size timed on this machine and the length of "
                                        "your text; untick to set them yourself")


def corpus_facts(source, upload) -> tuple[int, int] | None:
    """(characters, distinct characters) of the chosen corpus (raw: enough for an estimate), or None."""
    if source in BUNDLED:
        return corpus_facts_of(BUNDLED[source])
    if upload is None:
        return None
    try:
        text = decode(upload.getvalue(), name=upload.name, max_bytes=UPLOAD_MB * 2**20)
    except CharModelError:
        return None  # Start names the problem
    return len(text), len(set(text))


facts = corpus_facts(source, upload)
# the recipe sets its settings' widgets (drawn below, disabled) before they are drawn
chosen = None
if auto and facts:
    shown = {s.name: st.session_state.get(f"train_{s.name}", s.default) for s in SETTINGS}
    chosen = recipes.from_speeds(minutes, facts[0], facts[1], shown, recipes.training_threads())
    if chosen is not None:
        for name, value in chosen.settings.items():
            if name != "minutes":
                st.session_state[f"train_{name}"] = min(value, max_epochs) if name == "epochs" and max_epochs else value


def keras_inputs() -> dict:
    """The characters of a Keras model, and how it reads them: the widgets under a Keras upload."""
    st.caption("A Keras file holds no characters. Give them as a JSON list in index order, or the text the model "
               "was trained on (its sorted set of characters, as the post built it). The file is read as data: its "
               "code, if any, is never run. A textgenrnn model (NAME_weights.hdf5): give its NAME_vocab.json as the "
               "characters and a text to explore; its settings are textgenrnn's defaults here (the command line "
               "reads NAME_config.json, docs/keras.md).")
    chars = st.file_uploader("Characters (.json)", type=["json"], key="train_keras_chars")
    text = st.file_uploader("…or the training text (.txt)", type=["txt"], key="train_keras_text")
    corpus = st.file_uploader("Text to explore (.txt, optional: the training text)", type=["txt"],
                              key="train_keras_corpus")
    window = st.number_input("Window (0: the model's own fixed input length, or stateful)", 0, 10_000, 0,
                             key="train_keras_window")
    lowercase = st.checkbox("The model saw its text lowercased (the post did)", key="train_keras_lowercase")
    return {"chars": chars, "text": text, "corpus": corpus, "window": int(window) or None, "lowercase": lowercase}


def widget(setting: Setting, column, max_epochs: int | None):
    """One setting's widget, from its entry in charmodel/run/settings.py; returns the setting's value.
    A setting the budget's recipe chose is shown with the recipe's value, disabled."""
    key, label, help_ = f"train_{setting.name}", setting.title, setting.help
    if setting.toggle:  # a checkbox for the common choice (the CLI flag takes any value)
        label, ticked, unticked = setting.toggle
        return ticked if column.checkbox(label, setting.default == ticked, key=key, help=help_) else unticked
    if setting.kind is bool:
        return column.checkbox(label, setting.default, key=key, help=help_)
    if setting.name == "init_from":  # a run of this app, or random weights
        choice = column.selectbox(label, ["(random)", *runfolder.list_runs(weights_root())], key=key, help=help_)
        return None if choice == "(random)" else str(runfolder.run_in(weights_root(), choice))
    if setting.kind in (int, float):
        # an open bound becomes the nearest step inside it; with no step, no bound (Start refuses a value on it)
        step = setting.step
        low = setting.low if setting.low is not None and not setting.low_open else None
        high = setting.high if setting.high is not None and not setting.high_open else None
        if step and setting.low_open:
            low = setting.low + step
        if step and setting.high_open:
            high = setting.high - step
        if setting.name == "epochs" and max_epochs:
            high = max_epochs
        cast = setting.kind
        value = {} if key in st.session_state else {"value": setting.default if high is None else min(setting.default, high)}
        disabled = chosen is not None and setting.name in chosen.settings
        value = column.number_input(label, None if low is None else cast(low), None if high is None else cast(high),
                                    step=None if setting.step is None else cast(setting.step), key=key,
                                    help=help_ + (" (chosen for the budget)" if disabled else ""), disabled=disabled,
                                    **value, **setting.meta)
        return cast(value)
    return column.text_input(label, setting.default or "", key=key, help=help_) or None


c1, c2, c3, c4 = st.columns(4)
run_name = c1.text_input("Run name", "my-run", key="train_run", help="a folder under weights/; letters, digits, - _ .")
main = [s for s in SETTINGS if s.page == "main"]
more = [s for s in SETTINGS if s.page == "more"]
columns = [c2, c3, c4, *st.columns(4), *st.columns(4)]
settings = {s.name: widget(s, columns[n], max_epochs) for n, s in enumerate(main)}
with st.expander("More settings (the shipped Alice model used halving, patience, kept spaces and recurrent "
                 "dropout)"):
    columns = [c for _ in range(0, len(more), 3) for c in st.columns(3)]
    settings |= {s.name: widget(s, columns[n], max_epochs) for n, s in enumerate(more)}


def _corpus_file() -> tuple[str, str | None]:
    """(path, name to record) of the chosen corpus; an upload is checked, then written to a temporary
    file, which the job deletes when it ends (the run keeps its own copy, corpus.txt)."""
    if upload is None:
        if source in BUNDLED:
            return str(BUNDLED[source]), None
        raise CharModelError("no file uploaded yet; choose a .txt file first.")
    data = upload.getvalue()
    decode(data, name=upload.name, max_bytes=UPLOAD_MB * 2**20)  # empty, binary, not UTF-8, too big
    f = tempfile.NamedTemporaryFile("wb", suffix=".txt", prefix="upload-", delete=False)
    f.write(data)
    f.close()
    return f.name, upload.name


settings["minutes"] = float(minutes)
estimate = training_estimate(weights_root(), settings, facts and facts[0])
if chosen is not None:
    st.info(chosen.sentence, icon=":material/tune:")
if estimate:
    st.caption(f":material/schedule: {estimate}")
untimed = ([*recipes.shape_settings(settings)] if auto and chosen is None else []) + ([settings] if estimate is None else [])
if facts and enabled and untimed:  # this machine's speed is not known yet: time a few batches, then draw again
    timing = manager.time_speeds(untimed, facts[1])

    def timed():
        if timing.alive:
            doing = f" ({timing.timing})" if timing.timing else ""
            st.caption(f":material/timer: Timing a few batches on this machine{doing}, once per size, to estimate "
                       "the time and choose a size…")
        elif timing.status == "failed":
            st.error(f"Could not time training here: {timing.error}", icon=":material/error:")
        elif st.session_state.get("seen_timing") != id(timing):  # once per timing: draw the page with its speeds
            st.session_state["seen_timing"] = id(timing)
            st.rerun(scope="app")

    st.fragment(timed, run_every=1.0 if timing.alive else None)()

last = manager.job.run if manager.job is not None and not manager.job.alive else None  # the job to resume
b1, b2, b3, _ = st.columns([1, 1, 1, 3])
start = b1.button("Start", type="primary", key="train_start", disabled=not enabled)
resume = b2.button(f"Resume {last.name}" if last else "Resume", key="train_resume", disabled=not enabled,
                   help="continue the last job of this app, or else the run named above, after its last finished epoch")
stop = b3.button("Stop training", key="train_stop", help="finish the current batch, save a checkpoint, stop")

if stop:
    manager.stop()
if start or resume:
    try:
        run = last if resume and last else runfolder.run_in(weights_root(), run_name)
        if start:
            corpus, name = _corpus_file()
            temporary = [corpus] if name else []
            try:
                plan_run(run, corpus, settings, UPLOAD_MB * 2**20, name)  # mistakes show here, not in the job
                manager.start(run, corpus, settings=settings, max_bytes=UPLOAD_MB * 2**20, corpus_name=name,
                              cleanup=temporary)
            except CharModelError:
                for path in temporary:
                    os.unlink(path)
                raise
        else:
            if not (run / runfolder.CONFIG).is_file():
                raise CharModelError(f"there is no run named '{run.name}' to resume; start it first.")
            more = {"epochs": settings["epochs"], "minutes": settings["minutes"]}  # the run keeps its own schedule
            manager.start(run, resume=True, settings=more)
        st.toast(f"Training {run.name} started")
    except CharModelError as e:
        st.error(user_message(e), icon=":material/warning:")


# ---------------------------------------------------------------- live view
# The live view is a fragment redrawn every second while the job's process is alive. It never
# navigates: st.switch_page inside a timed fragment races the timer and could leave the next page
# blank. Once the process is gone the fragment reruns the whole app, once per job; that
# run draws the fragment without a timer, the sidebar with the finished job, and links to the new
# run outside the fragment (plain links, which select the run through the URL: nothing to race).
def live():
    job = manager.job
    if job is None:
        st.caption("No training job in this app process yet.")
        return
    p = job.snapshot()
    state = {"starting": ":material/hourglass_top: starting (loading TensorFlow in its own process)",
             "training": ":material/directions_run: training", "stopping": ":material/pause_circle: stopping",
             "finished": ":material/check_circle: finished", "stopped": ":material/stop_circle: stopped",
             "failed": ":material/error: failed"}[p.status]
    st.subheader(f"Run {p.run}: {state}")
    if p.error:
        st.error(p.error, icon=":material/error:")
    for notice in p.notices:
        st.caption(notice)
    if p.log_tail:
        with st.expander("The last lines of the training process's log"):
            st.code(p.log_tail, language=None)
    if p.steps:
        eta = p.eta_s()
        st.progress(p.batch / p.steps, text=f"epoch {p.epoch}/{p.epochs or '?'}: batch {p.batch}/{p.steps}, "
                    f"{p.chars_per_s:,.0f} chars/s" + (f", about {eta:.0f} s left in this epoch" if eta else ""))
    if p.batches:
        c1, c2 = st.columns(2)
        to_beat = best_baseline(split_baselines(run_path(p.run)))
        c1.altair_chart(loss_chart(batch_frame(p.batches), "step", "per batch", to_beat=to_beat), key="live_batches")
        if p.rows:
            c2.altair_chart(loss_chart(epoch_frame(p.rows), "epoch", "per epoch", to_beat=to_beat), key="live_epochs")
    if p.rows:
        st.markdown("**Checkpoints**")
        table = pd.DataFrame(p.rows)[["epoch", "val_bpc", "wall_s", "chars_per_s"]]
        table.columns = ["epoch", "validation bpc", "seconds", "chars/s"]
        st.dataframe(table, hide_index=True, key="live_table")
        last = max(p.samples)
        with st.expander(f"Sample after epoch {last}", expanded=True):
            st.code(p.samples[last], language=None, wrap_lines=True)
    if p.running and st.session_state.get("seen_job_start") != p.started:  # once per job: the sidebar shows it
        st.session_state["seen_job_start"] = p.started
        st.rerun(scope="app")
    if not job.alive and st.session_state.get("seen_job_end") != p.started:  # once per job, once it is gone
        st.session_state["seen_job_end"] = p.started
        st.rerun(scope="app")


alive = manager.job is not None and manager.job.alive
st.fragment(live, run_every=1.0 if alive else None)()
if manager.job is not None and not alive and manager.job.snapshot().rows:
    open_links(manager.job.snapshot().run)
    atlas_after_training(manager.job.snapshot().run)

# ---------------------------------------------------------------- runs between machines
IMPORTED = "train_import_outcome"  # (upload's file id, "success", run, what the Keras check said) or (id, "error", line)


def import_upload(kind, upload, new_name: str, keras_files) -> None:
    """Import the upload, and keep the outcome in the session before anything more is drawn: a rerun
    that lands while a long import runs (a fragment's timer, another widget) stops the page at its
    next element, and a message drawn only in this run would be lost though the run was imported."""
    record = lambda *outcome: st.session_state.__setitem__(IMPORTED, (upload.file_id, *outcome))
    try:
        if kind in ("keras", "h5"):
            run_name = new_name.strip()
            if not run_name:
                raise CharModelError("a Keras file has no run name in it; type one in the name box.")
            if (keras_files["chars"] is None) == (keras_files["text"] is None):
                raise CharModelError("give the model's characters: a .json list, or the training text, one of the two.")
            held = lambda f: None if f is None else (f.name, f.getvalue())
            with st.spinner("Reading the Keras file and checking it against Keras…"):
                try:
                    said = import_uploads(weights_root(), run_name, held(upload), held(keras_files["chars"]),
                                          held(keras_files["text"]), held(keras_files["corpus"]),
                                          keras_files["window"], keras_files["lowercase"])
                except CharModelError as e:
                    record("error", user_message(e))
                    return
                record("success", run_name, said)
        else:
            record("success", import_run(upload, weights_root(), new_name.strip() or None).name, None)
    except CharModelError as e:
        record("error", user_message(e))


with st.expander("Move runs between machines: download a run, or import one trained elsewhere", key="train_move"):
    st.caption("A run archive is one zip of a run folder (`python -m charmodel export` writes the same). Train on a "
               "rented GPU, download the archive, import it here. Imports are checked before anything is kept: "
               "only a run folder's own files, no paths outside it, weights loaded without pickle. A Keras "
               "char-LSTM (the post's own, or one from a Keras tutorial) imports here too, read as JSON and arrays "
               "and checked against Keras; see docs/keras.md.")
    c1, c2 = st.columns(2)
    with c1:
        runs = runfolder.list_runs(weights_root())
        chosen = st.selectbox("Run to download", runs, key="train_archive_run") if runs else None
        epochs = st.checkbox("With its kept epochs", key="train_archive_epochs")
        if chosen and st.button("Prepare the archive", key="train_archive_prepare"):
            fd, zip_path = tempfile.mkstemp(prefix=f"charmodel-{chosen}-", suffix=".zip")
            os.close(fd)
            with st.spinner("Zipping the run…"):
                export_run(weights_root() / chosen, zip_path, with_checkpoints=epochs)
            st.session_state["archive_zip"] = (chosen, zip_path)
        ready = st.session_state.get("archive_zip")
        if ready and os.path.isfile(ready[1]):
            st.download_button(f"Download {ready[0]}.zip ({os.path.getsize(ready[1]) / 2**20:.1f} MB)",
                               lambda: open(ready[1], "rb"), file_name=f"{ready[0]}.zip", mime="application/zip",
                               key="train_archive_download")
    with c2:
        upload = st.file_uploader("Run archive (.zip), or a Keras char-LSTM (.keras, .h5)", type=["zip", "keras", "h5"],
                                  key="train_archive_upload")
        kind = sniff_bytes(upload.getvalue()) if upload is not None else None
        new_name = st.text_input("Import as" + (" (optional)" if kind == "archive" else ""), key="train_archive_name",
                                 placeholder="the archive's name" if kind == "archive" else "a name for the run")
        keras_files = keras_inputs() if kind in ("keras", "h5") else None
        if upload is not None and st.button("Import", key="train_archive_import", type="primary"):
            import_upload(kind, upload, new_name, keras_files)
        done = st.session_state.get(IMPORTED)
        if upload is not None and done and done[0] == upload.file_id:  # this upload's import, drawn on every run
            if done[1] == "error":
                st.error(done[2], icon=":material/warning:")
            else:
                if done[3]:
                    st.caption(done[3])
                st.success(f"Imported **{done[2]}**: it is in the sidebar's run list.")
