"""Log-mel frontends, one per backbone family, each as its authors computed it.

Every frontend maps ``waveform [B, N]`` (+ valid ``lengths [B]``) to a log-mel spectrogram and the
number of valid frames per clip. Padded frames are zeroed so a clip in a padded batch gives the same
spectrogram as alone (see :mod:`.masking`). SpecAugment (random time/frequency masks, :class:`SpecAugment`)
runs only in training mode and only while enabled (:func:`set_spec_augment`; ``TrainConfig.spec_augment``),
at the point where each family's authors apply it: sfx-cnn after its min-max scaling; PANNs after ``bn0``
(the backbone applies ``frontend.spec_augment``, as in PANNs and Mei et al.'s code); EfficientAT on the log
mel *before* its ``(x + 4.5) / 5`` normalisation, so a masked bin holds ``(0 + 4.5) / 5 = 0.9`` as upstream.

* :class:`SfxLogMel` - sfx-cnn (aiSFX): 44.1 kHz, peak-normalised, Hann 2048 / hop 1024, 96 HTK mel
  bands 0-22050 Hz with unit-sum ("area") normalisation, power, ``log10(1 + 10000 mel)``, min-max
  scaled with (0, 9.4578). Output ``[B, T, 96]``.
* :class:`PannsLogMel` - PANNs (Kong et al.): 32 kHz, STFT as a convolution with Hann-windowed DFT
  kernels (window 1024, hop 320, reflect padding), 64 Slaney mel bands 50-14000 Hz, power,
  ``10 log10(max(x, 1e-10))``. Output ``[B, 1, T, 64]`` (``bn0`` and the SpecAugment after it belong to the
  backbone).
* :class:`EfficientATMel` - EfficientAT (Schmid et al.): 32 kHz, pre-emphasis ``[-0.97, 1]``, n_fft 1024,
  symmetric Hann 800, hop 320, 128 Kaldi mel bands 0-15000 Hz (padded to 513 bins), power,
  ``(log(mel + 1e-5) + 4.5) / 5``. Output ``[B, 1, 128, T]``.
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF
from torch import nn

from hybridlib.models.audio.masking import full_lengths
from hybridlib.util.tensors import length_mask

# aiSFX scaled its log-mels by the extremes over all its training spectrograms (Essentia frontend).
SFX_NORM_MIN = 0.0
SFX_NORM_MAX = 9.457798957824707


def center_pad(waveform: torch.Tensor, lengths: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Pad each clip by ``pad`` samples on both sides of its *valid* part, as ``center=True`` STFTs do.

    With ``mode="constant"`` the batch padding already is zeros, so one pad suffices. With
    ``"reflect"`` each clip is reflected at its own end (not at the batch's), so a short clip in a
    batch is framed exactly as alone.
    """
    if mode == "constant":
        return nn.functional.pad(waveform, (pad, pad))
    out = waveform.new_zeros(waveform.shape[0], waveform.shape[1] + 2 * pad)
    for i, n in enumerate(lengths.tolist()):
        if n == 0:
            continue
        clip = waveform[i : i + 1, :n]
        if n <= pad:  # reflect needs more samples than the padding; fall back to zeros for tiny clips
            out[i, pad : pad + n] = clip[0]
            continue
        out[i, : n + 2 * pad] = nn.functional.pad(clip[:, None], (pad, pad), mode=mode)[0, 0]
    return out


def width_frames(frontend, waveform: torch.Tensor) -> int:
    """The frames a frontend keeps for a batch: those of its padded width (beyond each clip's own frames they are
    padding, zeroed or masked). A batch padded to its longest clip keeps that clip's frames; a slice of a larger
    batch padded to that batch's width (several processes: :mod:`hybridlib.training.distributed`) keeps the
    larger batch's, so training-mode BatchNorm statistics count the same padded frames."""
    return int(frontend.frame_lengths(torch.tensor([waveform.shape[-1]]))[0])


