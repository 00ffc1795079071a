"""sfx-cnn: the 8-layer CNN whose weights ship in the ``aisfx`` package (offline default backbone).

Architecture of the checkpoint (``embedding_net.conv_block{1..4}.{conv1,conv2,bn1,bn2}``): four blocks of
two 3x3 convolutions (no bias) + BatchNorm + ReLU with 64/128/256/512 channels and a 2x2 max-pool
after blocks 1-3, on the log-mel input laid out as ``(B, 1, T, 96)``. aiSFX max-pools the result over
time for one clip vector; here the sequence is kept: the last block's output averaged over frequency
gives one 512-d frame per 8 spectrogram frames (~5.4 frames/s at 44.1 kHz, hop 1024).
"""

from __future__ import annotations

import torch
from torch import nn

from hybridlib.models.audio.frontends import SfxLogMel
from hybridlib.models.audio.masking import conv_bn, conv_lengths, ensure_min_length, mask_time


class ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU (keys ``conv1, conv2, bn1, bn2``), then an optional pool over (time, freq).

    Shared by sfx-cnn (max-pool) and PANNs (average pool). Padded time steps (dim 2) are zeroed after
    each convolution so a clip in a padded batch sees the same zeros as alone.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, pool: int = 2, pool_type: str = "max"):
        x = mask_time(torch.relu_(conv_bn(x, self.conv1, self.bn1)), lengths, time_dim=2)
        x = mask_time(torch.relu_(conv_bn(x, self.conv2, self.bn2)), lengths, time_dim=2)
        if pool > 1:
            x = nn.functional.max_pool2d(x, pool) if pool_type == "max" else nn.functional.avg_pool2d(x, pool)
            lengths = conv_lengths(lengths, pool, pool)
            x = mask_time(x, lengths, time_dim=2)
        return x, lengths


class _EmbeddingNet(nn.Module):
    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        ins = (1, *channels[:-1])
        for i, (c_in, c_out) in enumerate(zip(ins, channels), start=1):
            self.add_module(f"conv_block{i}", ConvBlock(c_in, c_out))
        self.num_blocks = len(channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        for i in range(1, self.num_blocks + 1):
            pool = 2 if i < self.num_blocks else 1
            x, lengths = getattr(self, f"conv_block{i}")(x, lengths, pool=pool, pool_type="max")
        return x, lengths


class SfxCNN(nn.Module):
    """sfx-cnn backbone. ``forward(waveform [B, N] at 44.1 kHz, lengths) -> (frames [B, T, 512], lengths [B])``."""

    name = "sfx-cnn"
    channels_last_inference = True  # frame extraction ~1.37x faster on the CPU (hybridlib.features.cache)
    # aiSFX stores a (state_dict, dataset_info) tuple; its per-dataset classifier heads are not used here
    checkpoint_ignore = ("fc.",)
    checkpoint_prefixes: dict[str, str] = {}
    tagging_head: tuple[str, ...] = ()  # the classifier heads are not even loaded

    def __init__(
        self,
        channels: tuple[int, ...] = (64, 128, 256, 512),
        frontend: SfxLogMel | None = None,
        channels_last: bool = True,
    ):
        super().__init__()
        # channels-last activations make oneDNN's CPU convolutions ~25% faster here (same numbers)
        self.channels_last = channels_last
        self.frontend = frontend or SfxLogMel()
        self.embedding_net = _EmbeddingNet(tuple(channels))
        self.sample_rate = self.frontend.sample_rate
        self.embed_dim = channels[-1]
        self.channels = tuple(channels)

    def config(self) -> dict:
        return {"name": self.name, "channels": list(self.channels), "frontend": self.frontend.config()}

    @property
    def min_samples(self) -> int:
        """Shortest clip giving one frame (shorter clips are padded with silence to this length)."""
        return (2 ** (self.embedding_net.num_blocks - 1) - 1) * self.frontend.hop_length

    @property
    def frame_hop(self) -> int:
        """Input samples per output frame (hop 1024 x three 2x pools = 8192)."""
        return self.frontend.hop_length * 2 ** (self.embedding_net.num_blocks - 1)

    @property
    def chunk_context(self) -> int:
        """Samples of context that make chunked encoding exact (:mod:`.chunking`): 8 output frames."""
        return 8 * self.frame_hop

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames produced for clips of ``lengths`` samples (three 2x pools: ``stft_frames // 8``)."""
        n = self.frontend.frame_lengths(torch.as_tensor(lengths).clamp(min=self.min_samples))
        for _ in range(self.embedding_net.num_blocks - 1):
            n = torch.div(n, 2, rounding_mode="floor")
        return n

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None):
        waveform, lengths = ensure_min_length(waveform, lengths, self.min_samples)
        spec, n = self.frontend(waveform, lengths)  # [B, T, 96]
        x = spec[:, None]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x, n = self.embedding_net(x, n)  # [B, C, T', F']
        frames = x.mean(dim=3).transpose(1, 2)  # average over frequency -> [B, T', C]
        return frames.contiguous(), n
