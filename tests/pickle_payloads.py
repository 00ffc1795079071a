"""Planted pickles for the refusal tests: each would create a marker file if anything unpickled it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch


class Planted:
    """An arbitrary class: a regular unpickler would call ``__setstate__``, which writes the marker."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __setstate__(self, state):
        Path(state["marker"]).write_text("ran")


class SystemCall:
    """Pickled as a call of ``posix.system`` (``os.system``) that would create the marker."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# kind -> (payload class, the global torch's weights-only reader refuses, torch 2.9's wording of it)
KINDS = {"system": (SystemCall, "posix.system", "Trying to load unsupported GLOBAL"),
         "class": (Planted, f"{__name__}.Planted", "Unsupported global: GLOBAL")}


def payload(kind: str, marker):
    return KINDS[kind][0](marker)


def planted_pickle(kind: str, marker) -> bytes:
    """A ``torch.save`` file whose pickle references ``posix.system`` or an arbitrary class."""
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "extra": payload(kind, marker)}, buffer)
    return buffer.getvalue()
