"""Start the app on a free local port and drive it in Debian's Chromium: what the browser test and
the app benchmarks share. No Streamlit or Playwright import here; the app runs in its own process.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout: streamlit_app.py lives here
CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright's own browser download is blocked here
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env: dict | None = None, timeout_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    """`streamlit run streamlit_app.py` on a free port; returns (process, url) once /_stcore/health
    answers ok. `env` is added to this process's environment."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true", "--server.port",
         str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("streamlit did not start")
        time.sleep(0.05)


def settle(page, timeout_ms: int = 120000) -> None:
    """Wait until Streamlit has finished running the script (a Playwright page)."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)
