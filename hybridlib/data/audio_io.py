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

from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from hybridlib.util.errors import UserError
from hybridlib.util.files import file_stamp

if TYPE_CHECKING:  # torch is imported where it is used, so configs can name the check policies cheaply
    import torch


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
    import torch

    wave = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, N]
    if mono:
        wave = wave[0] if wave.shape[0] == 1 else wave.mean(dim=0)  # one channel: no copy (same values)
    wave = resample(wave, rate, sample_rate)
    return wave.to(torch.float32).contiguous()


def crop_window(n: int, length: int | None, seed=None) -> tuple[int, int]:
    """``(start, stop)`` of a random ``length``-sample window of ``n`` samples (all of them when not longer).

    ``seed``: an int or a sequence of ints (numpy ``SeedSequence`` entropy: the offset depends on nothing
    else), a ``torch.Generator``, or ``None`` (torch's global generator).
    """
    import torch

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
    import torch

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


AUDIO_CHECKS = ("header", "full")
BAD_AUDIO_POLICIES = ("exclude", "error")
AUDIO_CHECK_MEMO = "audio-checks"  # folder below the cache root remembering full checks
_BLOCK_FRAMES = 1 << 18  # frames decoded at a time by the full check (bounded memory for hour-long files)


class BadAudioError(AudioError):
    """Clips with unusable audio under the ``error`` policy; the message lists every one of them."""


