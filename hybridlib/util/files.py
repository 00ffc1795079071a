"""Writing files atomically: a crash or a concurrent writer never leaves a half-written file.

Every writer goes through :func:`atomic_path`: the content is written to a uniquely named temporary file in
the destination folder (``.<name>.<pid>-<random>.tmp``, so two processes never share one) and renamed over
the destination, which POSIX makes atomic. On an exception the temporary file is removed.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temp_sibling(path: str | Path, suffix: str = ".tmp") -> Path:
    """A unique, hidden temporary path in ``path``'s folder (same file system, so a rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
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
