"""Atlas: what every cell does, explained automatically and scored on held-out text; a row opens
that cell's dossier."""

import numpy as np
import streamlit as st

from charmodel import CharModelError
from charmodel.analysis.atlas import CONTEXT, build_command
from charmodel.analysis.compare import CKA_CHARS, changed_cells
from charmodel.analysis.candidates import GROUPS
from charmodel.analysis.explain import EXPLAINED_R, MAX_TERMS
from charmodel.analysis.replace import cell_sentence
from charmodel.engine import layer_index, layer_number
from charmodel.run import folder as runfolder
from charmodel.view import charts
from charmodel.view.render import coloured_text, display_values, legend, markdown_text, show_char
from charmodel.view.words import dossier_sentence, replacement_summary
from pages.shared.background import atlas_job, start_atlas_job
from pages.shared.data import (ablation, atlas_table, context_values, headline, layer_values, load_atlas,
                               similarity, split_text)
from pages.shared.mode import run_path
from pages.shared.widgets import selected_run, style, user_message

SIMULATED_CHARS = 400  # characters of the validation text the dossier simulates
name, checkpoint = selected_run()
st.title("Atlas")
st.caption(f"Every cell of every layer, for h and c, explained by a phrase: at most {MAX_TERMS} terms, each a yes/no "
           "fact or a number read from the text up to the current character (none reads ahead), with weights. "
           "Phrases are chosen on the training text and scored on the validation text, which played no part in "
           "choosing them. The score is **phrase r**, the correlation between what the phrase alone predicts and "
           f"what the cell does; a cell is explained at phrase r ≥ {EXPLAINED_R}. Beside it, **context r** is what "
           "the last three characters already tell (the cell's mean after them: a table, not an explanation) and "
           "**beyond r** what the phrase tells that they do not.")

# ---------------------------------------------------------------- no atlas yet: offer to build one
try:
    found = load_atlas(name, checkpoint)
except CharModelError as e:
    found = None
    st.info(user_message(e), icon=":material/info:")
    job = atlas_job(name, checkpoint)
    if job is None or not job.alive:
        if job is not None and job.status == "failed":
            st.error(f"The atlas build failed: {job.error}", icon=":material/error:")
        st.button("Build the atlas in the background", key="atlas_build", type="primary",
                  on_click=start_atlas_job, args=(name, checkpoint),
                  help="about five minutes for the shipped 2×512 model on 2 cores, most of it holding each cell at its "
                       "mean to see what the model loses; the app stays usable")
        st.caption("Or from a terminal:")
        st.code(build_command(f"weights/{name}", checkpoint), language="bash")
    else:
        @st.fragment(run_every=1.0)
        def follow():
            if job.alive:
                st.progress(job.fraction, text=f"Building the atlas: {job.stage}…")
            else:  # done: run the whole page again, which now finds the file (or the error)
                st.rerun(scope="app")

        follow()
if found is None:
    st.stop()

# ---------------------------------------------------------------- coverage
table = atlas_table(name, checkpoint)
cov = found.coverage()
c1, c2, c3, c4 = st.columns(4)
number = lambda v: "–" if v is None else f"{v:.2f}"
c1.metric("cells explained", f"{cov['explained']:,} of {cov['cells']:,}",
          help=f"the phrase alone, held out: phrase r ≥ {EXPLAINED_R}")
c2.metric("median phrase r", number(cov["median_phrase_r"]), help="what a person reads, scored alone on held-out text")
c3.metric("beyond three characters", f"{cov['beyond_half']:,} cells",
          help=f"beyond r ≥ {EXPLAINED_R}: the phrase tells about the cell what the last three characters do not "
               f"(median beyond r {number(cov['median_beyond_r'])})")
c4.metric("median context r", number(cov["median_context_r"]),
          help="what the last three characters already tell: the cell's mean after them, a table fitted alone")
st.caption("Explained, per layer and kind: " + " · ".join(f"{part} {d['explained']} of {d['cells']}"
                                                           for part, d in cov["by_layer_kind"].items()) +
           ". By the group of the first term: " + ", ".join(f"{g} {n}" for g, n in cov["by_group"].items()) + ".")

