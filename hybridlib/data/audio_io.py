"""Reading audio for the models: soundfile for decoding, torchaudio for resampling, one crop/pad policy.

torchaudio 2.9 delegates file I/O to torchcodec, so files are decoded with ``soundfile`` (wav, flac, ogg)
and torchaudio is used only for resampling (:func:`torchaudio.functional.resample`, windowed sinc).

Validation: a file that cannot be decoded, has no samples, contains NaN/Inf, or is digitally silent
(peak below ``silence_threshold``) raises :class:`AudioError` naming the file. Dataset code calls
:func:`validate_items` first so a bad file is excluded and reported before training, never a crash deep
inside a batch.

Crop/pad policy (training batches: :mod:`hybridlib.features.splits` and
:mod:`hybridlib.features.waveform_cache`):

* **training**: clips longer than ``max_audio_seconds`` are cropped to a window whose offset
  :func:`crop_window` draws from a seed given per example (the training batches derive it from the run's
  seed, the epoch and the caption, so any process reading the clip picks the same window); shorter clips are
  kept whole;
* **evaluation**: the whole clip, never cropped (:func:`crop_or_pad` with ``mode="start"`` caps a clip when
  a fixed length is wanted);
* **batching**: waveforms are right-padded with zeros to the longest clip of the batch and the true
  lengths are returned, so models can mask padding (:func:`hybridlib.util.tensors.pad_sequences`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from hybridlib.util.errors import UserError


class AudioError(UserError):
    """An audio file is unreadable, empty, non-finite or silent; the message names the file."""


def audio_info(path: str | Path) -> dict:
    """Sample rate, channels, frames and duration of a file without decoding it."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError with terse messages
        raise AudioError(f"{path}: cannot read audio header ({exc})") from exc
    return {"sample_rate": info.samplerate, "channels": info.channels, "frames": info.frames,
            "duration": info.frames / info.samplerate if info.samplerate else 0.0}


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int):
    import torchaudio

    return torchaudio.transforms.Resample(orig, new)


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample ``[..., N]`` with torchaudio's windowed-sinc resampler (kernel cached per rate pair)."""
    if orig_rate == new_rate:
        return waveform
    return _resampler(int(orig_rate), int(new_rate))(waveform)


def load_audio(path: str | Path, sample_rate: int, mono: bool = True, silence_threshold: float = 1e-6,
               allow_silent: bool = False) -> torch.Tensor:
    """Decode ``path``, mix to mono (channel mean), resample to ``sample_rate``: float32 ``[N]``.

    With ``mono=False`` the result is ``[C, N]``. Raises :class:`AudioError` (a ``ValueError``) naming the
    file when it is missing, undecodable, empty, non-finite, or silent (unless ``allow_silent``).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file has no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    peak = float(np.abs(data).max())
    if peak < silence_threshold and not allow_silent:
        raise AudioError(f"{path}: audio is silent (peak {peak:.2e} < {silence_threshold:.0e})")
    wave = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, N]
    if mono:
        wave = wave.mean(dim=0)
    wave = resample(wave, rate, sample_rate)
    return wave.to(torch.float32).contiguous()


def crop_window(n: int, length: int | None, seed=None) -> tuple[int, int]:
    """``(start, stop)`` of a random ``length``-sample window of ``n`` samples (all of them when not longer).

    ``seed``: an int or a sequence of ints (numpy ``SeedSequence`` entropy: the offset depends on nothing
    else), a ``torch.Generator``, or ``None`` (torch's global generator).
    """
    if not length or n <= length:
        return 0, n
    if seed is None or isinstance(seed, torch.Generator):
        start = int(torch.randint(0, n - length + 1, (1,), generator=seed))
    else:
        start = int(np.random.default_rng(seed).integers(0, n - length + 1))
    return start, start + length


def crop_or_pad(waveform: torch.Tensor, length: int, mode: str = "random",
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Return ``(waveform of exactly length samples, valid length)``.

    Longer input is cropped (``mode``: ``"random"`` offset drawn from ``generator``, ``"start"``, or
    ``"center"``); shorter input is right-padded with zeros and the valid length is the original length.
    """
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    n = waveform.shape[-1]
    if n >= length:
        if mode == "random":
            offset = crop_window(n, length, generator)[0]
        elif mode == "start":
            offset = 0
        elif mode == "center":
            offset = (n - length) // 2
        else:
            raise ValueError(f"Unknown crop mode {mode!r}; expected 'random', 'start' or 'center'")
        return waveform[..., offset:offset + length], length
    pad = torch.zeros(*waveform.shape[:-1], length - n, dtype=waveform.dtype)
    return torch.cat([waveform, pad], dim=-1), n


def validate_items(items, sample_rate: int | None = None, progress: bool = True):
    """Check every item's audio; return ``(good_items, problems)`` where problems maps clip_id -> message.

    Items without an audio path are reported as problems too. With ``sample_rate`` the audio is fully
    decoded and checked (slow, thorough); without it only the header is read (fast: catches missing,
    truncated-header and empty files).
    """
    from hybridlib.util.progress import progress_bar as tqdm

    good, problems = [], {}
    for item in tqdm(list(items), desc="checking audio", disable=not progress):
        if item.audio_path is None:
            problems[item.clip_id] = f"{item.clip_id}: no audio file on disk"
            continue
        try:
            if sample_rate is None:
                if audio_info(item.audio_path)["frames"] == 0:
                    raise AudioError(f"{item.audio_path}: audio file has no samples")
            else:
                load_audio(item.audio_path, sample_rate)
        except AudioError as exc:
            problems[item.clip_id] = str(exc)
            continue
        good.append(item)
    return good, problems
