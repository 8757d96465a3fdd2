"""The atlas (issues 13, 20, 29 and 36): build time against the first edition and against `evaluate`,
peak memory, the three scores (phrase r, context r, beyond r) and the stored replacement, how explanations carry over to a book the model never read, the code
cells, the page.

    python benchmarks/atlas.py [--repeats 3] [--baseline DIR] [--code-run weights/python]
                               [--skip-big] [--skip-app | --only-app]

1. Cold builds of weights/alice (checkpoint best), each a fresh `python -m charmodel atlas`
   process on a scratch copy of the run: this checkout's, and, with --baseline DIR (a checkout of
   the first edition: `git worktree add DIR 28050d3`), the baseline's, alternating, so both see
   the same machine. Median wall time and median peak RSS (the child's own ru_maxrss from wait4).
   After each of this checkout's builds, one `charmodel evaluate` child on the validation text:
   the build's median against evaluate's (issue 29's budget: at most 40x).
2. Growth: a corpus of about --big-mb MB of Alice's own lines in a shuffled order: one cold build.
3. Simulation r on Alice: the median over all cells, the cells at r >= 0.5, and the best cell
   having each of the post's three ideas as a term.
4. Generalisation: every cell's explanation simulated on --unseen (As You Like It, characters
   Alice's model never saw dropped) against the cell's own values there, the median r against the
   held-out median.
5. Code (--code-run): for leading whitespace, string literals, comments and parentheses, the three
   cells a regular expression ranks first (ROC AUC on the run's validation text, as `cells
   --regex` ranks them) and whether one of them has that idea among its terms.
6. The page: a fresh server per repeat, headless Chromium opens Home, then clicks Atlas.

Nothing else may run on the machine meanwhile (two cores: see ../shared/NOTES.md).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "weights" / "alice"


def scratch_run(folder: Path, text: str | None = None) -> Path:
    """A copy of weights/alice (config, best weights, corpus), optionally with another corpus."""
    run = folder / "alice"
    run.mkdir(parents=True)
    for name in ("config.json", "best.npz", "corpus.txt"):
        shutil.copy(RUN / name, run / name)
    if text is not None:
        (run / "corpus.txt").write_text(text, encoding="utf-8")
    return run


def cold_build(run: Path, checkout: Path = ROOT) -> tuple[float, float, dict]:
    """(wall seconds, peak RSS MB, summary with the seconds of each stage) of one atlas build in a
    child process of `checkout`'s code, the app's own (followed through its JSON event lines, as the
    app's job reads them); a checkout from before the sub-packages runs `charmodel atlas --events`."""
    t0 = time.perf_counter()
    if (checkout / "charmodel" / "training" / "children.py").is_file():
        command = ["-m", "charmodel.training.children", "atlas", str(run), "best"]
    else:
        command = ["-m", "charmodel", "atlas", "--run", str(run), "--events"]
    proc = subprocess.Popen([sys.executable, *command],
                            cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(checkout)})
    stages, summary, last = {}, None, (None, t0)
    for line in proc.stdout:
        event = json.loads(line)
        now = time.perf_counter()
        if event["event"] == "progress" and event["stage"] != last[0]:
            if last[0] is not None:
                stages[last[0]] = round(now - last[1], 1)
            last = (event["stage"], now)
        elif event["event"] == "done":
            summary = event
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0 or summary is None:
        raise RuntimeError(f"the atlas build failed with status {status}")
    return wall, usage.ru_maxrss / 1024, {**summary, "stages": stages}