# ---------------------------------------------------------------- what the explanations carry
chars = found.meta["ablation_chars"]
if cov["weighted_coverage"] is not None:
    st.markdown(f"Explains **{cov['explained']:,} of {cov['cells']:,}** cells, holding **{cov['weighted_coverage']:.0%}** "
                "of what single cells carry", help="each cell held at its mean alone over the first "
                f"{chars:,} validation characters: the share of the bits per character those ablations cost that "
                "falls on explained cells")
elif not chars:
    st.caption("What the model loses without each cell is not measured in a windowed model's atlas: every character "
               "has its own window pass, so it would take the window's length times as long. The Cells page's "
               "ablation sweep measures one layer.")
r = (cov["replacement"] or {}).get("model")
if r and r["beyond_context"] is not None:
    st.info(replacement_summary(r, chars, cov["median_recovered"]), icon=":material/swap_horiz:")
elif r:
    st.caption(f"Replacing the {r['cells']:,} explained cells by the last three characters costs the model nothing on "
               f"the first {chars:,} validation characters: there is nothing beyond them for the phrases to win back.")

# ---------------------------------------------------------------- the table
f1, f2, f3, f4, f5 = st.columns([1, 1, 2, 1.2, 2])
layers = f1.multiselect("Layer", sorted(table["layer"].unique()), key="atlas_layers", placeholder="all")
kinds = f2.multiselect("Kind", ["h", "c"], key="atlas_kinds", placeholder="all")
groups = f3.multiselect("Group", list(GROUPS), key="atlas_groups", placeholder="all",
                        help="current character, previous or next character, short context, long context")
minimum = f4.number_input("Min. phrase r", 0.0, 1.0, 0.0, 0.05, key="atlas_min_score",
                          help="the phrase's held-out r")
search = f5.text_input("Search explanations", key="atlas_search", placeholder="quotation, 'e', position in line…")
shown = table
if layers:
    shown = shown[shown["layer"].isin(layers)]
if kinds:
    shown = shown[shown["kind"].isin(kinds)]
if groups:
    shown = shown[shown["group"].isin(groups)]
if minimum > 0:
    shown = shown[shown["phrase_r"].fillna(-1) >= minimum]
if search:
    shown = shown[shown["explanation"].str.contains(search, case=False, regex=False, na=False)]
