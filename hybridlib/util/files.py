"""Writing files atomically: a crash or a concurrent writer never leaves a half-written file.

Every writer goes through :func:`atomic_path`: the content is written to a uniquely named temporary file in
the destination folder (``.<name>.<pid>-<random>.tmp``, so two processes never share one) and renamed over
the destination, which POSIX makes atomic. On an exception the temporary file is removed.

A full disk (``ENOSPC``), an exhausted quota (``EDQUOT``) or a file size limit (``EFBIG``, ``ulimit -f``) while
writing becomes :class:`DiskFull`, one line naming the file, the space it needs and the space free; the
temporary file is removed, so nothing half-written is left. Writers that know what they will write pass its
size (``size``); :func:`check_free_space` refuses work before it starts when an estimate does not fit.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hybridlib.util.errors import UserError

DISK_FULL = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
             errno.EFBIG: "the file is larger than the file size limit (ulimit -f) or the file system allows"}


class DiskFull(UserError):
    """Writing a file failed for want of space (disk full, quota, file size limit); nothing half-written is left."""


def format_bytes(n: float) -> str:
    """``"12.3 MB"`` (decimal units, as ``df -H`` prints them)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def free_bytes(folder: str | Path) -> int | None:
    """Free space for this user on the file system holding ``folder`` (its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def disk_full_errno(exc: BaseException) -> int | None:
    """The ``ENOSPC``/``EDQUOT``/``EFBIG`` behind ``exc`` (its chain of causes included; safetensors reports it as
    ``(os error 28)`` in its message, torch's zip writer as the context of its ``unexpected pos``), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return exc.errno
        match = re.search(r"\(os error (\d+)\)", str(exc))
        if match and int(match.group(1)) in DISK_FULL:
            return int(match.group(1))
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full_message(path: str | Path, code: int, needed: int | None, written: int | None = None) -> str:
    path = Path(path)
    free = free_bytes(path.parent)
    if needed is not None:
        need = f"it needs about {format_bytes(needed)}"
    elif written:
        need = f"it needs more than the {format_bytes(written)} written before the failure"
    else:
        need = "its size is not known in advance"
    have = f", {format_bytes(free)} free there" if free is not None else ""
    return (f"cannot write {path}: {DISK_FULL[code]} ({need}{have}); nothing half-written was left: free space "
            "(or write elsewhere) and run again")


def check_free_space(folder: str | Path, needed: int, what: str) -> None:
    """Refuse (:class:`DiskFull`) before work starts when ``folder``'s file system has less than ``needed`` bytes
    free for ``what`` (an estimate of what the work will write)."""
    free = free_bytes(folder)
    if free is not None and needed > free:
        raise DiskFull(f"not enough space in {folder}: {what} needs about {format_bytes(needed)}, "
                       f"{format_bytes(free)} is free; free space (or write elsewhere) and run again")


def temp_sibling(path: str | Path, suffix: str = ".tmp") -> Path:
    """A unique, hidden temporary path in ``path``'s folder (same file system, so a rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


@contextmanager
def atomic_path(path: str | Path, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is deleted.

    A failure for want of space (see the module docstring) becomes :class:`DiskFull` naming ``path`` and
    ``size`` (the bytes the caller is about to write, when it knows them)."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except Exception as exc:
        code = disk_full_errno(exc)
        if code is None:
            raise
        written = tmp.stat().st_size if tmp.exists() else None
        tmp.unlink(missing_ok=True)  # first: the message states the space free without it
        raise DiskFull(disk_full_message(path, code, size, written)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path, size=len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2, sort_keys: bool = False) -> Path:
    """``obj`` as JSON (NaN and infinities are refused: strict JSON readers reject them)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def file_stamp(path: str | Path) -> dict[str, str]:
    """What identifies a file's content version cheaply: resolved path, size, modification time and inode
    change time (ns), from one ``stat``.

    The one key of everything remembered per audio file (the audio check's memo, cached features, cached
    waveforms). The change time (``st_ctime``) is set by the kernel whenever the file is written, renamed or
    its times are set, and cannot be set back by a program: a clip rewritten in place with the same size whose
    modification time was restored (``os.utime``, ``touch -r``, ``cp --preserve``) gets a new stamp. It also
    moves on ``chmod``/``chown``/a new hard link (the file is then read again: a cost, never a wrong result).
    Contents are not hashed: reading every file on every run would cost what decoding costs (README, "Bad input
    and damaged files").
    """
    path = Path(path)
    st = path.stat()
    return {"source": str(path.resolve()), "size": str(st.st_size), "mtime_ns": str(st.st_mtime_ns),
            "ctime_ns": str(st.st_ctime_ns)}
