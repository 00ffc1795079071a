"""Encoding a long clip in chunks, so memory is bounded by the chunk, not by the clip.

A backbone's activations grow with the clip: sfx-cnn's first block alone holds 64 x 96 values per
spectrogram frame, about 1 GB per 10 minutes of audio, and several such tensors live at once.
:func:`encode_long` cuts the clip into pieces of ``chunk_seconds`` (aligned to the backbone's output
frames), encodes each with ``context`` samples of real audio on both sides, keeps the frames of the piece
and concatenates them.

When the result equals encoding the whole clip (``backbone.chunk_context`` is set):

* **sfx-cnn**: every output frame depends on a window of about 38 spectrogram frames (the STFT's half
  window, eight 3x3 convolutions and three 2x2 pools: 1 + 2 + 1 + 4 + 2 + 8 + 4 + 16), i.e. under 5 output
  frames; the context is 8 output frames (1.5 s at 44.1 kHz) on each side, and the clip-level peak
  normalisation of its frontend is applied to the whole clip once (each piece would otherwise be scaled by
  its own peak). Measured here: the frames are bit-identical to whole-clip encoding (``torch.equal`` for a
  40-s clip in 10-s and 7-s pieces in ``tests/test_features_cache.py``, and for a 100-s clip in 20-s pieces);
  another machine's convolution kernels could pick another algorithm for another input length and differ by
  float rounding.
* **EfficientAT** (``chunk_context = None``): its squeeze-excitation blocks average each feature map over
  the whole clip, so no context can make pieces exact; the pieces are encoded independently (frames of
  clips longer than ``chunk_seconds`` are an approximation, recorded in the cache entry's metadata).
* **PANNs** (``chunk_context = None``): no clip-level operation, but the receptive field of Cnn14/ResNet38
  was not analysed here; treated as approximate like EfficientAT (an assumption on the safe side).

The datasets of the papers never reach the default chunk length (Clotho 15-30 s, AudioCaps 10 s), so their
frames are always whole-clip frames.
"""

from __future__ import annotations

import math

import torch

DEFAULT_CHUNK_SECONDS = 60.0


def frame_hop(backbone) -> int:
    """Input samples per output frame (the backbone's total time stride)."""
    hop = getattr(backbone, "frame_hop", None)
    if hop is None:
        raise ValueError(f"backbone {getattr(backbone, 'name', type(backbone).__name__)!r} has no frame_hop")
    return int(hop)


def is_exact(backbone) -> bool:
    """True when chunked frames equal whole-clip frames for this backbone (see the module docstring)."""
    return getattr(backbone, "chunk_context", None) is not None


def encode_long(backbone, waveform: torch.Tensor, chunk_seconds: float = DEFAULT_CHUNK_SECONDS) -> torch.Tensor:
    """Frames ``[T, D]`` of one clip ``waveform [N]`` encoded piece by piece (see the module docstring).

    ``T`` is ``backbone.frame_lengths(N)``, as for whole-clip encoding. Run under ``torch.inference_mode``
    in eval mode (the caller's responsibility, as for ``backbone(...)``).
    """
    n = int(waveform.shape[-1])
    device = waveform.device
    total = int(backbone.frame_lengths(torch.tensor([n]))[0])
    hop = frame_hop(backbone)
    per_chunk = max(1, int(round(chunk_seconds * backbone.sample_rate / hop)))
    context = getattr(backbone, "chunk_context", None)
    margin = 0 if context is None else math.ceil(int(context) / hop)
    frontend = getattr(backbone, "frontend", None)
    renormalise = bool(getattr(frontend, "peak_normalise", False))
    peak = None
    if renormalise:  # scale by the whole clip's peak, as whole-clip encoding does (piece by piece: no copy)
        peak = torch.maximum(waveform.max(), -waveform.min())  # = abs().amax(), without a copy of the clip
        peak = peak if float(peak) > 0 else None
        frontend.peak_normalise = False
    pieces = []
    try:
        for c0 in range(0, total, per_chunk):
            c1 = min(total, c0 + per_chunk)
            start = max(0, c0 - margin) * hop
            stop = n if c1 == total else min(n, (c1 + margin) * hop)
            segment = waveform[start:stop][None]
            if peak is not None:
                segment = segment / peak
            frames, lengths = backbone(segment, torch.tensor([stop - start], device=device))
            first = c0 - start // hop
            got = frames[0, first:first + (c1 - c0)]
            if got.shape[0] < c1 - c0:  # approximate backbones may give a frame less at a piece's end
                got = torch.cat([got, got[-1:].expand(c1 - c0 - got.shape[0], -1)])
            pieces.append(got.float().cpu())
    finally:
        if renormalise:
            frontend.peak_normalise = True
    return torch.cat(pieces) if pieces else torch.zeros(0, backbone.embed_dim)
