"""EfficientAT MobileNetV3 audio taggers (Schmid, Koutini & Widmer, ICASSP 2023), key-compatible with the
official release files (``mn40_as_ext`` is the hybrid paper's audio model).

The network is torchvision's MobileNetV3-Large layout scaled by ``width_mult`` (4.0 for mn40) on a
1-channel log-mel input ``(B, 1, 128, T)``: ``features.0`` (3x3 stride-2 conv), ``features.1..15``
(inverted residual blocks: optional 1x1 expansion, depthwise conv, squeeze-excitation, 1x1 projection;
BatchNorm eps 1e-3), ``features.16`` (1x1 conv to ``6 x`` the last width: 3840 for mn40), and the MLP
tagging head ``classifier.{2,5}`` (only :meth:`MobileNetAT.clip_logits` uses it; a retrieval model freezes it:
:func:`hybridlib.models.audio.freeze_tagging_head`). Squeeze-excitation (blocks 4-6 and 11-15) is EfficientAT's
"concurrent" SE on the channel axis only (``conc_se_layers.0.fc{1,2}``, linear layers, reduction 4).

Frames: the ``features`` output averaged over frequency (3840-d for mn40), 32 per 10 s (1000
spectrogram frames, total stride 32). The SE block's average over frequency and time is restricted to
each clip's valid frames, so padded batches give the same frames as clips alone.
"""

from __future__ import annotations

import torch
from torch import nn

from hybridlib.models.audio.frontends import EfficientATMel
from hybridlib.models.audio.masking import conv_bn, conv_lengths, ensure_min_length, mask_time
from hybridlib.util.tensors import length_mask

AUDIOSET_CLASSES = 527


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10% (MobileNet rule)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


# MobileNetV3-Large: (in, kernel, expanded, out, squeeze-excitation, activation, stride)
MOBILENET_V3_LARGE = [
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
]


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=0.001, momentum=0.01)


class ConvNormActivation(nn.Sequential):
    """conv (no bias) -> BN -> activation; keys ``0`` (conv), ``1`` (BN), as torchvision's block."""

    def __init__(self, c_in, c_out, kernel, stride=1, groups=1, activation: type[nn.Module] | None = nn.ReLU):
        layers = [
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            _bn(c_out),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)

    def forward_masked(self, x, n):
        conv = self[0]
        x = conv_bn(x, conv, self[1])
        if len(self) > 2:
            x = self[2](x)
        n = conv_lengths(n, conv.kernel_size[1], conv.stride[1], conv.padding[1], conv.dilation[1])
        return mask_time(x, n, time_dim=3), n


