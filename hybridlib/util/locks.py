"""One writer per folder: an advisory lock (``fcntl.flock``) on ``<folder>/.lock``.

:func:`folder_lock` holds the lock while a run folder is written (``train``, ``evaluate``, the training loop
of a notebook); a second writer is refused at once with :class:`FolderLocked`, one line naming the holder that
the lock file records (pid, host, command, start time). The operating system releases a ``flock`` when its
process ends, however it ends (``kill -9`` included), so the lock file of a dead process is stale by
construction and simply taken over. A folder the lock created and nothing filled is removed again. The lock is re-entrant within a process (the command line locks the run
folder, then the training it calls locks it again) and the file is removed on release.

Worker processes (``--workers``, spawned) lock their own seed folders. On a file system without ``flock``
support the folder is written unlocked (as before locks existed).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hybridlib.util.errors import UserError

LOCK_NAME = ".lock"
_HELD: dict[Path, list] = {}  # resolved folder -> [file descriptor or None, depth]


class FolderLocked(UserError):
    """Another live process is writing the folder."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0][:200] if text else "holder unknown"


def _acquire(path: Path, folder: Path, what: str) -> int | None:
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLocked(f"{folder} is being written by another process ({_holder(path)}): wait for it to "
                               "end, or write elsewhere") from None
        except OSError:  # no flock on this file system
            os.close(fd)
            return None
        try:  # the holder may have removed the file between our open and flock: lock the current one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}: {what}, since {stamp}\n".encode())
    return fd


@contextmanager
def folder_lock(folder: str | Path, what: str | None = None) -> Iterator[Path]:
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block; :class:`FolderLocked` when another
    process holds it. ``what``: recorded for the refused one's message (default: this command line)."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    held = _HELD.get(key)
    if held is not None:
        held[1] += 1
        try:
            yield folder
        finally:
            held[1] -= 1
        return
    path = key / LOCK_NAME
    if what is None:
        program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
        what = " ".join(["hybridlib" if program == "__main__.py" else program, *sys.argv[1:]])[:120]
    fd = _acquire(path, folder, what)
    _HELD[key] = [fd, 1]
    try:
        yield folder
    finally:
        del _HELD[key]
        if fd is not None:
            path.unlink(missing_ok=True)  # before unlocking: a waiter that opened it retries on the new file
            os.close(fd)
        if created and not any(folder.iterdir()):  # refused or failed before writing: leave nothing behind
            folder.rmdir()
