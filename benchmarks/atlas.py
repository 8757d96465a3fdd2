"""The atlas (issue 13): build time, peak memory, file size, growth with the corpus, coverage
against the prototype's grammar, and the page's first table.

    python benchmarks/atlas.py [--repeats 3] [--big-mb 1.0] [--skip-big] [--skip-app | --only-app]

1. Alice (weights/alice, checkpoint best): cold builds, each a fresh `python -m charmodel atlas`
   process, written to a scratch copy of the run; median wall time and median peak RSS (the
   child's own ru_maxrss from wait4) of --repeats; the file's size.
2. Growth: a corpus of about --big-mb MB made of Alice's own lines in a shuffled order (so the
   model reads only characters it knows), in a scratch copy of the run: one cold build, against
   Alice's median.
3. Coverage, in this process on the same samples and thresholds: the full grammar against the
   prototype's (the named hypotheses and the current and previous character), by group.
4. The page: a fresh server per repeat, headless Chromium opens Home, then clicks Atlas in the
   sidebar; seconds from the click to the table showing, with the file present (the first open
   loads the atlas). Clicked at once, while Home's background pass for Cells runs, and 15 s later.

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


def cold_build(run: Path) -> tuple[float, float, dict]:
    """(wall seconds, peak RSS MB, summary with the seconds of each stage) of one `python -m
    charmodel atlas` process, followed through its --events lines (the app's job reads the same)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "charmodel", "atlas", "--run", str(run), "--events"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
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
    from charmodel import atlas, runfolder
    from charmodel.engine import Engine

    train, val = runfolder.split_text(RUN)
    return atlas.compare_grammars(Engine.load(RUN, "best"), train + val, len(train))


def page_seconds(repeats: int, settle_s: float = 0.0) -> list[tuple[float, float]]:
    """(first visit, second visit) seconds from the click on Atlas to the table, per fresh server."""
    from playwright.sync_api import sync_playwright

    from charmodel.appserver import CHROMIUM, CHROMIUM_FLAGS, settle, start

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
    ap.add_argument("--big-mb", type=float, default=1.0)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-app", action="store_true")
    ap.add_argument("--only-app", action="store_true", help="only the page's measure (step 4)")
    args = ap.parse_args()
    if args.only_app:
        page_report(args.repeats)
        return
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        walls, peaks = [], []
        for r in range(args.repeats):
            run = scratch_run(Path(tmp) / f"alice-{r}")
            wall, peak, summary = cold_build(run)
            walls.append(wall)
            peaks.append(peak)
            print(f"alice build {r + 1}: {wall:.1f} s, peak RSS {peak:.0f} MB, file {summary['bytes'] / 2**20:.2f} MB, "
                  f"{summary['explained']} of {summary['cells']} explained; stages (s): {summary['stages']}", flush=True)
        alice_s = statistics.median(walls)
        print(f"ALICE: median {alice_s:.1f} s (target <= 120), median peak RSS {statistics.median(peaks):.0f} MB "
              f"(target <= 2048), file {summary['bytes'] / 2**20:.2f} MB (target <= 10)", flush=True)
        if not args.skip_big:
            from charmodel import runfolder

            text = "".join(runfolder.split_text(RUN))
            big = shuffled_lines(text, int(args.big_mb * 2**20))
            run = scratch_run(Path(tmp) / "big", big)
            wall, peak, summary = cold_build(run)
            print(f"BIG: {len(big):,} characters ({len(big) / len(text):.1f}x Alice): {wall:.1f} s = "
                  f"{wall / alice_s:.1f}x Alice's time (target <= 10x), peak RSS {peak:.0f} MB (target <= 2048)",
                  flush=True)
    cov = coverage_by_grammar()
    for grammar, c in cov.items():
        print(f"COVERAGE {grammar} ({c['candidates']} candidates): {c['explained']} of {c['cells']} explained; "
              f"by group {c['by_group']}; long-context share {c['long_context_share']:.2%}", flush=True)
    if not args.skip_app:
        page_report(args.repeats)


if __name__ == "__main__":
    main()
