"""The Cells page's first open against the command line's `cells`, for the same ranking.

    python benchmarks/cells_first_open.py [--run alice] [--repeats 3]

1. The command line, cold: `python -m charmodel cells --run weights/RUN --hypothesis H` in a fresh
   process, wall time (imports, the engine, the states over the validation text, the ranking).
2. The page's first open as a new user meets it: a fresh `streamlit run` with the shipped runs,
   Home opened in headless Chromium until it has drawn, then the sidebar's Cells link clicked;
   seconds from the click until the ranked table shows.
3. The page opened directly: a fresh server, /cells?run=RUN loaded in a new tab; seconds until the
   ranked table shows (the app's frontend loads too).
Medians of --repeats, and each page figure as a ratio to the command line's. H is the hypothesis
the page opens on (the first built-in one the validation text has).
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ is the checkout's, not a package
from tools.appserver import CHROMIUM, CHROMIUM_FLAGS, settle, start

ROOT = Path(__file__).resolve().parents[1]


def cli_seconds(run: str, hypothesis: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "charmodel", "cells", "--run", f"weights/{run}", "--hypothesis", hypothesis],
                   cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def page_seconds(browser, run: str, after_home: bool) -> float:
    proc, url = start()
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        if after_home:
            page.goto(f"{url}/?run={run}")
            page.get_by_text("See what an LSTM's cells learned").wait_for(timeout=120000)
            settle(page)
            t0 = time.perf_counter()
            page.locator("[data-testid='stSidebarNav'] a", has_text="Cells").click()
        else:
            t0 = time.perf_counter()
            page.goto(f"{url}/cells?run={run}")
        page.locator("[data-testid='stTable']").first.wait_for(timeout=300000)
        return time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    from playwright.sync_api import sync_playwright

    from charmodel.run.handle import Run
    from charmodel.analysis.cells import first_varying_feature

    p = argparse.ArgumentParser()
    p.add_argument("--run", default="alice")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    hypothesis = first_varying_feature(Run.open(ROOT / "weights" / args.run).split()[1])
    cli = [cli_seconds(args.run, hypothesis) for _ in range(args.repeats)]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        home = [page_seconds(browser, args.run, True) for _ in range(args.repeats)]
        direct = [page_seconds(browser, args.run, False) for _ in range(args.repeats)]
        browser.close()
    c = statistics.median(cli)
    print(f"run {args.run}, hypothesis {hypothesis}:")
    print(f"  command line `cells`, cold: median {c:.2f} s (runs {', '.join(f'{t:.2f}' for t in cli)})")
    for label, times in (("Cells after Home (sidebar link)", home), ("Cells opened directly (new tab)", direct)):
        m = statistics.median(times)
        print(f"  {label}: median {m:.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}) = {m / c:.2f}x the "
              "command line (target <= 1.5x)")


if __name__ == "__main__":
    main()
