"""Peak memory of training on a large corpus (issue 15): a generated 100 MB text against a 1 MB one.

    python benchmarks/large_corpus.py [--mb 100] [--batches 10] [--repeats 3] [--code DIR]

The corpus is Alice repeated, each copy with its lines in a new random order (seeded), cut to
--mb MiB. For each size, a fresh `python -m charmodel train` (2 x 512, batch 64, seq 100, the
defaults) runs until --batches batches of its first epoch are done, then is stopped; its peak
resident memory (VmHWM of /proc/PID/status) is the figure, with the time to its first batch
(scanning and tokenising the corpus, importing TensorFlow, building the model). Median of
--repeats fresh processes. --code runs another checkout of the project (for example an older
commit from `git worktree add`), to compare in the same run.

The target: peak <= model + optimizer + 2 x the corpus's integer array + 500 MB.
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"\|\s*(\d+)/(\d+) \[")


def make_corpus(path: Path, mib: float, seed: int = 0) -> None:
    lines = (ROOT / "data" / "alice.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    rng, want, written = random.Random(seed), int(mib * 2**20), 0
    with open(path, "w", encoding="utf-8") as f:
        while written < want:
            rng.shuffle(lines)
            block = "".join(lines)[: want - written]
            f.write(block)
            written += len(block.encode("utf-8"))


def peak_of_training(code: Path, corpus: Path, run: Path, batches: int, mib: float) -> tuple[float, float]:
    """(peak RSS in MB, seconds to the first batch) of a training process stopped after `batches`."""
    cmd = [sys.executable, "-m", "charmodel", "train", "--text-file", str(corpus), "--run", str(run),
           "--epochs", "1", "--max-mb", str(max(50, mib * 1.1))]
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=code, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    first, buf, peak = None, b"", 0.0
    os.set_blocking(proc.stderr.fileno(), False)
    while proc.poll() is None:
        time.sleep(0.05)
        peak = max(peak, vm_hwm(proc.pid))
        chunk = proc.stderr.read() or b""
        buf = (buf + chunk)[-4000:]
        done = [int(m.group(1)) for m in PROGRESS.finditer(buf.decode("utf-8", "replace"))]
        if done and first is None and max(done) >= 1:
            first = time.perf_counter() - t0
        if done and max(done) >= batches:
            peak = max(peak, vm_hwm(proc.pid))
            # the measure is taken. SIGTERM, not Ctrl-C's SIGINT: a shell's background job (nohup ... &)
            # starts with SIGINT ignored, and its children inherit that
            proc.terminate()
            proc.wait(timeout=60)
            break
    else:
        raise SystemExit(f"training ended early ({proc.returncode}): {buf.decode('utf-8', 'replace')[-2000:]}")
    return peak, first or float("nan")


def vm_hwm(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=100)
    p.add_argument("--small-mb", type=float, default=1)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--code", type=Path, action="append", help="checkouts to measure (default: this one)")
    args = p.parse_args()
    codes = args.code or [ROOT]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big, small = tmp / "big.txt", tmp / "small.txt"
        make_corpus(big, args.mb)
        make_corpus(small, args.small_mb)
        print(f"corpus: {big.stat().st_size / 1e6:.1f} MB (ids: 1 byte per character), "
              f"baseline corpus {small.stat().st_size / 1e6:.2f} MB; 2 x 512, batch 64, seq 100; "
              f"{args.batches} batches; median of {args.repeats}")
        for code in codes:
            for name, corpus, mib in (("small", small, args.small_mb), ("large", big, args.mb)):
                peaks, firsts = [], []
                for r in range(args.repeats):
                    peak, first = peak_of_training(code, corpus, tmp / f"run-{name}-{r}-{len(peaks)}-{code.name}",
                                                   args.batches, mib)
                    peaks.append(peak)
                    firsts.append(first)
                print(f"{code}: {name} corpus: peak RSS median {statistics.median(peaks):.0f} MB "
                      f"(runs {', '.join(f'{x:.0f}' for x in peaks)}); first batch after "
                      f"{statistics.median(firsts):.1f} s", flush=True)


if __name__ == "__main__":
    main()
