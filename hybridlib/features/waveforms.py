"""torch ``Dataset`` s and collate functions: caption-level training pairs and clip-level evaluation sets.

Training (:class:`CaptionPairDataset`): one example per (clip, caption), as in Mei et al. and the hybrid
paper: an epoch visits every caption once. Each example carries the clip's waveform (random crop to
``max_seconds`` when given; crops draw from torch's global generator, which ``torch.manual_seed`` and the
DataLoader's per-worker seeding make reproducible), its metadata rendered as text
(:func:`hybridlib.data.metadata.metadata_text`), the caption, and the clip index (the retrieval target).

Evaluation (:class:`ClipDataset`): one example per clip with the whole waveform (no crop unless
``max_seconds`` is given, then the first ``max_seconds``); queries are ``items.captions`` with targets
``items.caption_targets`` (:class:`~hybridlib.data.items.ClipSet`).

Bad audio never crashes a batch: with ``check_audio`` (default ``"header"``; ``"full"`` decodes every
file) unreadable or missing files are excluded when the dataset is built and listed in ``.problems``.
``with_audio=False`` skips audio entirely (frozen backbones whose frames come from the feature cache).

Collated batches use the keys of the retrieval model's batch contract: ``clip_index`` Long[B],
``waveform`` [B, N] + ``lengths`` Long[B] (right zero-padding), ``metadata_text`` list[str | None],
``captions`` list[str], plus ``clip_ids`` and ``same_item`` Bool[B, B] (two captions of one clip in a batch,
for the losses' ``same_item`` argument).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from hybridlib.data.audio_io import crop_or_pad, load_audio, validate_items
from hybridlib.data.items import ClipSet, Item
from hybridlib.data.metadata import metadata_text
from hybridlib.util.tensors import pad_sequences


def _prepare(items: Sequence[Item], sample_rate: int, check_audio, with_audio: bool):
    items = list(items)
    problems: dict[str, str] = {}
    if with_audio and check_audio:
        if check_audio not in ("header", "full", True):
            raise ValueError(f"check_audio must be 'header', 'full' or False, got {check_audio!r}")
        items, problems = validate_items(items, sample_rate if check_audio == "full" else None, progress=False)
    return items, problems


class _AudioMixin:
    sample_rate: int
    max_seconds: float | None
    with_audio: bool

    def _audio(self, item: Item, random_crop: bool) -> dict:
        if not self.with_audio:
            return {}
        wave = load_audio(item.audio_path, self.sample_rate)
        length = wave.shape[0]
        if self.max_seconds is not None:
            limit = int(round(self.max_seconds * self.sample_rate))
            if length > limit:
                wave, length = crop_or_pad(wave, limit, mode="random" if random_crop else "start")
        return {"waveform": wave, "length": length}


class CaptionPairDataset(Dataset, _AudioMixin):
    """Caption-level training pairs (see the module docstring)."""

    def __init__(self, items: Sequence[Item], sample_rate: int, metadata_kind: str | None = "os",
                 max_seconds: float | None = None, random_crop: bool = True, check_audio="header",
                 with_audio: bool = True):
        self.items, self.problems = _prepare(items, sample_rate, check_audio, with_audio)
        self.sample_rate, self.max_seconds, self.with_audio = sample_rate, max_seconds, with_audio
        self.metadata_kind, self.random_crop = metadata_kind, random_crop
        self.pairs = [(ci, cap) for ci, it in enumerate(self.items) for cap in it.captions]
        self.metadata = [metadata_text(it, metadata_kind) if metadata_kind else None for it in self.items]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        clip, caption = self.pairs[index]
        item = self.items[clip]
        return {"clip_index": clip, "clip_id": item.clip_id, "caption": caption,
                "metadata_text": self.metadata[clip], **self._audio(item, self.random_crop)}


class ClipDataset(Dataset, _AudioMixin):
    """Clip-level evaluation set (see the module docstring); ``.items`` is a ClipSet of the kept clips."""

    def __init__(self, items: Sequence[Item], sample_rate: int, metadata_kind: str | None = "os",
                 max_seconds: float | None = None, check_audio="header", with_audio: bool = True):
        _, self.problems = _prepare(items, sample_rate, check_audio, with_audio)
        keep = [i for i, it in enumerate(items) if it.clip_id not in self.problems]
        self.items = (items if isinstance(items, ClipSet) else ClipSet(items)).subset(keep)
        self.sample_rate, self.max_seconds, self.with_audio = sample_rate, max_seconds, with_audio
        self.metadata = [metadata_text(it, metadata_kind) if metadata_kind else None for it in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        return {"clip_index": index, "clip_id": item.clip_id, "metadata_text": self.metadata[index],
                **self._audio(item, random_crop=False)}


def _collate_common(batch: list[dict]) -> dict:
    index = torch.tensor([b["clip_index"] for b in batch], dtype=torch.long)
    out = {"clip_index": index, "clip_ids": [b["clip_id"] for b in batch],
           "metadata_text": [b["metadata_text"] for b in batch]}
    if "waveform" in batch[0]:
        out["waveform"], _ = pad_sequences([b["waveform"] for b in batch])
        out["lengths"] = torch.tensor([b["length"] for b in batch], dtype=torch.long)
    return out


def collate_pairs(batch: list[dict]) -> dict:
    """Collate :class:`CaptionPairDataset` examples (keys in the module docstring)."""
    out = _collate_common(batch)
    out["captions"] = [b["caption"] for b in batch]
    out["same_item"] = out["clip_index"][:, None] == out["clip_index"][None, :]
    return out


def collate_clips(batch: list[dict]) -> dict:
    """Collate :class:`ClipDataset` examples (no captions)."""
    return _collate_common(batch)
