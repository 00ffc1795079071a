"""Waveforms for trainable backbones: decoded and resampled once, then read as arrays every epoch.

A trainable backbone needs the clip's waveform at its own rate in every epoch. Decoding a 30-s clip and
resampling it (44.1 kHz -> 32 kHz) costs tens of milliseconds of CPU; reading the stored float32 array costs
well under one. :class:`WaveformCache` keeps one safetensors file per (audio file, target rate)::

    <root>/waveforms/<rate>hz/<hh>/<sha1 of the resolved audio path>.safetensors     float32 [N]

Each entry records the audio file's stamp (:func:`hybridlib.util.files.file_stamp`: resolved path, size,
modification and change time) and the rate; an entry
whose stamp no longer matches, or that cannot be read (truncated, corrupt), is recomputed and replaced.
Writes are atomic (temporary file + rename), so concurrent workers or runs never see half an entry. The
stored array is exactly what :func:`hybridlib.data.audio_io.load_audio` returns, so a run reads the same
samples whether the cache is cold, warm or switched off (``TrainConfig.waveform_cache``). Disk use: 4 bytes
x rate x seconds (a 30-s clip at 32 kHz: 3.8 MB; Clotho's 3839 development clips at 32 kHz: about 11 GB).

Crops (training): :func:`~hybridlib.data.audio_io.crop_window` draws the offset of a ``length``-sample
window from a seed given per example (``None``: torch's global generator), so a crop depends only on that
seed, never on which process reads the clip or in what order; a cached entry is read through a slice (only
the window's bytes).

Bad clips: :func:`readable_items` runs before a split is built. With a cache it fills it (every clip decoded
once, ``num_workers`` DataLoader workers in parallel) and excludes the clips that fail to decode (missing,
corrupt, empty, non-finite); without one it reads the headers only (missing, truncated, empty files), and
a clip whose body is corrupt then stops training with an :class:`~hybridlib.data.audio_io.AudioError`
naming the file. Digitally silent clips are kept, as in the frozen-feature extraction.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from hybridlib.data.audio_io import AudioError, crop_window, load_audio, validate_items
from hybridlib.util.files import file_stamp

WAVEFORM_CACHE_VERSION = 1  # bump when the meaning of a stored waveform changes


class WaveformCache:
    """Resampled waveforms on disk (see the module docstring); ``stats`` counts hits and computed entries."""

    def __init__(self, root: str | Path | None = None):
        if root is None:
            from hybridlib.paths import cache_dir

            root = cache_dir()
        self.root = Path(root)
        self.stats: Counter = Counter()  # waveform_hits, waveform_computed

    def folder(self, sample_rate: int) -> Path:
        return self.root / "waveforms" / f"{int(sample_rate)}hz"

    def entry_path(self, audio_path: str | Path, sample_rate: int) -> Path:
        key = hashlib.sha1(str(Path(audio_path).resolve()).encode()).hexdigest()
        return self.folder(sample_rate) / key[:2] / f"{key}.safetensors"

    def load(self, audio_path: str | Path, sample_rate: int, crop_length: int | None = None,
             crop_seed=None) -> torch.Tensor:
        """float32 ``[N]`` at ``sample_rate`` (or the window ``crop_window`` picks), from the cache when
        the entry is current, else decoded, resampled and stored."""
        from safetensors import safe_open

        audio_path = Path(audio_path)
        if not audio_path.is_file():
            raise AudioError(f"{audio_path}: audio file not found")
        stamp = {**file_stamp(audio_path), "sample_rate": str(int(sample_rate)),
                 "version": str(WAVEFORM_CACHE_VERSION)}
        entry = self.entry_path(audio_path, sample_rate)
        if entry.is_file():
            try:
                with safe_open(str(entry), framework="pt") as f:
                    meta = f.metadata() or {}
                    if all(meta.get(k) == v for k, v in stamp.items()):
                        data = f.get_slice("waveform")
                        start, stop = crop_window(data.get_shape()[0], crop_length, crop_seed)
                        wave = data[start:stop]
                        self.stats["waveform_hits"] += 1
                        return wave
            except Exception:  # noqa: BLE001 - unreadable entry (truncated, corrupt): recompute it
                pass
        wave = load_audio(audio_path, sample_rate, allow_silent=True)
        self.store(wave, entry, stamp)
        self.stats["waveform_computed"] += 1
        start, stop = crop_window(wave.numel(), crop_length, crop_seed)
        return wave[start:stop]

    @staticmethod
    def store(wave: torch.Tensor, entry: Path, stamp: dict[str, str]) -> None:
        from hybridlib.features.cache import save_tensors

        save_tensors({"waveform": wave}, entry, stamp)

    def fill(self, items: Sequence, sample_rate: int, num_workers: int = 0, progress: bool = True
             ) -> dict[str, str]:
        """Make every item's entry current (``num_workers`` DataLoader workers decode in parallel).

        Returns ``{clip_id: reason}`` for the items whose audio cannot be read (no file, undecodable, empty,
        non-finite); the hit/computed counts of all processes are added to ``stats``.
        """
        from torch.utils.data import DataLoader

        from hybridlib.util.progress import progress_bar as tqdm

        items = list(items)
        loader = DataLoader(_FillJobs(self, items, sample_rate), batch_size=None, num_workers=num_workers,
                            collate_fn=as_is, generator=torch.Generator().manual_seed(0))
        problems = {}
        # a bar beside the loader, not around it: tqdm.auto's wrapper calls iter() on what it wraps, which
        # would start a second set of workers
        with tqdm(total=len(items), desc=f"waveforms {sample_rate} Hz", disable=not progress, leave=False) as bar:
            for clip_id, problem, counts in loader:
                if problem:
                    problems[clip_id] = problem
                if num_workers:  # in-process reads already counted themselves
                    self.stats.update(counts)
                bar.update(1)
        return problems

    def clear(self) -> None:
        """Delete every stored waveform below ``root``."""
        import shutil

        shutil.rmtree(self.root / "waveforms", ignore_errors=True)


class _FillJobs(torch.utils.data.Dataset):
    """One job per item: make its entry current; yields ``(clip_id, problem or "", stats counts)``."""

    def __init__(self, cache: WaveformCache, items: list, sample_rate: int):
        self.cache, self.items, self.sample_rate = cache, items, sample_rate

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        before = Counter(self.cache.stats)
        if item.audio_path is None:
            return item.clip_id, f"{item.clip_id}: no audio file on disk", Counter()
        try:
            self.cache.load(item.audio_path, self.sample_rate, crop_length=1, crop_seed=0)
        except AudioError as exc:
            return item.clip_id, str(exc), Counter()
        return item.clip_id, "", Counter(self.cache.stats) - before


def as_is(sample):
    """``collate_fn`` for a DataLoader whose dataset returns whole samples (``batch_size=None``)."""
    return sample


def read_waveform(audio_path: str | Path, sample_rate: int, cache: WaveformCache | None = None,
                  crop_length: int | None = None, crop_seed=None) -> torch.Tensor:
    """A clip's waveform at ``sample_rate`` (optionally the window ``crop_window`` picks), through
    ``cache`` when given, else decoded and resampled now; the samples are identical either way."""
    if cache is not None:
        return cache.load(audio_path, sample_rate, crop_length, crop_seed)
    wave = load_audio(audio_path, sample_rate, allow_silent=True)
    start, stop = crop_window(wave.numel(), crop_length, crop_seed)
    return wave[start:stop]


def readable_items(items: Sequence, sample_rate: int, cache: WaveformCache | None = None, num_workers: int = 0,
                   progress: bool = True) -> tuple[list, dict[str, str]]:
    """``(kept items, {clip_id: reason})``: the items whose audio can be read (see the module docstring)."""
    items = list(items)
    if cache is not None:
        problems = cache.fill(items, sample_rate, num_workers=num_workers, progress=progress)
    else:
        _, problems = validate_items(items, None, progress=False)
    return [it for it in items if it.clip_id not in problems], problems
