"""Choosing a device and moving batches to it."""

from __future__ import annotations

import torch

from hybridlib.util.errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; otherwise ``torch.device(name)``.

    A CUDA device asked for on a machine without one is a :class:`~hybridlib.util.errors.UserError` (rather
    than torch's driver error deep inside the first tensor move).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"device {name!r} is not a device this project trains on: use auto, cpu, cuda or cuda:N "
                        "(mps on a Mac)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {name!r} asked for, but no Apple GPU (MPS) is available here: use device 'cpu' "
                        "(or 'auto')")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} asked for, but no CUDA device is available here: use device "
                            "'cpu' (or 'auto', which picks CUDA where there is one)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def to_device(batch: dict, device: torch.device, non_blocking: bool = True) -> dict:
    """The batch with every tensor on ``device`` (other values unchanged)."""
    return {k: (v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v) for k, v in batch.items()}
