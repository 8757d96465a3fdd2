"""App speed and memory, with the shipped model (weights/alice).

    python benchmarks/app.py [--repeats 5]

1. Cold start: from launching `streamlit run streamlit_app.py` until the Home page has rendered
   in headless Chromium (script state notRunning and the title visible). Median of --repeats
   fresh server processes.
2. Switching cells: server time of one rerun of the Visualise page after pressing "next cell",
   on a 2,000-character passage, activations already cached (AppTest, in process). Median.
3. Memory: resident set size of the server process after opening Generate and Visualise in the
   browser (no training), and whether TensorFlow's library was loaded into it.
"""

import argparse
import statistics
import time
from pathlib import Path

import sys  # noqa: E401
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ is the checkout's, not a package
from tools.appserver import CHROMIUM_FLAGS, settle, start

ROOT = Path(__file__).resolve().parents[1]
FLAGS = CHROMIUM_FLAGS


def start_server():
    """(process, url, start time) of a fresh server with the repository's weights."""
    t0 = time.perf_counter()
    proc, url = start()
    return proc, url, t0


def rss_mb(pid) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tensorflow_loaded(pid) -> bool:
    return "tensorflow" in open(f"/proc/{pid}/maps").read()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    cold, rss = [], None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        for r in range(args.repeats):
            proc, url, t0 = start_server()
            page = browser.new_page()
            page.goto(url)
            page.get_by_text("See what an LSTM's cells learned").wait_for(timeout=120000)
            settle(page)
            cold.append(time.perf_counter() - t0)
            if r == 0:  # memory: generate and visualise in the same server
                for path in ("/generate", "/visualise"):
                    page.goto(url + path)
                    page.locator(".cm-text, [data-testid='stCode']").first.wait_for(timeout=120000)
                    settle(page)
                rss = rss_mb(proc.pid), tensorflow_loaded(proc.pid)
            page.close()
            proc.terminate()
            proc.wait()
        browser.close()

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("pages/visualise.py").run()
    at.slider(key="passage_length").set_value(2000).run()  # computes and caches the activations
    switch = []
    for _ in range(args.repeats * 2):
        at.button(key="next_cell")
        t0 = time.perf_counter()
        at.button(key="next_cell").click().run()
        switch.append(time.perf_counter() - t0)
    assert not at.exception, at.exception

    print(f"cold start to a usable Home page: median {statistics.median(cold):.2f} s "
          f"(runs: {', '.join(f'{c:.2f}' for c in cold)}; target <= 5 s)")
    print(f"switching cells, 2,000 characters: median {statistics.median(switch) * 1000:.0f} ms "
          f"(runs: {', '.join(f'{s * 1000:.0f}' for s in switch)}; target <= 300 ms)")
    print(f"server RSS after Generate and Visualise: {rss[0]:.0f} MB (target <= 400 MB); "
          f"TensorFlow loaded: {rss[1]}")


if __name__ == "__main__":
    main()