class SqueezeExcitation(nn.Module):
    """Channel squeeze-excitation with linear layers ``fc1``/``fc2`` (EfficientAT's layout)."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        valid = length_mask(n, x.shape[3]).to(x.dtype)[:, None, None, :]  # [B, 1, 1, T]
        pooled = (x * valid).sum(dim=(2, 3)) / (valid.sum(dim=(2, 3)) * x.shape[2]).clamp(min=1.0)
        scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(pooled))))
        return x * scale[:, :, None, None]


class ConcurrentSE(nn.Module):
    """EfficientAT's concurrent SE container; with SE on channels only it holds one layer (max-aggregated)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.conc_se_layers = nn.ModuleList(
            [SqueezeExcitation(channels, make_divisible(channels // reduction, 8))]
        )

    def forward(self, x, n):
        outs = [layer(x, n) for layer in self.conc_se_layers]
        return outs[0] if len(outs) == 1 else torch.stack(outs).amax(dim=0)


class InvertedResidual(nn.Module):
    def __init__(self, c_in, kernel, expanded, c_out, use_se, activation, stride):
        super().__init__()
        act = nn.Hardswish if activation == "HS" else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(ConvNormActivation(c_in, expanded, 1, activation=act))
        layers.append(ConvNormActivation(expanded, expanded, kernel, stride, groups=expanded, activation=act))
        if use_se:
            layers.append(ConcurrentSE(expanded))
        layers.append(ConvNormActivation(expanded, c_out, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and c_in == c_out

    def forward_masked(self, x, n):
        out, n_out = x, n
        for layer in self.block:
            if isinstance(layer, ConcurrentSE):
                out = layer(out, n_out)
            else:
                out, n_out = layer.forward_masked(out, n_out)
        if self.use_res_connect:
            out = out + x
        return out, n_out


class MobileNetAT(nn.Module):
    """EfficientAT ``mn{width}`` backbone. ``forward(waveform [B, N] at 32 kHz) -> (frames [B, T, D], lengths)``."""

    name = "efficientat-mn40"
    channels_last_inference = True  # mn10/mn40 inference ~1.27x faster on the CPU (hybridlib.features.cache)
    checkpoint_prefixes: dict[str, str] = {}
    checkpoint_ignore: tuple[str, ...] = ()
    tagging_head = ("classifier",)  # AudioSet head: not on the frame path (frozen in retrieval models)
    downsample = 32

    def __init__(
        self,
        width_mult: float = 4.0,
        classes: int = AUDIOSET_CLASSES,
        frontend: EfficientATMel | None = None,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.width_mult = width_mult
        self.frontend = frontend or EfficientATMel()
        self.sample_rate = self.frontend.sample_rate

        def adjust(c):
            return make_divisible(c * width_mult, 8)

        settings = [
            (adjust(i), k, adjust(e), adjust(o), se, a, s) for i, k, e, o, se, a, s in MOBILENET_V3_LARGE
        ]
        layers: list[nn.Module] = [ConvNormActivation(1, settings[0][0], 3, 2, activation=nn.Hardswish)]
        layers += [InvertedResidual(*cfg) for cfg in settings]
        last_in = settings[-1][3]
        self.embed_dim = 6 * last_in
        layers.append(ConvNormActivation(last_in, self.embed_dim, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        last_channel = adjust(1280)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(self.embed_dim, last_channel),
            nn.Hardswish(),
            nn.Dropout(dropout),
            nn.Linear(last_channel, classes),
        )

    def config(self) -> dict:
        return {"name": self.name, "width_mult": self.width_mult, "frontend": self.frontend.config()}

    @property
    def min_samples(self) -> int:
        """Shortest clip handled (shorter ones are padded with silence): the STFT's reflect padding
        needs more than ``n_fft // 2`` samples after pre-emphasis."""
        return self.frontend.n_fft // 2 + 2

    chunk_context = None  # squeeze-excitation averages over the whole clip: chunks are approximate (.chunking)

    @property
    def frame_hop(self) -> int:
        """Input samples per output frame (hop x total time stride 32)."""
        return self.frontend.hop_length * self.downsample

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        n = self.frontend.frame_lengths(torch.as_tensor(lengths).clamp(min=self.min_samples))
        for module in self.features:
            convs = [module[0]] if isinstance(module, ConvNormActivation) else [
                m[0] for m in module.block if isinstance(m, ConvNormActivation)
            ]  # fmt: skip
            for conv in convs:
                n = conv_lengths(n, conv.kernel_size[1], conv.stride[1], conv.padding[1], conv.dilation[1])
        return n

    def forward_features(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None):
        """``features`` output ``[B, D, F', T']`` and valid lengths."""
        waveform, lengths = ensure_min_length(waveform, lengths, self.min_samples)
        x, n = self.frontend(waveform, lengths)  # [B, 1, 128, T]
        for module in self.features:
            x, n = module.forward_masked(x, n)
        return x, n

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None):
        x, n = self.forward_features(waveform, lengths)
        frames = x.mean(dim=2).transpose(1, 2).contiguous()  # average over frequency -> [B, T', D]
        return frames, n

    def clip_logits(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """AudioSet logits of the official head (global average over valid frequency x time, MLP)."""
        x, n = self.forward_features(waveform, lengths)
        valid = length_mask(n, x.shape[3]).to(x.dtype)[:, None, None, :]
        pooled = (x * valid).sum(dim=(2, 3)) / (valid.sum(dim=(2, 3)) * x.shape[2]).clamp(min=1.0)
        return self.classifier[2:](pooled)


def mn40_as() -> MobileNetAT:
    """``mn40_as`` / ``mn40_as_ext`` architecture (width 4.0, 527 AudioSet classes)."""
    return MobileNetAT(width_mult=4.0)


def mn10_as() -> MobileNetAT:
    model = MobileNetAT(width_mult=1.0)
    model.name = "efficientat-mn10"
    return model


__all__ = ["MobileNetAT", "make_divisible", "mn10_as", "mn40_as"]
