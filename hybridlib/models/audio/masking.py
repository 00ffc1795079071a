"""Length bookkeeping for variable-length batches.

A batch of clips is zero-padded to the longest one. To make every clip's frames identical to
processing it alone, each backbone zeroes the padded time steps after every layer (the value a
convolution's own zero padding would see) and tracks how each layer shrinks the valid length.
"""

from __future__ import annotations

import torch

from hybridlib.util.tensors import length_mask


def full_lengths(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``lengths`` as a long tensor on ``x``'s device; all ``x.shape[-1]`` when ``None``."""
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=x.device)
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"lengths must have shape [{x.shape[0]}], got {tuple(lengths.shape)}")
    if (lengths < 0).any() or (lengths > x.shape[-1]).any():
        raise ValueError(f"lengths must lie in [0, {x.shape[-1]}], got {lengths.tolist()}")
    return lengths


def mask_time(x: torch.Tensor, lengths: torch.Tensor, time_dim: int) -> torch.Tensor:
    """Zero the padded steps of ``x`` along ``time_dim`` (batch is dim 0).

    A no-op when nothing is padded; in place when no graph is being recorded (saves a memory pass).
    """
    size = x.shape[time_dim]
    if len(lengths) == 0 or bool((lengths >= size).all()):
        return x
    mask = length_mask(lengths, size)
    shape = [1] * x.dim()
    shape[0], shape[time_dim] = x.shape[0], size
    mask = mask.view(shape).to(x.dtype)
    return x.mul_(mask) if not torch.is_grad_enabled() or torch.is_inference_mode_enabled() else x * mask


def conv_bn(x: torch.Tensor, conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    """``bn(conv(x))``; in eval mode the BatchNorm is folded into the convolution (one pass fewer)."""
    if bn.training or not bn.track_running_stats or bn.running_var is None:
        return bn(conv(x))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        weight = weight.contiguous(memory_format=torch.channels_last)
    return conv._conv_forward(x, weight, bias)


def conv_lengths(
    lengths: torch.Tensor, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> torch.Tensor:
    """Valid output length of a convolution/pooling along one axis (PyTorch's floor formula)."""
    out = torch.div(lengths + 2 * padding - dilation * (kernel - 1) - 1, stride, rounding_mode="floor") + 1
    return out.clamp(min=0)


def ensure_min_length(waveform: torch.Tensor, lengths: torch.Tensor | None, min_samples: int):
    """Treat clips shorter than ``min_samples`` as zero-padded (silence) to that length.

    Below the backbone's receptive field a clip would yield no frame at all; padding with silence
    gives it at least one. Returns ``(waveform, lengths)``.
    """
    lengths = full_lengths(waveform, lengths)
    if waveform.shape[-1] < min_samples:
        waveform = torch.nn.functional.pad(waveform, (0, min_samples - waveform.shape[-1]))
    return waveform, lengths.clamp(min=min_samples)
