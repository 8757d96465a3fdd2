"""BLAS threads for the engine's loops: one per process unless asked (`--threads N`, or
$CHARMODEL_THREADS for a command that owns the machine; the app always uses one).

A step is a small matrix product, thousands in a row; with NumPy's default BLAS threads each one
waits for all of its threads, so when another process wants the cores every step waits for a
descheduled thread. One thread is slower on an idle machine and steady under load
(benchmarks/load.py measures both; docs/performance.md has the figures).
"""

import os

from threadpoolctl import ThreadpoolController

from charmodel.errors import CharModelError

THREADS_ENV = "CHARMODEL_THREADS"
_threads: int | None = None  # set_threads(); None: $CHARMODEL_THREADS, else 1


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_threads(raw, where: str) -> int:
    """A thread count from a flag or the environment, or one line saying what is wrong."""
    try:
        n = int(str(raw).strip())
    except ValueError:
        n = 0
    if not 1 <= n <= cores():
        raise CharModelError(f"{where} must be a whole number of threads from 1 to {cores()} (this machine's cores), "
                             f"not {str(raw)!r}.")
    return n


def blas_threads() -> int:
    """BLAS threads for the engine's loops: set_threads's, else $CHARMODEL_THREADS, else 1."""
    if _threads is not None:
        return _threads
    raw = os.environ.get(THREADS_ENV, "")
    return parse_threads(raw, f"${THREADS_ENV}") if raw.strip() else 1


def set_threads(n) -> None:
    """BLAS threads for this process from now on (a command line that owns the machine: --threads);
    the app sets 1, one thread per session. Applied at once and by every later Engine."""
    global _threads
    _threads = parse_threads(n, "--threads")
    pin_blas()


def pin_blas() -> None:
    """Limit BLAS to blas_threads() threads, one unless asked, for the whole process (see the
    module docstring).

    A setting for the process, made by every Engine, not a context around each loop: OpenBLAS's
    pool is process-wide, and threadpoolctl lets only one live thread change it (others are
    silently ignored), so per-loop limits from several app sessions' threads would not hold.
    The libraries are looked up afresh each time (a millisecond or two): one loaded after this
    module, such as SciPy's own OpenBLAS when Keras imports scikit-learn, is pinned too.
    """
    ThreadpoolController().limit(limits=blas_threads(), user_api="blas")
