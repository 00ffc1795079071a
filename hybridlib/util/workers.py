"""Worker processes for independent jobs: how many to start, and spawned pools whose workers end with their owner.

Used for trainings (:mod:`hybridlib.experiments`) and for generating the teaching set
(:mod:`hybridlib.data.teaching`); each caller keeps its own results identical to a serial run.
"""

from __future__ import annotations

import os


def default_workers(n_jobs: int) -> int:
    """Worker processes for ``n_jobs`` CPU jobs: ``HYBRIDLIB_WORKERS`` if set, else one per core (at most
    ``n_jobs``, at least 1)."""
    wanted = int(os.environ.get("HYBRIDLIB_WORKERS", "0") or 0) or (os.cpu_count() or 1)
    return max(1, min(int(n_jobs), wanted))


def exit_when_orphaned(parent: int, interval: float = 2.0) -> None:
    """Start a daemon thread that ends this process once ``parent`` is no longer its parent: a kernel killed
    with SIGKILL (JupyterLab's restart, ``kill -9``) never shuts its pool down, and idle workers would
    otherwise stay, holding their memory, until the machine restarts."""
    import threading

    threading.Thread(target=_watch_parent, args=(parent, interval), daemon=True).start()


def _watch_parent(parent: int, interval: float) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(0)


def _start_worker(parent: int, initializer, initargs: tuple) -> None:
    exit_when_orphaned(parent)
    if initializer is not None:
        initializer(*initargs)


def spawn_pool(workers: int, initializer=None, initargs: tuple = ()):
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes (no fork: safe with threads and torch) that
    run ``initializer(*initargs)`` first and end when this process is gone."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_start_worker,
                               initargs=(os.getpid(), initializer, tuple(initargs)))
