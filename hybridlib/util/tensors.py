"""Tensor helpers shared by every layer: the one length mask, padding, and mapping over nested tensors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch


def length_mask(lengths: torch.Tensor | Sequence[int] | None, size: int, batch: int | None = None,
                device=None) -> torch.Tensor:
    """Bool ``[B, size]``: True at the valid (non-padded) positions of each row.

    ``lengths`` (``[B]``) gives each row's valid length; ``None`` means every position is valid and then
    ``batch`` gives ``B``. ``device`` defaults to the device of ``lengths``.
    """
    if lengths is None:
        if batch is None:
            raise ValueError("length_mask needs `batch` when `lengths` is None")
        return torch.ones(batch, size, dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.dim() != 1 or (batch is not None and lengths.shape[0] != batch):
        raise ValueError(f"lengths must have shape [{batch if batch is not None else 'B'}], "
                         f"got {tuple(lengths.shape)}")
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def check_lengths(lengths: torch.Tensor | None, size: int, name: str = "lengths") -> None:
    """Raise ``ValueError`` unless every length lies in ``[0, size]`` (for inputs from outside the package;
    :func:`length_mask` itself does not check, it sits in hot loops)."""
    if lengths is None:
        return
    lengths = torch.as_tensor(lengths)
    if len(lengths) and (bool((lengths < 0).any()) or bool((lengths > size).any())):
        raise ValueError(f"{name} must lie in [0, {size}], got {lengths.tolist()}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``x [B, T, D]`` where ``mask [B, T]``; zero for an empty sequence."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over dim 1 of ``x [B, T, D]`` where ``mask [B, T]``; zero for an empty sequence."""
    filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
    return torch.where(mask.any(dim=1, keepdim=True), filled, torch.zeros_like(filled))


def masked_max_mean(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``max_t(x) + mean_t(x)`` over the valid steps of ``x [B, T, D]`` (PANNs' and Mei et al.'s clip pooling:
    the maximum and the mean over time of the frequency-pooled feature map, added)."""
    check_lengths(lengths, x.shape[1], "frame_lengths")
    valid = length_mask(lengths, x.shape[1], batch=x.shape[0], device=x.device)
    return masked_max(x, valid) + masked_mean(x, valid)


def pad_sequences(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``[T_i, ...]`` tensors with zeros to ``[B, T_max, ...]``; also return the lengths ``Long[B]``."""
    if not seqs:
        raise ValueError("pad_sequences needs at least one sequence")
    lengths = torch.tensor([s.shape[0] for s in seqs], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True), lengths


def map_tensors(obj, fn: Callable[[torch.Tensor], torch.Tensor]):
    """Apply ``fn`` to every tensor inside ``obj`` (tensor, dataclass, NamedTuple, dict, list/tuple)."""
    if torch.is_tensor(obj):
        return fn(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: map_tensors(getattr(obj, f.name), fn)
                                           for f in dataclasses.fields(obj) if f.init})
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)._make(map_tensors(v, fn) for v in obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(v, fn) for v in obj)
    return obj


def concat_along_batch(parts: Sequence):
    """Concatenate chunks along dim 0: tensors, or dataclasses whose fields are tensors or None.

    A dataclass field must be set in every chunk or in none (mixing would misalign the rows).
    """
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    if torch.is_tensor(first):
        return torch.cat(list(parts), dim=0)
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        values = {}
        for f in dataclasses.fields(first):
            column = [getattr(p, f.name) for p in parts]
            present = [v is not None for v in column]
            if any(present) and not all(present):
                raise ValueError(f"{type(first).__name__}.{f.name} is set in some chunks but not in others")
            values[f.name] = concat_along_batch(column) if all(present) else None
        return type(first)(**values)
    raise TypeError(f"cannot concatenate {type(first).__name__}")
