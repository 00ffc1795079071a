"""Training-time augmentation of cached features.

With a frozen backbone the frames come from the feature cache and the backbone never sees a spectrogram,
so SpecAugment cannot run where the papers apply it. :func:`frame_augmenter` masks random time steps and
channels of the cached frame sequence instead (torchaudio's masking transforms): a feature-level analogue,
off unless ``frame_time_mask``/``frame_channel_mask`` are set. A trainable backbone runs its own SpecAugment.
"""

from __future__ import annotations

from hybridlib.config import TrainConfig


def frame_augmenter(cfg: TrainConfig):
    """Feature-level SpecAugment for cached frames (time and channel masking), or None when off."""
    if not cfg.spec_augment or (cfg.frame_time_mask <= 0 and cfg.frame_channel_mask <= 0):
        return None
    import torchaudio.transforms as T

    time_mask = T.TimeMasking(cfg.frame_time_mask) if cfg.frame_time_mask > 0 else None
    chan_mask = T.FrequencyMasking(cfg.frame_channel_mask) if cfg.frame_channel_mask > 0 else None

    def augment(batch: dict) -> dict:
        if "frames" not in batch:
            return batch
        x = batch["frames"].transpose(1, 2)  # [B, D, T]: torchaudio masks (..., freq, time)
        if time_mask is not None:
            x = time_mask(x)
        if chan_mask is not None:
            x = chan_mask(x)
        return {**batch, "frames": x.transpose(1, 2)}

    return augment
