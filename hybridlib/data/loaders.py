"""One entry point for every dataset's reader: :func:`load_split` (dispatch on the dataset's name)."""

from __future__ import annotations

from pathlib import Path

from hybridlib.data.items import ClipSet
from hybridlib.data.splits import check_dataset


#: readers that leave clips without an audio file out unless told to keep them (``require_audio=False``)
EXCLUDES_MISSING_AUDIO = ("audiocaps", "wavcaps-fs")


def keep_missing_audio(dataset: str) -> dict:
    """The :func:`load_split` keywords that keep clips without an audio file in the ClipSet (``audio_path=None``),
    so :func:`hybridlib.data.audio_io.screen_audio` names them with the other unusable clips."""
    return {"require_audio": False} if dataset in EXCLUDES_MISSING_AUDIO else {}


def load_split(dataset: str, root: str | Path, split: str, **kwargs) -> ClipSet:
    """``split`` of ``dataset`` below ``root``: the teaching set and Clotho via
    :func:`~hybridlib.data.clotho.load_clotho`, AudioCaps via :func:`~hybridlib.data.audiocaps.load_audiocaps`,
    WavCaps' FreeSound subset via :func:`~hybridlib.data.wavcaps.load_wavcaps_freesound` (``kwargs`` go to the
    reader, e.g. ``audioset_labels``)."""
    check_dataset(dataset)
    if dataset == "audiocaps":
        from hybridlib.data.audiocaps import load_audiocaps

        return load_audiocaps(root, split, **kwargs)
    if dataset == "wavcaps-fs":
        from hybridlib.data.wavcaps import load_wavcaps_freesound

        return load_wavcaps_freesound(root, split, **kwargs)
    from hybridlib.data.clotho import load_clotho

    return load_clotho(root, split, **kwargs)
