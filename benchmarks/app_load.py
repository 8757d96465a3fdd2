"""The app under real conditions, with the shipped model (weights/alice): every page, two sessions,
a training job.

    python benchmarks/app_load.py [--repeats 5] [--servers 3] [--warm-s 10]

1. Whole app, no training: a fresh `streamlit run`, headless Chromium opens every page and every
   tab of Cells. Then the server's resident memory, and whether TensorFlow is mapped into it.
   On the way: the server's memory after each page and tab; the Cells page's first open (from a
   click on its sidebar link to the first ranked table, after Home, Generate and Visualise, as a
   new user would come to it; median over --servers fresh servers, the last of which goes on);
   then a second session opening /cells in
   a new tab of the same browser, and one in another browser (frontend not cached), each with
   what it added to the server's memory; for scale, Home opened in another browser.
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
import tempfile
import time
from pathlib import Path

from app import FLAGS, ROOT, rss_mb, settle, start_server, tensorflow_loaded  # benchmarks/app.py, beside this one

TABS = ["Rank cells", "Select and match", "One cell", "Gate saturation", "Intervene", "Ablation", "Probe", "Export"]


def open_cells(page, url=None) -> float:
    """Seconds until the first ranked table shows: a click on the sidebar's Cells link (in-app
    navigation), or, given `url`, a new tab loading /cells (a new session: the app's frontend loads too)."""
    t0 = time.perf_counter()
    if url:
        page.goto(url + "/cells")
    else:
        page.locator("[data-testid='stSidebarNav'] a", has_text="Cells").click()
    page.locator("[data-testid='stTable']").first.wait_for(timeout=120000)
    return time.perf_counter() - t0


def open_home(page, url) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    page.get_by_text("See what an LSTM's cells learned").wait_for(timeout=120000)
    return time.perf_counter() - t0


def server_times(repeats: int):
    """(cell switch seconds, 500-character generation seconds) measured in this process."""
    from streamlit.testing.v1 import AppTest

    from charmodel.engine import Engine
    from charmodel.engine.sampling import generate

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
    p.add_argument("--servers", type=int, default=3, help="fresh servers for the Cells page's first open")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    weights = Path(tempfile.mkdtemp(prefix="charmodel-bench-")) / "weights"
    weights.mkdir()
    shutil.copytree(ROOT / "weights" / "alice", weights / "alice")
    os.environ["CHARMODEL_WEIGHTS"] = str(weights)
    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        firsts, proc = [], None
        for n in range(args.servers):
            if proc is not None:  # the last server goes on to the rest of the measures
                proc.terminate()
                proc.wait()
            proc, url, _ = start_server()
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            steps = [("server started", rss_mb(proc.pid))]
            for path in ("", "/generate", "/visualise"):
                page.goto(url + path)
                settle(page)
                steps.append((path or "/", rss_mb(proc.pid)))
            firsts.append(open_cells(page))
            settle(page)
        out["cells_first"] = statistics.median(firsts)
        out["cells_firsts"] = firsts
        steps.append(("Cells: Rank cells", rss_mb(proc.pid)))
        for tab in TABS[1:]:
            page.get_by_role("tab", name=tab).click()
            settle(page)
            if tab == "Export":
                page.get_by_role("button", name="Prepare the LSTMVis files").click()
                page.get_by_text("lstmvis.zip is ready").wait_for(timeout=120000)
            steps.append((f"Cells: {tab}", rss_mb(proc.pid)))
        page.goto(url + "/atlas")
        page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=120000)
        settle(page)
        steps.append(("Atlas", rss_mb(proc.pid)))
        page.goto(url + "/train")
        settle(page)
        out["rss_all"], out["tf_all"] = rss_mb(proc.pid), tensorflow_loaded(proc.pid)

        out["steps"] = steps
        before = rss_mb(proc.pid)
        second = page.context.new_page()  # a new tab of the same browser: a new session
        out["cells_second"] = open_cells(second, url)
        settle(second)
        out["cells_second_mb"] = rss_mb(proc.pid) - before
        second.close()
        other = browser.new_context().new_page()  # another browser: nothing of the frontend cached
        out["cells_other_browser"] = open_cells(other, url)
        settle(other)
        out["cells_other_browser_mb"] = rss_mb(proc.pid) - before
        other.close()
        third = browser.new_context().new_page()
        out["home_new_tab"] = open_home(third, url)
        third.close()

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
        page.locator("[data-testid='stMainBlockContainer']").get_by_role("button", name="Stop training").click()
        page.wait_for_selector("text=stopped", timeout=600000)
        time.sleep(2)
        out["rss_after_job"], out["tf_after_job"] = rss_mb(proc.pid), tensorflow_loaded(proc.pid)
        proc.terminate()
        proc.wait()
        browser.close()
    shutil.rmtree(weights.parent, ignore_errors=True)

    print(f"whole app, every page and Cells tab, no training: server RSS {out['rss_all']:.0f} MB (target <= 400); "
          f"TensorFlow mapped: {out['tf_all']}")
    print(f"Cells, first open (sidebar link) to the first ranked table: median {out['cells_first']:.2f} s (runs "
          f"{', '.join(f'{t:.2f}' for t in out['cells_firsts'])}; target <= 5 s)")
    print("server RSS along the way: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in out["steps"]))
    print(f"Cells, a second session (new tab on /cells): {out['cells_second']:.2f} s (target <= 2 s), "
          f"server memory {out['cells_second_mb']:+.0f} MB")
    print(f"Cells, a session in another browser (frontend not cached): {out['cells_other_browser']:.2f} s, "
          f"server memory {out['cells_other_browser_mb']:+.0f} MB in all; for scale, Home in another browser: "
          f"{out['home_new_tab']:.2f} s")
    (qs, qg), (ls, lg) = out["quiet"], out["loaded"]
    print(f"Visualise cell switch, 2,000 characters, server time: quiet {qs * 1000:.0f} ms, while training "
          f"{ls * 1000:.0f} ms (target <= 500 ms)")
    print(f"generating 500 characters: quiet {qg:.2f} s, while training {lg:.2f} s: {lg / qg:.2f}x (target <= 2x)")
    print(f"server RSS: before the job {out['rss_before_job']:.0f} MB, during {out['rss_during_job']:.0f} MB, "
          f"after {out['rss_after_job']:.0f} MB ({out['rss_after_job'] - out['rss_before_job']:+.0f} MB; "
          f"target within 50); TensorFlow mapped after the job: {out['tf_after_job']}")


if __name__ == "__main__":
    main()
