"""PANNs Cnn14 and ResNet38 (Kong et al., 2020), key-compatible with the official AudioSet checkpoints.

Official files are ``{"model": state_dict, ...}`` with keys ``spectrogram_extractor.stft.conv_{real,imag}.weight``,
``logmel_extractor.melW``, ``bn0.*`` and then

* Cnn14: ``conv_block1..6`` (64 ... 2048 channels, 2x2 average pools after blocks 1-5);
* ResNet38 (the audio encoder of Mei et al.): ``conv_block1`` (64), ``resnet.layer1..4`` with [3, 4, 6, 3]
  basic blocks (``conv1, bn1, conv2, bn2``; the first block of layers 2-4 average-pools 2x2 before its
  first convolution and has ``downsample.{1,2}`` = pool, 1x1 conv, BN), a 2x2 average pool, then
  ``conv_block_after1`` (2048);
* both: ``fc1`` and ``fc_audioset`` (the AudioSet tagging head, kept so the files load completely and
  :meth:`clip_logits` can tag clips; frames never pass through it, so a retrieval model freezes it:
  :func:`hybridlib.models.audio.freeze_tagging_head`).

Frames: the last convolutional output averaged over frequency, 2048-d, one per 32 spectrogram frames
(~3.1 frames/s at 32 kHz with hop 320). Dropout (0.2 after blocks, 0.1 inside residual blocks) and
SpecAugment (on the ``bn0`` output, 2 time stripes < 64 frames and 2 frequency stripes < 8 bins, value 0)
act only in training mode, as in PANNs. Mei et al.'s copy of ResNet38 uses dropout 0.2 inside the residual
blocks too; here the official 0.1 is kept (a documented difference of their fork).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from hybridlib.models.audio.frontends import PannsLogMel
from hybridlib.models.audio.masking import conv_bn, conv_lengths, ensure_min_length, mask_time
from hybridlib.models.audio.sfx_cnn import ConvBlock
from hybridlib.util.tensors import masked_max_mean

AUDIOSET_CLASSES = 527


class _PannsBase(nn.Module):
    """Frontend + ``bn0`` + head shared by Cnn14 and ResNet38; subclasses implement ``_trunk``."""

    sample_rate = 32000
    embed_dim = 2048
    downsample = 32  # spectrogram frames per output frame
    checkpoint_prefixes = {
        "spectrogram_extractor.": "frontend.spectrogram_extractor.",
        "logmel_extractor.": "frontend.logmel_extractor.",
    }
    checkpoint_ignore: tuple[str, ...] = ()
    tagging_head = ("fc1", "fc_audioset")  # AudioSet head: not on the frame path (frozen in retrieval models)

    def __init__(
        self, frontend: PannsLogMel | None = None, classes: int = AUDIOSET_CLASSES, dropout: float = 0.2
    ):
        super().__init__()
        self.frontend = frontend or PannsLogMel()
        self.sample_rate = self.frontend.sample_rate
        self.bn0 = nn.BatchNorm2d(self.frontend.n_mels)
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes)
        self.dropout = dropout

    def config(self) -> dict:
        return {"name": self.name, "frontend": self.frontend.config()}

    @property
    def min_samples(self) -> int:
        """Shortest clip giving one frame (shorter clips are padded with silence to this length)."""
        return (self.downsample - 1) * self.frontend.hop_length

    chunk_context = None  # receptive field not analysed: chunked encoding treated as approximate (.chunking)

    @property
    def frame_hop(self) -> int:
        """Input samples per output frame (hop x ``downsample``)."""
        return self.frontend.hop_length * self.downsample

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        n = self.frontend.frame_lengths(torch.as_tensor(lengths).clamp(min=self.min_samples))
        return torch.div(n, self.downsample, rounding_mode="floor")

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, p=self.dropout, training=self.training)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None):
        waveform, lengths = ensure_min_length(waveform, lengths, self.min_samples)
        x, n = self.frontend(waveform, lengths)  # [B, 1, T, 64]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # BatchNorm over mel bins
        x = self.frontend.spec_augment(x, n, freq_dim=3, time_dim=2)  # after bn0, as in PANNs
        x = mask_time(x.contiguous(), n, time_dim=2)
        x, n = self._trunk(x, n)  # [B, 2048, T', F']
        frames = x.mean(dim=3).transpose(1, 2).contiguous()
        return frames, n

    def clip_logits(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """AudioSet logits from frames (PANNs' head: max + mean over time, ReLU(fc1), fc_audioset)."""
        x = masked_max_mean(frames, lengths)
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.dropout(torch.relu(self.fc1(x)), p=0.5, training=self.training)
        return self.fc_audioset(x)


class Cnn14(_PannsBase):
    """PANNs Cnn14: six VGG-style blocks, 64 to 2048 channels."""

    name = "panns-cnn14"

    def __init__(self, frontend: PannsLogMel | None = None, classes: int = AUDIOSET_CLASSES):
        super().__init__(frontend, classes)
        channels = (64, 128, 256, 512, 1024, 2048)
        for i, (c_in, c_out) in enumerate(zip((1, *channels[:-1]), channels), start=1):
            self.add_module(f"conv_block{i}", ConvBlock(c_in, c_out))

    def _trunk(self, x, n):
        for i in range(1, 7):
            x, n = getattr(self, f"conv_block{i}")(x, n, pool=2 if i < 6 else 1, pool_type="avg")
            x = self._drop(x)
        return x, n


class BasicBlock(nn.Module):
    """PANNs' residual basic block: [2x2 avg-pool if stride 2], conv3x3-BN-ReLU-dropout(0.1)-conv3x3-BN, + shortcut, ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        if stride != 1 or in_channels != channels:
            layers = [nn.AvgPool2d(2)] if stride == 2 else [nn.Identity()]
            self.downsample = nn.Sequential(
                *layers, nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels)
            )
        else:
            self.downsample = None

    def forward(self, x, n):
        identity = x
        if self.stride == 2:
            x = F.avg_pool2d(x, 2)
            n_out = conv_lengths(n, 2, 2)
            x = mask_time(x, n_out, time_dim=2)
        else:
            n_out = n
        out = mask_time(torch.relu_(conv_bn(x, self.conv1, self.bn1)), n_out, time_dim=2)
        out = F.dropout(out, p=0.1, training=self.training)
        out = conv_bn(out, self.conv2, self.bn2)
        if self.downsample is not None:
            pool, conv, bn = self.downsample
            identity = conv_bn(pool(identity), conv, bn)
        out = mask_time(torch.relu_(out + identity), n_out, time_dim=2)
        return out, n_out


class _ResNetLayers(nn.Module):
    def __init__(self, blocks=(3, 4, 6, 3), widths=(64, 128, 256, 512)):
        super().__init__()
        in_channels = widths[0]
        for i, (count, width) in enumerate(zip(blocks, widths), start=1):
            stride = 1 if i == 1 else 2
            layer = nn.Sequential(
                *[
                    BasicBlock(in_channels if b == 0 else width, width, stride if b == 0 else 1)
                    for b in range(count)
                ]
            )
            self.add_module(f"layer{i}", layer)
            in_channels = width

    def forward(self, x, n):
        for i in range(1, 5):
            for block in getattr(self, f"layer{i}"):
                x, n = block(x, n)
        return x, n


class ResNet38(_PannsBase):
    """PANNs ResNet38: a VGG block, a 34-layer-style residual trunk [3, 4, 6, 3], a 2048-channel VGG block."""

    name = "panns-resnet38"

    def __init__(self, frontend: PannsLogMel | None = None, classes: int = AUDIOSET_CLASSES):
        super().__init__(frontend, classes)
        self.conv_block1 = ConvBlock(1, 64)
        self.resnet = _ResNetLayers()
        self.conv_block_after1 = ConvBlock(512, 2048)

    def _trunk(self, x, n):
        x, n = self.conv_block1(x, n, pool=2, pool_type="avg")
        x = self._drop(x)
        x, n = self.resnet(x, n)
        x = F.avg_pool2d(x, 2)
        n = conv_lengths(n, 2, 2)
        x = self._drop(mask_time(x, n, time_dim=2))
        x, n = self.conv_block_after1(x, n, pool=1, pool_type="avg")
        return self._drop(x), n