shown = shown.sort_values("beyond_r", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
st.caption(f"{len(shown):,} cells, those whose phrase says most beyond the last three characters first. Click a row "
           "to open its dossier.")
picked = st.dataframe(
    shown[["layer", "kind", "cell", "explanation", "phrase_r", "beyond_r", "context_r", "recovered", "ablation_bits",
           "group", "spread"]],
    key="atlas_table", on_select="rerun", selection_mode="single-row", hide_index=True, height=320, placeholder="–",
    column_config={"phrase_r": st.column_config.NumberColumn("phrase r", format="%.3f",
                                                             help="held-out r of what the phrase alone predicts: the "
                                                                  "explanation's score"),
                   "beyond_r": st.column_config.NumberColumn("beyond r", format="%.3f", help="held-out partial r of "
                                                             "the phrase given the last three characters: what it "
                                                             "tells that they do not"),
                   "context_r": st.column_config.NumberColumn("context r", format="%.3f", help="held-out r of the "
                                                              "cell's mean after the last three characters: what they "
                                                              "already tell (a table, not an explanation)"),
                   "explanation": st.column_config.TextColumn("explanation", help="each term with the sign of its "
                                                              "weight: (+) the cell is higher where it holds"),
                   "recovered": st.column_config.NumberColumn("kept", format="percent", width="medium", help=(
                       "replaced by its phrase alone, the share of what the cell gives the model that the model keeps "
                       "(–: unexplained, or barely used; below 0% the replacement does worse than the cell's mean, "
                       "over 100% better than the cell itself, which happens where a cell costs little)")),
                   "ablation_bits": st.column_config.NumberColumn("bits without it", format="%.4f", help="what "
                                                                  "holding it at its mean costs, in bits per character"),
                   "spread": st.column_config.NumberColumn("spread (std)", format="%.3f")})
st.altair_chart(charts.simulation_histogram(table["phrase_r"].to_numpy(dtype=float), EXPLAINED_R),
                key="atlas_r_histogram")  # below the table: a chart above it made the browser draw it first
rows = picked.selection.rows if picked is not None else []
if rows and rows[0] < len(shown):
    row = shown.iloc[rows[0]]
    layer, kind, cell = int(row["layer"]), str(row["kind"]), int(row["cell"])
else:  # the cell last studied on another page, or the run's headline cell
    last = st.session_state.get("studied")
    if not last or last.get("kind") not in ("h", "c") or last["layer"] > found.meta["layers"]:
        best = headline(name, checkpoint)
        last = {"layer": layer_number(best["layer"]), "kind": best["kind"], "cell": best["cell"]}
    layer, kind, cell = last["layer"], last["kind"], last["cell"]
st.session_state["studied"] = {"layer": layer, "kind": kind, "cell": cell}

# ---------------------------------------------------------------- the dossier
d = found.dossier(layer_index(layer), kind, cell)
st.subheader(f"Layer {layer} {kind} cell {cell}")
st.markdown(dossier_sentence(d))
st.page_link("pages/visualise.py", label="Open this cell in Visualise", icon=":material/palette:",
             query_params={"run": name, "checkpoint": checkpoint, "layer": layer, "cell": cell, "kind": kind})
left, right = st.columns(2)
with left:
    if d["terms"]:
        st.markdown("**Its terms**, in the order chosen, with the phrase's weights")
        st.table([{"term": t["explanation"], "group": t["group"], "sign": "(+)" if t["sign"] > 0 else "(−)",  # a bare "+" reads as a list bullet
                   "weight": t["weight"], "r alone (held out)": t["r"]} for t in d["terms"]], hide_index=True)
    fmt = lambda pairs: ", ".join(f"{markdown_text(''.join(map(show_char, p)))} ({w:+.3f})" for p, w in pairs) or "none"
    st.caption(f"The background (not the explanation): reaching back up to three characters, it stands furthest "
               f"above its mean after the last character alone after {fmt(d['runs']['above'])}; furthest below after "
               f"{fmt(d['runs']['below'])}.")
    s = d["summary"]
    n = found.meta.get("summary_positions", found.meta["chars"])
    over = f"all {n:,} characters" if n >= found.meta["chars"] else f"{n:,} sampled characters (each from its window)"
    st.caption(f"Over {over}: mean {s['mean']:+.3f}, std {s['std']:.3f}, "
               f"min {s['min']:+.3f}, max {s['max']:+.3f}.")
    if d["effect"]:
        fmt = lambda pairs: ", ".join(f"{markdown_text(show_char(c))} ({w:+.2f})" for c, w in pairs)
        st.markdown(f"**What it anticipates** (its Dense weights, read by the next character's guess; never part of "
                    f"a score or a replacement): boosts {fmt(d['effect']['boosts'])}; suppresses "
                    f"{fmt(d['effect']['suppresses'])}.")
    st.markdown("**What the model loses without it**")
    explained = d["phrase_r"] is not None and d["phrase_r"] >= EXPLAINED_R
    said = cell_sentence(d["ablation_bits"], d["recovered"], explained)
    if chars:
        st.markdown(f"Over the first {chars:,} validation characters, {said}")
    else:  # a windowed atlas: measured on demand, below
        st.markdown("Not measured in a windowed model's atlas; the button below measures it for this cell.")
    asked = st.session_state.setdefault("atlas_ablated", [])
    if [layer, kind, cell] not in asked:
        if st.button("Which next characters it costs", key="atlas_ablate",
                     help="a stateful pass with the cell held at one value, against the same pass without"):
            asked.append([layer, kind, cell])
    if [layer, kind, cell] in asked:
        a = ablation(name, checkpoint, layer_index(layer), kind, cell)
        st.markdown(f"bpc without this cell: **{a['bpc_ablated']:.4f}** against {a['bpc']:.4f} "
                    f"(**{a['delta']:+.4f}**), held at {a['values'][0]:+.3f}.")
        fmt = lambda rows: ", ".join(f"{show_char(r['char'])} ({r['change']:+.2f} nats)" for r in rows) or "none"
        st.caption(f"Next characters that lose most: {fmt(a['drops'])}. That gain most: {fmt(a['gains'])}.")
with right:
    st.altair_chart(charts.histogram_chart(d["histogram"], kind), key="atlas_histogram")
    sampled = found.meta["sample_positions"]
    of = "of those" if found.meta.get("summary_positions", found.meta["chars"]) < found.meta["chars"] else "sampled"
    st.caption(f"Histogram of {sampled:,} {of} characters over the cell's whole range.")
present = set("".join(split_text(name)))  # a large vocabulary (an import's) lists characters the text never holds
st.altair_chart(charts.char_profile([row for row in d["char_profile"] if row["char"] in present], kind),
                key="atlas_profile")

# the explanation, simulated over held-out text, against the cell itself
train, val = split_text(name)
passage = val[:SIMULATED_CHARS]
if d["terms"] and passage:
    actual = layer_values(name, checkpoint, passage, layer_index(layer), kind)[:, cell]
    simulated = found.simulate(layer_index(layer), kind, cell, passage)
    context = found.simulate(layer_index(layer), kind, cell, passage, "context")
    st.altair_chart(charts.simulation_chart(passage, simulated, actual, kind, context), key="atlas_simulation")
    st.caption(f"The first {len(passage):,} characters of the validation text. The same for any text: "
               f"`python -m charmodel atlas --run weights/{name} --simulate --layer {layer} --kind {kind} "
               f"--cell {cell} --text-file FILE --json`.")

# contexts: the stored positions, coloured by this cell over ±CONTEXT characters
corpus = train + val
groups_of = {"Top contexts": d["top"], "Bottom contexts": d["bottom"],
             "Across its range": [p for q in d["quantiles"] for p in q["samples"]]}
# Coloured contexts take a batched pass (about a second for 20 contexts of the 2 x 512 model), and
# while it runs the server sends nothing: the page's first open shows them on request, so the
# table comes first; a picked row shows them at once.
shown_contexts = bool(rows) or st.toggle("Show its top and bottom contexts, coloured by the cell", key="atlas_show_contexts")
style()
_, (lo, hi) = display_values(np.zeros(1), kind)
if shown_contexts:
    st.html(legend(lo, hi, f"layer {layer} cell {cell} {kind}"))
tabs = st.tabs(list(groups_of), key="atlas_contexts", on_change="rerun") if shown_contexts else []
for tab, (title, group) in zip(tabs, groups_of.items()):  # only the open tab computes
    if not tab.open:
        continue
    with tab:
        if title == "Across its range":
            st.caption(f"{len(group) // len(d['quantiles'])} random characters from each tenth of its values, "
                       "lowest first.")
        values = context_values(name, checkpoint, [p for p, _ in group], layer_index(layer), kind, cell)
        lines = []
        for p, v in group:
            start = max(0, p - CONTEXT)
            text = "".join(show_char(ch) if ch in "\n\t" else ch for ch in corpus[start : p + CONTEXT + 1])
            shown_values, _ = display_values(values[len(lines)], kind)
            lines.append(f'<div style="display:flex;gap:10px;align-items:baseline;margin:2px 0"><code>{v:+.3f}</code>'
                         f'<small style="min-width:9em">{found.part(p)} #{p}</small>'
                         + coloured_text(text, shown_values, lo, hi, selected=(p - start, p - start + 1)) + "</div>")
        st.html("".join(lines))

# ---------------------------------------------------------------- what changed while it learned
others = [c for c in runfolder.available_checkpoints(run_path(name)) if c != checkpoint]
if others and st.toggle("Compare with another checkpoint of this run", key="atlas_compare"):
    other = st.selectbox("Checkpoint", others, key="atlas_other",
                         format_func=lambda c: c if c in ("best", "latest") else f"epoch {c}")
    sims = similarity(name, checkpoint, other)
    st.markdown(f"**Layer similarity, {checkpoint} against {other}** (linear CKA over {CKA_CHARS:,} validation "
                "characters: 1 when one layer's activations are a rotation and scaling of the other's, near 0 when "
                "they share no linear structure, whatever the order of the cells)")
    st.altair_chart(charts.similarity_chart([{**d, "layer": layer_number(d["layer"])} for d in sims]),
                    key="atlas_similarity")
    try:
        moved = changed_cells(found, load_atlas(name, other))
    except CharModelError as e:
        st.caption(f"{user_message(e)} The cells' explanations are compared once both checkpoints have an atlas.")
    else:
        st.markdown("**Cells whose phrase r moved most**")
        st.table([{"layer": layer_number(d["layer"]), "kind": d["kind"], "cell": d["cell"],
                   f"explanation at {checkpoint}": d["before"], f"r at {checkpoint}": d["score_before"],
                   f"explanation at {other}": d["after"], f"r at {other}": d["score_after"],
                   "change": d["change"]} for d in moved], hide_index=True)
