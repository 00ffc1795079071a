"""Progress bars: ``tqdm.auto`` (widgets in JupyterLab, text in a terminal), or text for executed copies.

A notebook executed unattended (papermill, ``run-notebooks``) keeps each widget bar as the text it showed
when it was created, ``0%``, since no front end updates it; a bar that closes itself (``leave=False``) even
keeps that frozen line. ``HYBRIDLIB_PROGRESS`` chooses:

* ``auto`` (default): ``tqdm.auto``;
* ``text``: plain-text bars on stdout, whose last state is what the executed copy shows; bars that would
  close themselves are not drawn at all (``run-notebooks`` sets this for the kernels it starts);
* ``off``: no bars.
"""

from __future__ import annotations

import os
import sys

MODES = ("auto", "text", "off")
ENV = "HYBRIDLIB_PROGRESS"


def progress_mode() -> str:
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    return mode if mode in MODES else "auto"


def progress_bar(iterable=None, *args, disable: bool = False, **kwargs):
    """``tqdm(iterable, ...)`` following :func:`progress_mode` (same arguments as tqdm)."""
    mode = progress_mode()
    if mode == "auto":
        from tqdm.auto import tqdm

        return tqdm(iterable, *args, disable=disable, **kwargs)
    from tqdm.std import tqdm

    transient = kwargs.get("leave") is False
    kwargs.setdefault("file", sys.stdout)
    return tqdm(iterable, *args, disable=disable or mode == "off" or transient, **kwargs)
