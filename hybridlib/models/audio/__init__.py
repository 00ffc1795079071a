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


# the rate each backbone's frontend expects (the waveform path resamples to it without building the model)
SAMPLE_RATES: dict[str, int] = {"sfx-cnn": 44100, "panns-cnn14": 32000, "panns-resnet38": 32000,
                                "efficientat-mn40": 32000, "efficientat-mn10": 32000}


def backbone_sample_rate(name: str) -> int:
    """The sample rate backbone ``name`` reads (no model is built)."""
    if name not in SAMPLE_RATES:
        raise UserError(f"unknown audio backbone {name!r}; choose from {available_backbones()}")
    return SAMPLE_RATES[name]


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


def tagging_head_parameters(backbone) -> list:
    """The parameters of ``backbone``'s AudioSet tagging head (its ``tagging_head`` submodules: PANNs ``fc1`` and
    ``fc_audioset``, EfficientAT ``classifier``); empty for backbones without one."""
    return [p for name in getattr(backbone, "tagging_head", ()) for p in getattr(backbone, name).parameters()]


def freeze_tagging_head(backbone):
    """Freeze (``requires_grad=False``) ``backbone``'s AudioSet tagging head and return ``backbone``.

    The frames a retrieval model reads come from the convolutional trunk; the tagging head only serves
    ``clip_logits``. Left trainable it would get no gradient (under DistributedDataParallel: the "expected to
    have finished reduction" error in the second step) and inflate the trainable-parameter count. Its weights
    stay in the module, so official checkpoint files still load completely and ``clip_logits`` still tags.
    """
    for p in tagging_head_parameters(backbone):
        p.requires_grad_(False)
    return backbone


def fetch_weights(name: str, dest_dir: str | Path | None = None, progress: bool = True,
                  mirror: str | None = None) -> Path:
    """The official weights file of backbone ``name``, downloaded first when missing (from ``mirror`` or
    ``$HYBRIDLIB_MIRROR`` when set: :func:`hybridlib.models.audio.weights.download_weights`).

    A fresh download is loaded into the model (every key and shape must match) and deleted when it does
    not fit, so a corrupt or wrong file never stays behind.
    """
    from hybridlib.models.audio.checkpoints import CheckpointError, load_official_weights
    from hybridlib.models.audio.weights import download_weights, weights_path

    path = weights_path(name, dest_dir)
    if path.is_file():
        return path
    path = download_weights(name, dest_dir, progress=progress, mirror=mirror)
    try:
        load_official_weights(path, build_audio_backbone(name, pretrained=False))
    except CheckpointError:
        path.unlink(missing_ok=True)
        raise
    return path


def write_random_weights(name: str, dest_dir: str | Path, seed: int = 0) -> Path:
    """Write backbone ``name`` at random initialisation in its official file format and under its official
    file name (PANNs: ``{"model": state_dict}``; EfficientAT: a bare state dict) into ``dest_dir``.

    The file loads through the path a user takes (``build_audio_backbone(name, checkpoint=path)``,
    ``model.audio_checkpoint: PATH``); a sidecar ``<file>.standin.json`` marks the weights as random (the
    ingredient report shows it). Deterministic in ``seed``; the caller's random state is left alone.
    """
    import json

    import torch

    from hybridlib.models.audio.checkpoints import official_state_dict
    from hybridlib.models.audio.weights import STANDIN_SUFFIX, weights_info

    info = weights_info(name)
    if info.url is None:
        raise UserError(f"{name!r} ships its own weights (bundled); there is no official file format to mimic")
    path = Path(dest_dir) / info.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_audio_backbone(name, pretrained=False)
    state = official_state_dict(model)
    torch.save({"model": state} if name.startswith("panns-") else state, path)
    Path(str(path) + STANDIN_SUFFIX).write_text(json.dumps(
        {"architecture": name, "weights": f"random initialisation (seed {seed}), NOT pretrained",
         "format": "PANNs {'model': state_dict}" if name.startswith("panns-") else "EfficientAT state_dict"},
        indent=1) + "\n")
    return path


__all__ = ["BACKBONES", "SAMPLE_RATES", "available_backbones", "backbone_sample_rate", "build_audio_backbone",
           "fetch_weights", "freeze_tagging_head", "tagging_head_parameters", "write_random_weights"]
