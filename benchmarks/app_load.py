"""The app under real conditions, with the shipped model (weights/alice): every page, two sessions,
a training job.

    python benchmarks/app_load.py [--repeats 5] [--warm-s 10]

1. Whole app, no training: a fresh `streamlit run`, headless Chromium opens every page and every
   tab of Cells. Then the server's resident memory, and whether TensorFlow is mapped into it.
   On the way: the Cells page's first open (time from navigation to the first ranked table),
   then a second browser session opening it (time, and what it added to the server's memory).
2. While a training job runs (2 x 512 on Alice, started from the Train page of that server, so
   the child process is the app's own): server time of a Visualise cell switch on a 2,000
   character passage (AppTest in this process, activations cached), and generating 500
   characters, each against the same measure before the job started. Medians of --repeats.
3. After the job is stopped: the server's memory against its level before the job, and whether
   TensorFlow is mapped.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.app import FLAGS, rss_mb, settle, start_server, tensorflow_loaded  # noqa: E402

TABS = ["Rank cells", "Select and match", "One cell", "Gate saturation", "Intervene", "Export"]


def open_cells(page, url) -> float:
    t0 = time.perf_counter()
    page.goto(url + "/cells")
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=120000)
    return time.perf_counter() - t0


def server_times(repeats: int):
    """(cell switch seconds, 500-character generation seconds) measured in this process."""
    from streamlit.testing.v1 import AppTest

    from charmodel.engine import Engine
    from charmodel.sample import generate

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("pages/visualise.py").run()
    at.slider(key="passage_length").set_value(2000).run()
    switch = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        at.button(key="next_cell").click().run()
        switch.append(time.perf_counter() - t0)
    assert not at.exception, at.exception
    engine = Engine.load(ROOT / "weights" / "alice")
    gen = []
    for seed in range(repeats):
        t0 = time.perf_counter()
        generate(engine, "Alice ", 500, 0.8, seed)
        gen.append(time.perf_counter() - t0)
    return statistics.median(switch), statistics.median(gen)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warm-s", type=float, default=10, help="seconds of training before measuring under it")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    weights = Path(tempfile.mkdtemp(prefix="charmodel-bench-")) / "weights"
    weights.mkdir()
    shutil.copytree(ROOT / "weights" / "alice", weights / "alice")
    os.environ["CHARMODEL_WEIGHTS"] = str(weights)
    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        proc, url, _ = start_server()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for path in ("", "/generate", "/visualise"):
            page.goto(url + path)
            settle(page)
        out["cells_first"] = open_cells(page, url)
        settle(page)
        for tab in TABS[1:]:
            page.get_by_role("tab", name=tab).click()
            settle(page)
            if tab == "Export":
                page.get_by_role("button", name="Prepare the LSTMVis files").click()
                page.get_by_text("lstmvis.zip is ready").wait_for(timeout=120000)
        page.goto(url + "/train")
        settle(page)
        out["rss_all"], out["tf_all"] = rss_mb(proc.pid), tensorflow_loaded(proc.pid)

        second = browser.new_context().new_page()
        before = rss_mb(proc.pid)
        out["cells_second"] = open_cells(second, url)
        settle(second)
        out["cells_second_mb"] = rss_mb(proc.pid) - before
        second.close()

        out["quiet"] = server_times(args.repeats)
        out["rss_before_job"] = rss_mb(proc.pid)
        page.goto(url + "/train")
        settle(page)
        name = page.get_by_label("Run name", exact=True).and_(page.locator("input"))
        name.fill("bench-load")
        name.press("Enter")
        settle(page)
        page.get_by_role("button", name="Start").click()
        page.wait_for_selector("text=batch", timeout=180000)  # the child is training
        time.sleep(args.warm_s)
        out["loaded"] = server_times(args.repeats)
        out["rss_during_job"] = rss_mb(proc.pid)
        page.goto(url + "/train")
        settle(page)
        page.get_by_role("button", name="Stop training").click()
        page.wait_for_selector("text=stopped", timeout=600000)
        time.sleep(2)
        out["rss_after_job"], out["tf_after_job"] = rss_mb(proc.pid), tensorflow_loaded(proc.pid)
        proc.terminate()
        proc.wait()
        browser.close()
    shutil.rmtree(weights.parent, ignore_errors=True)

    print(f"whole app, every page and Cells tab, no training: server RSS {out['rss_all']:.0f} MB (target <= 400); "
          f"TensorFlow mapped: {out['tf_all']}")
    print(f"Cells, first open to the first ranked table: {out['cells_first']:.2f} s (target <= 5 s)")
    print(f"Cells, a second session: {out['cells_second']:.2f} s (target <= 2 s), "
          f"server memory {out['cells_second_mb']:+.0f} MB")
    (qs, qg), (ls, lg) = out["quiet"], out["loaded"]
    print(f"Visualise cell switch, 2,000 characters, server time: quiet {qs * 1000:.0f} ms, while training "
          f"{ls * 1000:.0f} ms (target <= 500 ms)")
    print(f"generating 500 characters: quiet {qg:.2f} s, while training {lg:.2f} s: {lg / qg:.2f}x (target <= 2x)")
    print(f"server RSS: before the job {out['rss_before_job']:.0f} MB, during {out['rss_during_job']:.0f} MB, "
          f"after {out['rss_after_job']:.0f} MB ({out['rss_after_job'] - out['rss_before_job']:+.0f} MB; "
          f"target within 50); TensorFlow mapped after the job: {out['tf_after_job']}")


if __name__ == "__main__":
    main()
