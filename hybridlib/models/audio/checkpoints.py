"""Read official checkpoint files safely and load them into the backbones with clear reports.

Accepted formats (all read with ``torch.load(weights_only=True)``, never trusting pickle wholesale):

* aiSFX ``checkpoint.pth``: a ``(state_dict, dataset_info)`` tuple; ``dataset_info`` holds numpy
  integers, so numpy's scalar reconstructor and dtypes are allow-listed explicitly (under the old
  ``numpy.core`` name the pickle uses, even with numpy 2);
* PANNs ``*.pth``: ``{"model": state_dict, ...}``;
* EfficientAT release ``*.pt``: a bare ``state_dict``;
* ``{"state_dict": ...}`` (Lightning style) and ``*.safetensors`` files.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hybridlib.util.errors import UserError, one_line


class CheckpointError(UserError):
    """A checkpoint cannot be read or does not fit the model; the message names the file and key."""


def _numpy_safe_globals() -> list:
    """numpy's array/scalar reconstructors and dtype classes, under the names old pickles use.

    Official files pickle numpy values next to the weights (aiSFX: numpy integers in ``dataset_info``;
    training checkpoints: sampler states as arrays). These constructors only build data, so allowing
    them keeps ``weights_only=True`` safe.
    """
    import numpy as np

    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    allowed: list = [
        (core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        (core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        core.multiarray.scalar,
        core.multiarray._reconstruct,
        np.ndarray,
        np.dtype,
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(state_dict, extra)`` from any accepted format; ``extra`` holds the non-tensor parts."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), {"format": "safetensors"}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is damaged and was not loaded ({one_line(exc)})") from None
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(f"{path} is damaged or not a plain-data checkpoint and was not loaded "
                              f"(weights_only=True; {one_line(exc)})") from None
    if isinstance(obj, (tuple, list)) and len(obj) >= 1 and isinstance(obj[0], dict):
        return dict(obj[0]), {"format": "tuple", "info": obj[1] if len(obj) > 1 else None}
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                extra = {k: v for k, v in obj.items() if k != key and not isinstance(v, dict)}
                return dict(obj[key]), {"format": key, **extra}
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj), {"format": "state_dict"}
    raise CheckpointError(
        f"{path}: unrecognised checkpoint layout ({type(obj).__name__}); expected a state dict, "
        "{'model': state_dict}, {'state_dict': ...} or a (state_dict, info) tuple"
    )


@dataclass
class WeightsReport:
    """What :func:`load_official_weights` did: loaded keys, and keys missing/unexpected/ignored."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.path}: loaded {len(self.loaded)} tensors, missing {len(self.missing)}, "
            f"unexpected {len(self.unexpected)}, ignored {len(self.ignored)}"
        )


def _shorten(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n} more)" if len(keys) > n else "")


def load_official_weights(
    path: str | Path,
    model: nn.Module,
    *,
    strict: bool = True,
    ignore_prefixes: tuple[str, ...] | None = None,
    prefix_map: dict[str, str] | None = None,
) -> WeightsReport:
    """Load the official file at ``path`` into ``model`` and return a :class:`WeightsReport`.

    ``prefix_map`` renames checkpoint keys (official prefix -> this model's prefix); keys starting with
    ``ignore_prefixes`` (e.g. classifier heads not used for frames) are skipped silently. Defaults come
    from the model's ``checkpoint_prefixes`` / ``checkpoint_ignore`` attributes.

    Raises :class:`CheckpointError` naming the key on any shape mismatch, and, when ``strict``, on
    model keys the file lacks; unexpected extra keys only warn.
    """
    state, _ = read_checkpoint(path)
    prefix_map = getattr(model, "checkpoint_prefixes", {}) if prefix_map is None else prefix_map
    ignore = tuple(getattr(model, "checkpoint_ignore", ())) if ignore_prefixes is None else ignore_prefixes
    own = model.state_dict()
    report = WeightsReport(str(path))
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ignore and key.startswith(ignore):
            report.ignored.append(key)
            continue
        new_key = key
        for old, new in prefix_map.items():
            if key.startswith(old):
                new_key = new + key[len(old) :]
                break
        if new_key not in own:
            report.unexpected.append(key)
            continue
        if tuple(value.shape) != tuple(own[new_key].shape):
            raise CheckpointError(
                f"{path}: shape mismatch for '{key}': checkpoint {tuple(value.shape)} vs model "
                f"{tuple(own[new_key].shape)} (is this the right checkpoint for {type(model).__name__}?)"
            )
        renamed[new_key] = value
    report.missing = [k for k in own if k not in renamed]
    report.loaded = sorted(renamed)
    if report.missing and strict:
        raise CheckpointError(
            f"{path}: {len(report.missing)} model keys missing from checkpoint: {_shorten(report.missing)}"
        )
    if report.missing:
        warnings.warn(f"{path}: keys left at their initial values: {_shorten(report.missing)}", stacklevel=2)
    if report.unexpected:
        warnings.warn(
            f"{path}: checkpoint keys not used by the model: {_shorten(report.unexpected)}", stacklevel=2
        )
    model.load_state_dict(renamed, strict=False)
    return report


def official_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under the official key names (inverse of ``checkpoint_prefixes``)."""
    prefix_map = getattr(model, "checkpoint_prefixes", {})
    out = {}
    for key, value in model.state_dict().items():
        for old, new in prefix_map.items():
            if key.startswith(new):
                key = old + key[len(new) :]
                break
        out[key] = value
    return out