def evaluate_seconds(run: Path) -> float:
    """Wall seconds of one `python -m charmodel evaluate` child on the run's validation text (the
    yardstick of issue 29's budget: a build within 40 of them)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "charmodel", "evaluate", "--run", str(run), "--json", "--quiet"], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return time.perf_counter() - t0


def shuffled_lines(text: str, target_chars: int, seed: int = 0) -> str:
    import numpy as np

    lines = text.split("\n")
    rng = np.random.default_rng(seed)
    out, n = [], 0
    while n < target_chars:
        for i in rng.permutation(len(lines)):
            out.append(lines[i])
            n += len(lines[i]) + 1
            if n >= target_chars:
                break
    return "\n".join(out)


def coverage_by_grammar() -> dict:
    from charmodel.analysis import atlas
    from charmodel.run.handle import Run
    from charmodel.engine import Engine

    train, val = Run.open(RUN).split()
    return atlas.compare_grammars(Engine.load(RUN, "best"), train + val, len(train))


POST_IDEAS = {"inside a quotation": lambda n: n == "named:quote",
              "after a quotation closes": lambda n: n == "named:after_quote" or n.startswith("afterquote:"),
              "first character of a word": lambda n: n == "named:word_start"}


def simulation_report(run: Path) -> float:
    """Step 3: the three scores (docs/atlas.md); returns the held-out median phrase r."""
    import numpy as np

    from charmodel.analysis import atlas

    found = atlas.load(run, "best")
    rows = found.cells()
    score = lambda key: np.array([np.nan if x[key] is None else x[key] for x in rows])
    r, beyond, context = score("phrase_r"), score("beyond_r"), score("context_r")
    terms = np.bincount([len(x["terms"]) for x in rows], minlength=4)
    print(f"PHRASE: median phrase r {np.nanmedian(r):.3f} over {len(r)} cells (target >= 0.55); {int((r >= 0.5).sum())} "
          f"cells at phrase r >= 0.5 (target >= 1,200); beyond r median {np.nanmedian(beyond):.3f}, "
          f"{int((beyond >= 0.5).sum())} cells >= 0.5 (target >= 1,000); context r median {np.nanmedian(context):.3f}; "
          f"cells with 0, 1, 2, 3 terms: {', '.join(str(t) for t in terms[:4])}", flush=True)
    model = found.meta["replacement"]["model"]
    print(f"REPLACED: {model['cells']} explained cells at once: bpc {model['bpc']}, context {model['bpc_context']}, "
          f"both {model['bpc_both']}, phrase {model['bpc_phrase']}, means {model['bpc_means']}; beyond_context "
          f"{model['beyond_context']} (target >= 0.3); recovered {model['recovered']}", flush=True)
    for idea, test in POST_IDEAS.items():
        hits = [x for x in rows if x["phrase_r"] is not None and any(test(t["name"]) for t in x["terms"])]
        first = [x for x in hits if test(x["terms"][0]["name"])]
        best = max(first or hits, key=lambda x: x["phrase_r"])
        print(f"POST: {idea}: {len(hits)} cells have it as a term, {len(first)} as their first; best layer "
              f"{best['layer'] + 1} {best['kind']} cell {best['cell']}, phrase r {best['phrase_r']:.3f}: "
              f"{best['explanation']}", flush=True)
    return float(np.nanmedian(r))


def generalisation_report(run: Path, unseen: Path, held_median: float, chars: int) -> None:
    """Step 4: every cell's phrase simulated on a text the model never read."""
    import numpy as np

    from charmodel.analysis import atlas, candidates
    from charmodel.analysis.cells import batched_activations
    from charmodel.run.corpus import clean, read_text
    from charmodel.engine import Engine

    engine = Engine.load(run, "best")
    text = engine.vocab.drop_unknown(clean(read_text(unseen), False))[:chars]
    found = atlas.load(run, "best")
    states = batched_activations(engine, text, warmup=atlas.WARMUP)
    cands = found.candidates
    ids = candidates.masks(text, found.meta["vocab"])
    signals = {}
    r = []
    for i in range(len(found.arrays["terms"])):
        layer, kind = divmod(i // found.meta["units"], len(atlas.KINDS))
        predicted = np.full(len(text), float(found.arrays["intercept"][i]))
        for j, w in zip(found.arrays["terms"][i], found.arrays["weights"][i]):
            if j >= 0:
                if j not in signals:
                    signals[j] = candidates.signal(cands[j], text, ids).astype(np.float64)
                predicted += float(w) * signals[j]
        actual = states[(layer, atlas.KINDS[kind])][:, i % found.meta["units"]]
        ok = predicted.std() > 0 and actual.std() > 0
        r.append(np.corrcoef(predicted, actual)[0, 1] if ok else np.nan)
    median = float(np.nanmedian(r))
    print(f"UNSEEN: {unseen.name}, {len(text):,} characters: median phrase r {median:.3f} against the held-out "
          f"{held_median:.3f} = {median / held_median:.2f}x (target >= 0.8x); {int((np.array(r) >= 0.5).sum())} "
          f"cells at phrase r >= 0.5", flush=True)


CODE_IDEAS = {  # regex for `cells --regex`, and the term names that carry the idea
    "leading whitespace": (r"^[ \t]+", lambda n: n in ("lead", "indent")),
    "string literals": (r"'[^'\n]*'|\"[^\"\n]*\"", lambda n: n.startswith(("string:", "block:"))),
    "comments": (r"#.*$", lambda n: n == "toeol:#"),
    "parentheses": (r"\([^()\n]*\)", lambda n: n in ("pair:()", "innermost:()", "linepair:()", "named:parens")),
}


def code_report(run: Path) -> None:
    """Step 5: the code cells a regular expression ranks first, and their terms."""
    from charmodel.analysis import atlas
    from charmodel.run.handle import Run
    from charmodel.analysis.cells import batched_activations, rank_cells, regex_signal
    from charmodel.engine import Engine

    engine = Engine.load(run, "best")
    _, val = Run.open(run).split()
    found = atlas.load(run, "best")
    rows = found.cells()
    states = batched_activations(engine, val, warmup=atlas.WARMUP)
    print(f"CODE: {run.name}, {found.coverage()['explained']} of {len(rows)} explained, median phrase r "
          f"{found.coverage()['median_phrase_r']}, long-context share {found.coverage()['long_context_share']:.1%}")
    for idea, (pattern, carries) in CODE_IDEAS.items():
        top = rank_cells(states, regex_signal(pattern, val), 3)
        found_it = []
        for d in top:
            row = rows[found.index(d["layer"], d["kind"], d["cell"])]
            has = any(carries(t["name"]) for t in row["terms"])
            found_it.append(has)
            print(f"  {idea}: layer {d['layer'] + 1} {d['kind']} cell {d['cell']} (regex AUC {d['score']:.3f}) -> "
                  f"phrase r {row['phrase_r']}: {row['explanation']}{'   <- has the idea' if has else ''}")
        print(f"CODE {idea}: {'yes' if any(found_it) else 'NO'} (one of the regex's top three cells has the idea "
              "as a term)", flush=True)


def page_seconds(repeats: int, settle_s: float = 0.0) -> list[tuple[float, float]]:
    """(first visit, second visit) seconds from the click on Atlas to the table, per fresh server."""
    from playwright.sync_api import sync_playwright

    from tools.appserver import CHROMIUM, CHROMIUM_FLAGS, settle, start

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        for _ in range(repeats):
            proc, url = start()
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)  # the app's frontend, loaded once per server as a user arriving at Home would
                page.get_by_text("See what an LSTM's cells learned").wait_for(timeout=120000)
                time.sleep(settle_s)  # Home's own background work (the Cells activations) done, or not
                t0 = time.perf_counter()
                page.locator("[data-testid='stSidebarNav'] a", has_text="Atlas").click()
                page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=120000)
                first = time.perf_counter() - t0
                settle(page)
                page.locator("[data-testid='stSidebarNav'] a", has_text="Generate").click()
                page.get_by_role("heading", name="Generate").wait_for(timeout=120000)
                settle(page)
                t0 = time.perf_counter()  # a second visit in the same browser session
                page.locator("[data-testid='stSidebarNav'] a", has_text="Atlas").click()
                page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=120000)
                times.append((first, time.perf_counter() - t0))
                page.close()
            finally:
                proc.terminate()
                proc.wait(10)
    return times


