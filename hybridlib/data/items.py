"""The one item model shared by every dataset: :class:`Item`, :class:`ClipSet` and its :class:`LoadReport`.

An *item* is one audio clip with its queries (captions) and its metadata in the three kinds of the hybrid
paper (Primus & Widmer): OS = open-set keywords, CS = closed-set class names, FS = a full-sentence
description. ``None`` always means "this clip has no metadata of that kind" (as opposed to an empty list).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

from hybridlib.util.errors import UserError


class DatasetError(UserError):
    """A dataset file is missing, malformed or inconsistent; the message names the file and the field."""


@dataclass
class Item:
    """One audio clip (see the module docstring)."""

    clip_id: str
    audio_path: Path | None
    captions: list[str]
    keywords: list[str] | None = None
    tags: list[str] | None = None
    description: str | None = None
    split: str = ""
    dataset: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.audio_path is not None and not isinstance(self.audio_path, Path):
            self.audio_path = Path(self.audio_path)

    @property
    def has_audio(self) -> bool:
        return self.audio_path is not None and self.audio_path.is_file()

    def copy(self) -> Item:
        """A deep copy (lists and ``extra`` are not shared with the original)."""
        return copy.deepcopy(self)


@dataclass
class LoadReport:
    """What a loader kept and what it had to drop or mark, so nothing is lost silently.

    ``clips``: items returned; ``captions``: total captions over them; ``missing_metadata``: items whose
    clip has no metadata row (``keywords``/``tags`` None); ``missing_audio``: clips whose audio file is not
    on disk (kept with ``audio_path=None`` or excluded, see ``excluded``); ``excluded``: clips dropped;
    ``bad_audio``: ``{clip_id: reason}`` of the clips dropped because their audio is missing or unusable
    (:func:`hybridlib.data.audio_io.screen_audio`) or their file name leads out of the audio folder
    (:class:`hybridlib.util.filenames.FolderGuard`).
    """

    dataset: str = ""
    split: str = ""
    clips: int = 0
    captions: int = 0
    missing_metadata: int = 0
    missing_audio: int = 0
    excluded: int = 0
    metadata_without_clip: int = 0
    bad_audio: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sources: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __str__(self) -> str:
        parts = [f"{self.dataset}/{self.split}: {self.clips} clips, {self.captions} captions",
                 f"{self.missing_metadata} without metadata", f"{self.missing_audio} without audio on disk"]
        if self.excluded:
            parts.append(f"{self.excluded} excluded" + (f" ({len(self.bad_audio)} for missing or unusable audio)"
                                                       if self.bad_audio else ""))
        if self.metadata_without_clip:
            parts.append(f"{self.metadata_without_clip} metadata rows without a clip")
        return ", ".join(parts)


def match_file_case(path: Path) -> tuple[Path | None, str | None]:
    """``(file, hint)``: ``path`` itself when it is a file; else the one file of its folder whose name differs
    from it only in letter case; else ``(None, hint)`` where ``hint`` names the several case variants found
    (None when there is none). The folder listing is cached per folder for one call sequence."""
    if path.is_file():
        return path, None
    variants = _case_index(path.parent).get(path.name.lower(), [])
    if len(variants) == 1:
        return path.parent / variants[0], None
    if variants:
        return None, f"several files differ from it only in letter case: {', '.join(sorted(variants))}"
    return None, None


_CASE_INDEX: dict[tuple[str, int], dict[str, list[str]]] = {}


def _case_index(folder: Path) -> dict[str, list[str]]:
    try:
        stamp = folder.stat().st_mtime_ns
    except OSError:
        return {}
    key = (str(folder), stamp)
    if key not in _CASE_INDEX:
        index: dict[str, list[str]] = {}
        for entry in folder.iterdir():
            index.setdefault(entry.name.lower(), []).append(entry.name)
        if len(_CASE_INDEX) > 64:
            _CASE_INDEX.clear()
        _CASE_INDEX[key] = index
    return _CASE_INDEX[key]


class ClipSet(list):
    """A list of :class:`Item` with a :class:`LoadReport` (``.report``) describing how it was loaded."""

    def __init__(self, items: Iterable[Item] = (), report: LoadReport | None = None):
        super().__init__(items)
        self.report = report if report is not None else LoadReport(clips=len(self))

    def __getitem__(self, index):
        result = super().__getitem__(index)
        if isinstance(index, slice):
            return ClipSet(result, self._derived_report(result))
        return result

    def _derived_report(self, items: list[Item]) -> LoadReport:
        rep = copy.deepcopy(self.report)
        rep.clips = len(items)
        rep.captions = sum(len(it.captions) for it in items)
        rep.missing_metadata = sum(it.keywords is None and it.tags is None and it.description is None
                                   for it in items)
        rep.missing_audio = sum(it.audio_path is None for it in items)
        return rep

    def subset(self, indices: Iterable[int]) -> ClipSet:
        """A new ClipSet with the items at ``indices`` (report recounted)."""
        items = [list.__getitem__(self, i) for i in indices]
        return ClipSet(items, self._derived_report(items))

    def exclude(self, reasons: dict[str, str], field: str = "bad_audio") -> ClipSet:
        """A new ClipSet without the clips named in ``reasons`` (``{clip_id: why}``), recorded in the report's
        ``field`` (a dict) and counted in ``excluded``; the other counts describe the clips kept."""
        if not reasons:
            return self
        keep = [i for i, it in enumerate(self) if it.clip_id not in reasons]
        out = self.subset(keep)
        out.report.missing_audio = self.report.missing_audio  # as found on disk, before exclusion
        out.report.excluded = self.report.excluded + sum(it.clip_id in reasons for it in self)
        setattr(out.report, field, {**getattr(self.report, field), **reasons})
        return out

    def by_id(self) -> dict[str, Item]:
        return {it.clip_id: it for it in self}

    @property
    def captions(self) -> list[str]:
        """All captions, flattened in item order."""
        return [c for it in self for c in it.captions]

    @property
    def caption_targets(self) -> list[int]:
        """For each caption of :attr:`captions`, the index of its item (the retrieval ground truth)."""
        return [i for i, it in enumerate(self) for _ in it.captions]

    def __repr__(self) -> str:
        return f"ClipSet({len(self)} items; {self.report})"
