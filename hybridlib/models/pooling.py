"""Pooling of frame-embedding sequences ``[B, T, in_dim]`` into one vector per clip ``[B, d_model]``.

* :class:`TransformerPooling` - the hybrid paper's learnable pooling (Primus & Widmer, Sec. III-B): frames are
  projected to the model width, a fixed positional encoding is added, a global token initialised to the
  (masked) mean of the sequence plus a learnable bias joins the sequence, N transformer encoder layers run with
  padding masks, and the transformed global token is the output. Extra tokens (mid-level fusion's metadata
  token) can be appended; their transformed values come back in ``PooledOutput.extra``.
  Assumptions (the paper does not state them): the fixed encoding is sinusoidal; the global token is the mean
  of the *projected* frames, taken before the encoding is added, and carries no positional encoding itself (so
  prepending it, as here, equals the paper's appending); the number of layers (2 in the configs), of heads
  (8 in ``experiments/hybrid``), the feed-forward width (4 x d_model) and dropout (0.1).
* :class:`MeanPooling`, :class:`MaxMeanPooling` - non-parametric baselines followed by a linear projection.

All poolers share one call signature and ignore padded frames (beyond ``lengths``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from hybridlib.util.tensors import check_lengths, length_mask, masked_max_mean, masked_mean


class PooledOutput(NamedTuple):
    pooled: torch.Tensor  # [B, d_model]
    extra: torch.Tensor | None  # [B, E, d_model] transformed extra tokens, or None
    attention: list[torch.Tensor] | None  # per layer [B, S, S] (head-averaged), S = 1 + T + E


def sinusoidal_encoding(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Vaswani et al.'s fixed encoding ``[length, dim]``: sin on even, cos on odd channels."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return pe.to(dtype)


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer (as ``nn.TransformerEncoderLayer`` with its defaults: ReLU,
    LayerNorm after each residual) that can also return its head-averaged attention weights."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, need_weights: bool = False,
                rows: torch.Tensor | None = None):
        """``x [B, S, d]`` -> ``([B, S, d], weights)``; with ``rows`` (token indices) only those tokens' outputs
        ``[B, len(rows), d]``: they attend to every token as before, but no other token's output is computed
        (a final layer whose other outputs nobody reads)."""
        query = x if rows is None else x[:, rows]
        attn, weights = self.self_attn(
            query, x, x, key_padding_mask=padding_mask, need_weights=need_weights, average_attn_weights=True
        )
        x = self.norm1(query + self.dropout1(attn))
        ff = self.linear2(self.dropout(torch.relu(self.linear1(x))))
        x = self.norm2(x + self.dropout2(ff))
        return x, weights


class TransformerPooling(nn.Module):
    """Transformer pooling with a global token (see module docstring).

    Choices the paper leaves open, made here and documented:
    * the global token starts as the masked mean of the *projected* frames (before positional
      encoding) plus a learnable bias initialised to zero; it and the extra tokens get no positional
      encoding (they are not time steps); the global token is at position 0;
    * layers are PyTorch's default post-norm encoder layers; ``dim_feedforward`` defaults to
      ``4 * d_model``.
    """

    def __init__(
        self,
        in_dim: int,
        d_model: int,
        num_layers: int = 2,
        num_heads: int = 4,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
    ):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.in_dim, self.d_model = in_dim, d_model
        self.input_proj = nn.Linear(in_dim, d_model)
        self.global_bias = nn.Parameter(torch.zeros(d_model))
        ff = dim_feedforward or 4 * d_model
        self.layers = nn.ModuleList(EncoderLayer(d_model, num_heads, ff, dropout) for _ in range(num_layers))

    def forward(
        self,
        frames: torch.Tensor,
        lengths: torch.Tensor | None = None,
        extra_tokens: torch.Tensor | None = None,
        extra_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> PooledOutput:
        if frames.dim() != 3 or frames.shape[-1] != self.in_dim:
            raise ValueError(f"frames must be [B, T, {self.in_dim}], got {tuple(frames.shape)}")
        B, T, _ = frames.shape
        check_lengths(lengths, T, "frame_lengths")
        valid = length_mask(lengths, T, batch=B, device=frames.device)
        x = self.input_proj(frames)
        global_token = masked_mean(x, valid) + self.global_bias  # [B, d]
        x = x + sinusoidal_encoding(T, self.d_model, frames.device, x.dtype)[None]
        parts = [global_token[:, None], x]
        keep = [torch.ones(B, 1, dtype=torch.bool, device=frames.device), valid]
        E = 0
        if extra_tokens is not None:
            if (
                extra_tokens.dim() != 3
                or extra_tokens.shape[0] != B
                or extra_tokens.shape[-1] != self.d_model
            ):
                raise ValueError(
                    f"extra_tokens must be [{B}, E, {self.d_model}], got {tuple(extra_tokens.shape)}"
                )
            E = extra_tokens.shape[1]
            if extra_mask is None:
                extra_mask = torch.ones(B, E, dtype=torch.bool, device=frames.device)
            if extra_mask.shape != (B, E):
                raise ValueError(f"extra_mask must be [{B}, {E}], got {tuple(extra_mask.shape)}")
            parts.append(extra_tokens.to(x.dtype))
            keep.append(extra_mask.to(torch.bool))
        seq = torch.cat(parts, dim=1)
        padding = ~torch.cat(keep, dim=1)  # True = ignore (nn.MultiheadAttention convention)
        attention = [] if return_attention else None
        # Only the global and extra tokens are read after the last layer, so (unless the full attention maps
        # are asked for) that layer computes just their rows: the same values, and in the CPU teaching
        # configs (one layer, ~100 frames) about half the time of a training step.
        rows = None
        if not return_attention and self.layers:
            rows = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(1 + T, 1 + T + E)]).to(frames.device)
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            seq, weights = layer(seq, padding, need_weights=return_attention, rows=rows if last else None)
            if return_attention:
                attention.append(weights)
        if rows is not None:
            return PooledOutput(seq[:, 0], seq[:, 1:] if E else None, attention)
        extra = seq[:, 1 + T :] if E else None
        return PooledOutput(seq[:, 0], extra, attention)


class MeanPooling(nn.Module):
    """Masked mean over frames, then ``Linear(in_dim, d_model)``."""

    def __init__(self, in_dim: int, d_model: int):
        super().__init__()
        self.in_dim, self.d_model = in_dim, d_model
        self.proj = nn.Linear(in_dim, d_model)

    def forward(self, frames, lengths=None, extra_tokens=None, extra_mask=None, return_attention=False):
        valid = length_mask(lengths, frames.shape[1], batch=frames.shape[0], device=frames.device)
        return PooledOutput(self.proj(masked_mean(frames, valid)), None, None)


class MaxMeanPooling(nn.Module):
    """Masked max plus masked mean over frames (Mei et al.'s clip pooling), then ``Linear(in_dim, d_model)``."""

    def __init__(self, in_dim: int, d_model: int):
        super().__init__()
        self.in_dim, self.d_model = in_dim, d_model
        self.proj = nn.Linear(in_dim, d_model)

    def forward(self, frames, lengths=None, extra_tokens=None, extra_mask=None, return_attention=False):
        return PooledOutput(self.proj(masked_max_mean(frames, lengths)), None, None)