def check_audio_file(path: str | Path, check: str = "full", silence_threshold: float = 1e-6) -> None:
    """Raise :class:`AudioError` naming ``path`` when it is unusable; return None when it is fine.

    ``check="header"`` reads the header only (missing, unreadable header, no samples: milliseconds per
    file); ``"full"`` also decodes every sample at the file's own rate, block by block (no resampling,
    memory bounded whatever the length) and refuses undecodable data, NaN/Inf samples and digital silence
    (peak below ``silence_threshold``; the README's rule: a silent clip is an error, never a training example).
    """
    if check not in AUDIO_CHECKS:
        raise ValueError(f"check must be one of {AUDIO_CHECKS}, got {check!r}")
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    if audio_info(path)["frames"] == 0:
        raise AudioError(f"{path}: audio file has no samples")
    if check == "header":
        return
    peak, frames = 0.0, 0
    try:
        for block in sf.blocks(str(path), blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                raise AudioError(f"{path}: audio contains NaN or infinite samples")
            frames += block.shape[0]
            if block.size:
                peak = max(peak, float(np.abs(block).max()))
    except AudioError:
        raise
    except Exception as exc:  # libsndfile errors on damaged data after a good header
        raise AudioError(f"{path}: cannot decode audio ({exc})") from exc
    if frames == 0:
        raise AudioError(f"{path}: audio file has no samples")
    if peak < silence_threshold:
        raise AudioError(f"{path}: audio is silent (peak {peak:.2e} < {silence_threshold:.0e})")


def _file_key(path: Path) -> str:
    return "|".join(file_stamp(path).values())


def validate_items(items, sample_rate: int | None = None, progress: bool = True, *, check: str | None = None,
                   silence_threshold: float = 1e-6, memo_dir: str | Path | None = None):
    """Check every item's audio; return ``(good_items, problems)``: the usable items in input order and
    ``{clip_id: one-line reason naming the file}`` for the others (nothing raised, every clip looked at).

    ``check``: ``"header"`` or ``"full"`` (see :func:`check_audio_file`); None keeps the older call form:
    ``"full"`` when ``sample_rate`` is given, else ``"header"``. Items without an audio path are problems
    ("no audio file on disk"); a file that exists only with another letter case is named in the reason.

    ``memo_dir``: a folder where the outcome of a full check is remembered per set of files (keyed by each
    file's :func:`~hybridlib.util.files.file_stamp`: resolved path, size, modification and change time; the
    check and the threshold), so a second run over unchanged files reads one small JSON file instead of
    decoding everything again.
    """
    from hybridlib.util.progress import progress_bar as tqdm

    if check is None:
        check = "full" if sample_rate is not None else "header"
    if check not in AUDIO_CHECKS:
        raise ValueError(f"check must be one of {AUDIO_CHECKS}, got {check!r}")
    items = list(items)
    problems: dict[str, str] = {}
    present = []
    for item in items:
        if item.audio_path is None:
            hint = item.extra.get("audio_hint") if isinstance(getattr(item, "extra", None), dict) else None
            problems[item.clip_id] = f"{item.clip_id}: no audio file on disk" + (f" ({hint})" if hint else "")
        elif not Path(item.audio_path).is_file():
            problems[item.clip_id] = f"{item.audio_path}: audio file not found"
        else:
            present.append(item)

    memo_path, remembered = None, None
    if memo_dir is not None and check == "full" and present:
        import hashlib
        import json

        blob = json.dumps([check, silence_threshold, sorted(_file_key(Path(it.audio_path)) for it in present)])
        memo_path = Path(memo_dir) / f"{hashlib.sha1(blob.encode()).hexdigest()[:20]}.json"
        if memo_path.is_file():
            try:
                remembered = json.loads(memo_path.read_text(encoding="utf-8"))["bad_files"]
            except (ValueError, KeyError, TypeError, OSError):
                remembered = None  # damaged memo: check again
    bad_files: dict[str, str] = {}
    if remembered is not None:
        bad_files = {str(k): str(v) for k, v in remembered.items()}
    else:
        for item in tqdm(present, desc=f"checking audio ({check})", disable=not progress, leave=False):
            try:
                check_audio_file(item.audio_path, check, silence_threshold)
            except AudioError as exc:
                bad_files[str(item.audio_path)] = str(exc)
        if memo_path is not None:
            import json

            from hybridlib.util.files import atomic_write_text

            atomic_write_text(memo_path, json.dumps({"bad_files": bad_files}, indent=1))
    for item in present:
        reason = bad_files.get(str(item.audio_path))
        if reason is not None:
            problems[item.clip_id] = reason
    problems = {it.clip_id: problems[it.clip_id] for it in items if it.clip_id in problems}  # input order
    good = [it for it in items if it.clip_id not in problems]
    return good, problems


def describe_bad_audio(problems: dict[str, str], where: str = "", limit: int = 20) -> str:
    """One line: how many clips are unusable and why (the first ``limit`` named; the rest counted)."""
    shown = [f"{clip if clip.isprintable() else repr(clip)} ({_short_reason(reason)})"  # a NUL byte stays visible
             for clip, reason in list(problems.items())[:limit]]
    more = len(problems) - len(shown)
    place = f" in {where}" if where else ""
    return (f"{len(problems)} clip(s) with unusable audio{place}: " + ", ".join(shown)
            + (f", and {more} more" if more > 0 else ""))


def _short_reason(reason: str) -> str:
    """``"/long/path/a.wav: audio is silent (peak ...)"`` -> ``"audio is silent"``."""
    text = reason.split(": ", 1)[1] if ": " in reason else reason
    return text.split(" (peak")[0]


def screen_audio(items, *, check: str = "full", on_bad: str = "exclude", progress: bool = True,
                 where: str = "", memo_dir: str | Path | None | bool = True):
    """:func:`validate_items` plus a policy: the usable clips as a :class:`~hybridlib.data.items.ClipSet`.

    ``on_bad="exclude"``: unusable clips are dropped and recorded in the returned set's
    ``report.bad_audio`` (``{clip_id: reason}``) and ``report.excluded``; ``"error"``: raise
    :class:`BadAudioError` listing them all (one line) instead. ``memo_dir``: see :func:`validate_items`;
    ``True`` (default) remembers full checks below the feature cache (``<cache>/audio-checks``), None or False
    never remembers.
    """
    from hybridlib.data.items import ClipSet

    if memo_dir is True:
        from hybridlib.paths import cache_dir

        memo_dir = cache_dir() / AUDIO_CHECK_MEMO
    memo_dir = memo_dir or None
    if on_bad not in BAD_AUDIO_POLICIES:
        raise ValueError(f"on_bad must be one of {BAD_AUDIO_POLICIES}, got {on_bad!r}")
    clips = items if isinstance(items, ClipSet) else ClipSet(items)
    _, problems = validate_items(clips, progress=progress, check=check, memo_dir=memo_dir)
    if problems and on_bad == "error":
        raise BadAudioError(describe_bad_audio(problems, where) + " (bad_audio=error; 'exclude' drops them "
                            "and lists them in the run's data_report.json)")
    return clips.exclude(problems, field="bad_audio")