def stft_frames(lengths: torch.Tensor, hop: int) -> torch.Tensor:
    """Frames of a centred STFT: ``1 + N // hop`` (0 for an empty clip)."""
    return torch.where(lengths > 0, 1 + torch.div(lengths, hop, rounding_mode="floor"), 0)


def htk_mel_unit_sum(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """HTK-scale triangular filters, each scaled to sum to 1 (librosa ``norm=1``, Essentia ``unit_sum``).

    Returns ``[n_freqs, n_mels]``.
    """
    fb = AF.melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm=None, mel_scale="htk")
    return fb / fb.sum(dim=0, keepdim=True).clamp(min=1e-12)


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Kaldi's triangular mel filters (``mel = 1127 ln(1 + f / 700)``, no VTLN), ``[n_mels, n_fft // 2]``.

    Triangles are linear in the mel domain between equally spaced mel points; EfficientAT pads one zero
    column to cover the Nyquist bin.
    """

    def mel(f):
        return 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float64) / 700.0)

    mel_low, mel_high = mel(f_min), mel(f_max)
    delta = (mel_high - mel_low) / (n_mels + 1)
    b = torch.arange(n_mels, dtype=torch.float64)[:, None]
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    bin_mel = mel(sample_rate / n_fft * torch.arange(n_fft // 2, dtype=torch.float64))[None, :]
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


class SpecAugment(nn.Module):
    """Random time and frequency masks (Park et al.), active only in training mode and while ``enabled``.

    Each clip gets ``num_masks`` masks per axis with widths drawn uniformly from ``[0, max_width)``
    (torchaudio's ``mask_along_axis_iid``, as torchlibrosa's ``SpecAugmentation`` in PANNs and torchaudio's
    masking transforms in EfficientAT); masked values become ``mask_value``. Padded frames are zeroed again
    afterwards, so padding is unaffected.
    """

    def __init__(self, freq_mask: int, time_mask: int, num_masks: int = 2, mask_value: float = 0.0,
                 enabled: bool = True):
        super().__init__()
        self.freq_mask, self.time_mask, self.num_masks, self.mask_value = (
            freq_mask,
            time_mask,
            num_masks,
            mask_value,
        )
        self.enabled = enabled

    @property
    def active(self) -> bool:
        """Whether a forward pass masks now (training mode, enabled, a non-zero mask width)."""
        return self.training and self.enabled and (self.freq_mask > 0 or self.time_mask > 0)

    def extra_repr(self) -> str:
        return (f"freq_mask={self.freq_mask}, time_mask={self.time_mask}, num_masks={self.num_masks}, "
                f"mask_value={self.mask_value}, enabled={self.enabled}")

    def forward(
        self, spec: torch.Tensor, lengths: torch.Tensor, freq_dim: int, time_dim: int
    ) -> torch.Tensor:
        """``spec`` has batch at dim 0; ``freq_dim``/``time_dim`` index its axes."""
        if not self.active:
            return spec
        # put into (B, 1, F, T) for torchaudio, then back
        perm = [0, freq_dim, time_dim] + [d for d in range(1, spec.dim()) if d not in (freq_dim, time_dim)]
        x = spec.permute(*perm).reshape(spec.shape[0], 1, spec.shape[freq_dim], spec.shape[time_dim])
        for _ in range(self.num_masks):
            if self.freq_mask > 0:
                x = AF.mask_along_axis_iid(x, self.freq_mask, self.mask_value, axis=2)
            if self.time_mask > 0:
                x = AF.mask_along_axis_iid(x, min(self.time_mask, x.shape[-1]), self.mask_value, axis=3)
        x = x * length_mask(lengths, x.shape[-1])[:, None, None, :].to(x.dtype)
        out = x.reshape([spec.shape[d] for d in perm]).permute(*torch.argsort(torch.tensor(perm)).tolist())
        return out.contiguous()


def set_spec_augment(module: nn.Module, enabled: bool) -> list[str]:
    """Switch every :class:`SpecAugment` inside ``module`` on or off; returns their qualified names.

    ``TrainConfig.spec_augment`` reaches the trainable backbones through this (training calls it once
    after building the model), so ``spec_augment: false`` really trains without masking.
    """
    names = []
    for name, sub in module.named_modules():
        if isinstance(sub, SpecAugment):
            sub.enabled = bool(enabled)
            names.append(name)
    return names


def spec_augment_state(module: nn.Module) -> dict[str, dict]:
    """``{qualified name: {"enabled", "training", "active", "freq_mask", "time_mask", "num_masks",
    "mask_value"}}`` for every :class:`SpecAugment` inside ``module`` (the ingredient report reads it)."""
    return {name: {"enabled": sub.enabled, "training": sub.training, "active": sub.active,
                   "freq_mask": sub.freq_mask, "time_mask": sub.time_mask, "num_masks": sub.num_masks,
                   "mask_value": sub.mask_value}
            for name, sub in module.named_modules() if isinstance(sub, SpecAugment)}


class SfxLogMel(nn.Module):
    """aiSFX log-mel frontend (see module docstring). ``forward -> ([B, T, n_mels], frames [B])``.

    The STFT frames are centred with zero padding (librosa ``center=True``, ``pad_mode="constant"``,
    which is what aiSFX's librosa path runs) and use a periodic Hann window.
    """

    def __init__(
        self,
        sample_rate: int = 44100,
        n_fft: int = 2048,
        hop_length: int = 1024,
        n_mels: int = 96,
        f_min: float = 0.0,
        f_max: float = 22050.0,
        peak_normalise: bool = True,
        norm_range: tuple[float, float] = (SFX_NORM_MIN, SFX_NORM_MAX),
        freq_mask: int = 12,
        time_mask: int = 20,
    ):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.n_mels, self.f_min, self.f_max = n_mels, f_min, f_max
        self.peak_normalise, self.norm_range = peak_normalise, tuple(norm_range)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer(
            "mel_fb", htk_mel_unit_sum(n_fft // 2 + 1, n_mels, sample_rate, f_min, f_max), persistent=False
        )
        self.spec_augment = SpecAugment(freq_mask, time_mask)

    def config(self) -> dict:
        """Settings that change the output (used by the feature cache's fingerprint)."""
        return {
            "kind": "sfx-logmel", "sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop": self.hop_length,
            "n_mels": self.n_mels, "f_min": self.f_min, "f_max": self.f_max,
            "peak_normalise": self.peak_normalise, "norm_range": list(self.norm_range),
        }  # fmt: skip

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return stft_frames(lengths, self.hop_length)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = full_lengths(waveform, lengths)
        mask = length_mask(lengths, waveform.shape[-1]).to(waveform.dtype)
        x = waveform * mask
        if self.peak_normalise:
            peak = x.abs().amax(dim=-1, keepdim=True)
            x = x / torch.where(peak > 0, peak, torch.ones_like(peak))
        x = center_pad(x, lengths, self.n_fft // 2, "constant")
        spec = torch.stft(
            x, self.n_fft, self.hop_length, window=self.window.to(x.dtype), center=False, return_complex=True
        )
        power = spec.real.square() + spec.imag.square()  # [B, F, T]
        mel = torch.matmul(power.transpose(1, 2), self.mel_fb.to(power.dtype))  # [B, T, M]
        logmel = torch.log10(1.0 + 10000.0 * mel)
        lo, hi = self.norm_range
        logmel = (logmel - lo) / (hi - lo)
        n_frames = self.frame_lengths(lengths)
        logmel = logmel[:, : width_frames(self, waveform)]
        logmel = logmel * length_mask(n_frames, logmel.shape[1])[:, :, None].to(logmel.dtype)
        logmel = self.spec_augment(logmel, n_frames, freq_dim=2, time_dim=1)
        return logmel, n_frames


class _ConvSTFT(nn.Module):
    """PANNs' STFT: a 1-d convolution with Hann-windowed cosine/sine kernels (keys ``conv_real``/``conv_imag``)."""

    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        n_bins = n_fft // 2 + 1
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_bins, dtype=torch.float64)[:, None]
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        angle = 2 * math.pi * k * n / n_fft
        self.conv_real = nn.Conv1d(1, n_bins, n_fft, stride=hop_length, bias=False)
        self.conv_imag = nn.Conv1d(1, n_bins, n_fft, stride=hop_length, bias=False)
        with torch.no_grad():
            self.conv_real.weight.copy_((torch.cos(angle) * window)[:, None, :].float())
            self.conv_imag.weight.copy_((-torch.sin(angle) * window)[:, None, :].float())
        for p in self.parameters():
            p.requires_grad_(False)


class _PannsSpectrogram(nn.Module):
    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        self.stft = _ConvSTFT(n_fft, hop_length)


class _PannsLogmel(nn.Module):
    def __init__(self, n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float):
        super().__init__()
        fb = AF.melscale_fbanks(
            n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney"
        )
        self.melW = nn.Parameter(fb, requires_grad=False)  # [n_freqs, n_mels], as in the checkpoints


class PannsLogMel(nn.Module):
    """PANNs frontend (see module docstring). ``forward -> ([B, 1, T, 64], frames [B])``.

    Holds the checkpoints' ``spectrogram_extractor.stft.conv_{real,imag}.weight`` and
    ``logmel_extractor.melW`` so the official files load into it.
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        hop_length: int = 320,
        n_mels: int = 64,
        f_min: float = 50.0,
        f_max: float = 14000.0,
        amin: float = 1e-10,
        freq_mask: int = 8,
        time_mask: int = 64,
    ):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.n_mels, self.f_min, self.f_max, self.amin = n_mels, f_min, f_max, amin
        self.spectrogram_extractor = _PannsSpectrogram(n_fft, hop_length)
        self.logmel_extractor = _PannsLogmel(n_fft, n_mels, sample_rate, f_min, f_max)
        # PANNs' SpecAugmentation(time_drop_width=64, time_stripes_num=2, freq_drop_width=8,
        # freq_stripes_num=2): 2 stripes of width < 64 frames and 2 of < 8 mel bins, set to 0; applied by the
        # backbone after bn0 (see _PannsBase.forward)
        self.spec_augment = SpecAugment(freq_mask, time_mask)

    def config(self) -> dict:
        return {
            "kind": "panns-logmel", "sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop": self.hop_length,
            "n_mels": self.n_mels, "f_min": self.f_min, "f_max": self.f_max, "amin": self.amin,
        }  # fmt: skip

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return stft_frames(lengths, self.hop_length)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = full_lengths(waveform, lengths)
        x = waveform * length_mask(lengths, waveform.shape[-1]).to(waveform.dtype)
        x = center_pad(x, lengths, self.n_fft // 2, "reflect")[:, None, :]
        stft = self.spectrogram_extractor.stft
        real = nn.functional.conv1d(x, stft.conv_real.weight.to(x.dtype), stride=self.hop_length)
        imag = nn.functional.conv1d(x, stft.conv_imag.weight.to(x.dtype), stride=self.hop_length)
        power = (real.square() + imag.square()).transpose(1, 2)  # [B, T, F]
        mel = torch.matmul(power, self.logmel_extractor.melW.to(power.dtype))
        logmel = 10.0 * torch.log10(torch.clamp(mel, min=self.amin))  # ref = 1.0 -> no offset
        n_frames = self.frame_lengths(lengths)
        logmel = logmel[:, : width_frames(self, waveform)]
        # padded frames are zeroed after bn0 by the backbone (zero *before* bn0 would not survive it), and
        # self.spec_augment runs there too: PANNs masks the bn0-normalised log mel (masked value 0 = mean)
        return logmel[:, None], n_frames


class EfficientATMel(nn.Module):
    """EfficientAT frontend ``AugmentMelSTFT`` (see module docstring). ``forward -> ([B, 1, 128, T], frames [B])``.

    In training mode, besides SpecAugment (frequency masks < 48 bins, time masks < 192 frames, one
    each, EfficientAT's defaults), the mel range is jittered as in EfficientAT: ``f_min`` up by
    ``[0, fmin_aug_range)`` Hz and ``f_max`` by ``+-fmax_aug_range / 2`` Hz.
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        win_length: int = 800,
        hop_length: int = 320,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float = 15000.0,
        preemphasis: float = 0.97,
        freq_mask: int = 48,
        time_mask: int = 192,
        fmin_aug_range: int = 10,
        fmax_aug_range: int = 2000,
    ):
        super().__init__()
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = (
            sample_rate,
            n_fft,
            win_length,
            hop_length,
        )
        self.n_mels, self.f_min, self.f_max, self.preemphasis = n_mels, f_min, f_max, preemphasis
        self.fmin_aug_range, self.fmax_aug_range = fmin_aug_range, fmax_aug_range
        self.register_buffer("window", torch.hann_window(win_length, periodic=False), persistent=False)
        self.register_buffer("mel_fb", self._mel_fb(f_min, f_max), persistent=False)
        self.spec_augment = SpecAugment(freq_mask, time_mask, num_masks=1)

    def _mel_fb(self, f_min: float, f_max: float) -> torch.Tensor:
        fb = kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, f_min, f_max)
        return nn.functional.pad(fb, (0, 1))  # [n_mels, n_fft // 2 + 1]

    def config(self) -> dict:
        return {
            "kind": "efficientat-mel", "sample_rate": self.sample_rate, "n_fft": self.n_fft, "win": self.win_length,
            "hop": self.hop_length, "n_mels": self.n_mels, "f_min": self.f_min, "f_max": self.f_max,
            "preemphasis": self.preemphasis,
        }  # fmt: skip

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        # pre-emphasis is a valid 2-tap convolution: one sample shorter
        return stft_frames((lengths - 1).clamp(min=0), self.hop_length)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None):
        lengths = full_lengths(waveform, lengths)
        x = waveform * length_mask(lengths, waveform.shape[-1]).to(waveform.dtype)
        x = x[:, 1:] - self.preemphasis * x[:, :-1]
        n = (lengths - 1).clamp(min=0)
        x = x * length_mask(n, x.shape[-1]).to(x.dtype)
        x = center_pad(x, n, self.n_fft // 2, "reflect")
        window = nn.functional.pad(self.window, ((self.n_fft - self.win_length) // 2,) * 2).to(x.dtype)
        spec = torch.stft(x, self.n_fft, self.hop_length, window=window, center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # [B, F, T]
        mel_fb = self.mel_fb
        if self.training and (self.fmin_aug_range > 0 or self.fmax_aug_range > 0):
            f_min = self.f_min + torch.randint(max(self.fmin_aug_range, 1), (1,)).item()
            f_max = (
                self.f_max
                + self.fmax_aug_range // 2
                - torch.randint(max(self.fmax_aug_range, 1), (1,)).item()
            )
            mel_fb = self._mel_fb(f_min, f_max).to(power.device)
        mel = torch.matmul(mel_fb.to(power.dtype), power)  # [B, M, T]
        logmel = torch.log(mel + 1e-5)
        n_frames = self.frame_lengths(lengths)
        logmel = logmel[:, :, : width_frames(self, waveform)]
        # EfficientAT masks the log mel with value 0 *before* its fast normalisation (masked bins end at 0.9)
        logmel = self.spec_augment(logmel, n_frames, freq_dim=1, time_dim=2)
        logmel = (logmel + 4.5) / 5.0
        logmel = logmel * length_mask(n_frames, logmel.shape[-1])[:, None, :].to(logmel.dtype)
        return logmel[:, None], n_frames
