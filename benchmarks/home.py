"""Home's first draw for each shipped run, cold: what a new user waits for.

    python benchmarks/home.py [--runs alice,shakespeare,python] [--repeats 3]

Each repeat is a fresh Python process (nothing cached) that runs the app's script once with
AppTest, with ?run=NAME, and times that run: the run's engine and atlas loaded, the sample
generated, the headline passage computed and coloured. Streamlit's own import is outside the
timing (a server has done it before its first page). Median of --repeats. Target: at most 3 s.
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COLD = """
import sys, time
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("streamlit_app.py", default_timeout=120)
at.query_params["run"] = sys.argv[1]
t0 = time.perf_counter()
at.run()
seconds = time.perf_counter() - t0
assert not at.exception and not at.error, [e.value for e in at.exception]
assert any("explained by the atlas" in m.value for m in at.markdown), "no headline cell drawn"
print(seconds)
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", default="alice,shakespeare,python")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "CHARMODEL_WEIGHTS"}  # the shipped runs
    for run in args.runs.split(","):
        times = [float(subprocess.run([sys.executable, "-c", COLD, run], cwd=ROOT, env=env, capture_output=True,
                                      text=True, check=True).stdout.split()[-1]) for _ in range(args.repeats)]
        print(f"Home, run {run}: median {statistics.median(times):.2f} s "
              f"(runs {', '.join(f'{t:.2f}' for t in times)}; target <= 3 s)", flush=True)


if __name__ == "__main__":
    main()
