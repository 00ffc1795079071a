"""Pretrained audio backbones that turn waveforms into frame-embedding sequences.

``build_audio_backbone(name)`` returns an ``nn.Module`` with ``name``, ``sample_rate``, ``embed_dim`` and
``forward(waveform [B, N], lengths=None) -> (frames [B, T, D], frame_lengths [B])``: the last
convolutional stage averaged over frequency, one vector per time step. Each backbone owns its log-mel
frontend (``.frontend``; SpecAugment only in training mode) and handles padded batches exactly
(a clip gives the same frames in a batch as alone).

==================  ======  =====  ======================================================
name                rate    D      weights
==================  ======  =====  ======================================================
sfx-cnn             44.1k   512    bundled with the ``aisfx`` package (offline default)
panns-cnn14         32k     2048   PANNs Cnn14 (Kong et al.), official release
panns-resnet38      32k     2048   PANNs ResNet38 (used by Mei et al.)
efficientat-mn40    32k     3840   EfficientAT ``mn40_as_ext`` (the hybrid paper's model)
efficientat-mn10    32k     960    EfficientAT ``mn10_as`` (a 4x narrower, faster variant)
==================  ======  =====  ======================================================
"""

from __future__ import annotations

import importlib
from pathlib import Path

from hybridlib.util.errors import UserError

# name -> (module, class, keyword arguments)
BACKBONES: dict[str, tuple[str, str, dict]] = {
    "sfx-cnn": ("hybridlib.models.audio.sfx_cnn", "SfxCNN", {}),
    "panns-cnn14": ("hybridlib.models.audio.panns", "Cnn14", {}),
    "panns-resnet38": ("hybridlib.models.audio.panns", "ResNet38", {}),
    "efficientat-mn40": ("hybridlib.models.audio.efficientat", "MobileNetAT", {"width_mult": 4.0}),
    "efficientat-mn10": ("hybridlib.models.audio.efficientat", "MobileNetAT", {"width_mult": 1.0}),
}


def available_backbones() -> list[str]:
    return sorted(BACKBONES)


def build_audio_backbone(
    name: str = "sfx-cnn", checkpoint: str | Path | None = None, pretrained: bool = True
):
    """Build backbone ``name`` and load its weights.

    ``checkpoint``: path of an official weights file (see :mod:`.checkpoints` for the formats). When
    ``None`` and ``pretrained``: sfx-cnn uses the bundled aiSFX file; the others the official file at
    :func:`hybridlib.models.audio.weights.weights_path`, downloaded (and checksum-verified) when it is not
    there yet. ``pretrained=False`` keeps random weights.
    The module is returned in eval mode.
    """
    if name not in BACKBONES:
        raise UserError(f"unknown audio backbone {name!r}; choose from {available_backbones()}")
    module_name, class_name, kwargs = BACKBONES[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    model = cls(**kwargs)
    model.name = name
    if checkpoint is None and pretrained:
        checkpoint = fetch_weights(name)
    model.checkpoint_path = None
    if checkpoint is not None:
        from hybridlib.models.audio.checkpoints import load_official_weights

        model.checkpoint_report = load_official_weights(checkpoint, model)
        model.checkpoint_path = str(checkpoint)
    return model.eval()


def fetch_weights(name: str, dest_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The official weights file of backbone ``name``, downloaded first when missing.

    A fresh download is loaded into the model (every key and shape must match) and deleted when it does
    not fit, so a corrupt or wrong file never stays behind.
    """
    from hybridlib.models.audio.checkpoints import CheckpointError, load_official_weights
    from hybridlib.models.audio.weights import download_weights, weights_path

    path = weights_path(name, dest_dir)
    if path.is_file():
        return path
    path = download_weights(name, dest_dir, progress=progress)
    try:
        load_official_weights(path, build_audio_backbone(name, pretrained=False))
    except CheckpointError:
        path.unlink(missing_ok=True)
        raise
    return path


__all__ = ["BACKBONES", "available_backbones", "build_audio_backbone", "fetch_weights"]