def page_report(repeats: int) -> None:
    for settle_s, when in ((0.0, "as soon as Home has rendered (its background pass for Cells still running)"),
                           (15.0, "15 s after Home rendered (its background pass done)")):
        pairs = page_seconds(repeats, settle_s)
        first, again = [p[0] for p in pairs], [p[1] for p in pairs]
        print(f"PAGE: atlas table shown {statistics.median(first):.2f} s after the click, {when} (median of "
              f"{', '.join(f'{t:.2f}' for t in first)}; target <= 1 s); on a second visit in the same session "
              f"{statistics.median(again):.2f} s ({', '.join(f'{t:.2f}' for t in again)})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", type=Path, default=None, help="a checkout of the first edition, built side by side")
    ap.add_argument("--big-mb", type=float, default=1.0)
    ap.add_argument("--unseen", type=Path, default=ROOT / "data" / "asyoulik.txt")
    ap.add_argument("--unseen-chars", type=int, default=40_000)
    ap.add_argument("--code-run", type=Path, default=ROOT / "weights" / "python")
    ap.add_argument("--skip-builds", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-app", action="store_true")
    ap.add_argument("--only-app", action="store_true", help="only the page's measure (step 6)")
    args = ap.parse_args()
    if args.only_app:
        page_report(args.repeats)
        return
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        walls = {"this": [], "baseline": []}
        evaluations = []
        peaks = {"this": [], "baseline": []}
        checkouts = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
        for r in range(0 if args.skip_builds else args.repeats):
            for which, checkout in checkouts.items():
                run = scratch_run(Path(tmp) / f"alice-{which}-{r}")
                wall, peak, summary = cold_build(run, checkout)
                walls[which].append(wall)
                peaks[which].append(peak)
                if which == "this":
                    evaluations.append(evaluate_seconds(run))
                print(f"alice build {r + 1} ({which}): {wall:.1f} s, peak RSS {peak:.0f} MB, file "
                      f"{summary['bytes'] / 2**20:.2f} MB, {summary['explained']} of {summary['cells']} explained; "
                      f"stages (s): {summary['stages']}", flush=True)
        if walls["this"]:
            alice_s = statistics.median(walls["this"])
            print(f"ALICE: median {alice_s:.1f} s ({', '.join(f'{w:.1f}' for w in walls['this'])}), median peak RSS "
                  f"{statistics.median(peaks['this']):.0f} MB (target <= 2048)", flush=True)
            yardstick = statistics.median(evaluations)
            print(f"AGAINST EVALUATE: `charmodel evaluate` on the validation text, each after a build: median "
                  f"{yardstick:.1f} s ({', '.join(f'{w:.1f}' for w in evaluations)}); the build is "
                  f"{alice_s / yardstick:.1f}x (target <= 35x)", flush=True)
        if walls["baseline"]:
            base = statistics.median(walls["baseline"])
            print(f"AGAINST THE FIRST EDITION: {alice_s:.1f} s against {base:.1f} s "
                  f"({', '.join(f'{w:.1f}' for w in walls['baseline'])}) = {alice_s / base:.2f}x (target <= 1.5x); "
                  f"peak RSS {statistics.median(peaks['this']):.0f} MB against "
                  f"{statistics.median(peaks['baseline']):.0f} MB", flush=True)
        if not args.skip_big and walls["this"]:
            from charmodel.run.handle import Run

            text = "".join(Run.open(RUN).split())
            big = shuffled_lines(text, int(args.big_mb * 2**20))
            run = scratch_run(Path(tmp) / "big", big)
            wall, peak, summary = cold_build(run)
            print(f"BIG: {len(big):,} characters ({len(big) / len(text):.1f}x Alice): {wall:.1f} s = "
                  f"{wall / alice_s:.1f}x Alice's time, peak RSS {peak:.0f} MB (target <= 2048)", flush=True)
    held = simulation_report(RUN)
    generalisation_report(RUN, args.unseen, held, args.unseen_chars)
    if (args.code_run / "config.json").is_file():
        code_report(args.code_run)
    else:
        print(f"CODE: {args.code_run} is not a run folder; step 5 skipped")
    if not args.skip_app:
        page_report(args.repeats)


if __name__ == "__main__":
    main()
