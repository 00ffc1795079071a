"""File names from outside the program: the one rule that keeps a dataset's file names inside their folder, and
NUL bytes in any name or path a user gives.

**Dataset file names** (a Clotho caption CSV's ``file_name``, an AudioCaps ``youtube_id``, a WavCaps ``id``, a
folder bank's ``manifest.csv``) name a file *inside* a known folder (a split's audio folder, the bank's folder).
:class:`FolderGuard` resolves such a name and says why it is refused, when it is:

* a NUL byte (``\\x00``): no file system holds one (Python raises ``ValueError: embedded null byte``);
* an absolute path (``/etc/passwd``), a Windows drive or UNC path (``C:\\x.wav``, ``\\\\host\\x``), or a ``..``
  part, splitting at ``/`` and ``\\`` alike, so a table means the same on every system;
* a name that, after every symbolic link is followed, lies outside the folder: a per-file symlink (or a
  symlinked subfolder) pointing elsewhere. The folder itself is resolved first, so a symlinked *audio folder*
  or data root (audio kept on another disk) works as before; only links *inside* it must stay inside it.
  Decision: a per-file link to outside is refused rather than followed, because the reader cannot tell a link
  a user made from one an archive planted, and following it reads any file the user can read; to keep audio
  elsewhere, link the whole folder, or hard-link or copy the files.

Readers leave a refused row out and name it with the reason (the load report's ``bad_audio``), as they do for
missing audio; nothing at the refused path is opened. (A file swapped for a link *after* the check is outside
this rule: the data folder is trusted to stay still while a run reads it.)

**NUL bytes in user-given values** (command-line options, config fields, notebook parameters):
:func:`nul_problem` says where one sits, so the caller can refuse it in one line before any path is built.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

NUL_REASON = "contains a NUL byte (\\x00), which no file name can hold"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a file inside a folder, judged by its text alone (None: it can)."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if "\x00" in name:
        return NUL_REASON
    windows = PureWindowsPath(name)
    if PurePosixPath(name).is_absolute() or windows.drive or windows.root:
        return "is an absolute path; a file name must be relative to its folder"
    if ".." in name.replace("\\", "/").split("/"):
        return "leads out of its folder ('..')"
    return None


class FolderGuard:
    """Resolves dataset-provided file names inside ``folder`` (see the module docstring).

    ``folder`` is resolved once (it may itself be, or lie below, a symbolic link); :meth:`locate` then costs one
    ``lstat`` for a plain name and a full resolution only for names with subfolders or for links.
    """

    def __init__(self, folder: str | Path, what: str = "folder"):
        self.folder = Path(folder)
        self.what = what
        try:
            self.real = self.folder.resolve()
        except (OSError, RuntimeError):  # a symlink loop: nothing below it can be read
            self.real = None

    def problem(self, name: str) -> str | None:
        """Why ``name`` is refused (None: it names a path inside the folder, whether or not the file exists)."""
        problem = name_problem(name)
        if problem:
            return problem
        path = self.folder / name
        if os.sep not in name and "/" not in name and not os.path.islink(path):
            return None  # a plain entry of the folder that is not a link cannot lead elsewhere
        if self.real is None:
            return f"cannot be resolved: the {self.what} {self.folder} is a symbolic link loop"
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            return "goes through a symbolic link loop"
        if real == self.real or self.real in real.parents:
            return None
        return (f"is a symbolic link to {real}, outside the {self.what} {self.folder} (link the whole folder "
                "instead, or copy the file)")

    def locate(self, name: str) -> tuple[Path | None, str | None]:
        """``(folder / name, None)`` when ``name`` is allowed, else ``(None, reason)`` (:meth:`refusal`)."""
        refusal = self.refusal(name)
        return (None, refusal) if refusal else (self.folder / name, None)

    def refusal(self, name: str) -> str | None:
        """Why a reader leaves the row of ``name`` out (``"file name is ..."``; the row is named by the reader)."""
        problem = self.problem(name)
        return f"file name {problem}" if problem else None


def file_inside(folder: str | Path, name: str) -> tuple[Path | None, str | None]:
    """:meth:`FolderGuard.locate` for one name (a reader of many names keeps one :class:`FolderGuard`)."""
    return FolderGuard(folder).locate(name)


def nul_problem(value: Any, where: str = "") -> str | None:
    """Where a NUL byte sits in ``value`` (a string, a path, or lists/dicts of them, searched through), as
    ``"<where>: contains a NUL byte ..."``, or None when there is none."""
    if isinstance(value, (str, Path)):
        return f"{where or 'value'} {NUL_REASON} (got {str(value)!r})" if "\x00" in str(value) else None
    if isinstance(value, dict):
        items = [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    else:
        return None
    return next((p for p in (nul_problem(v, w) for w, v in items) if p), None)
