"""Datasets, metadata and audio I/O of hybrid-retrieval.

* :mod:`~hybridlib.data.items` - the item model (:class:`Item`, :class:`ClipSet` with a load report)
* :mod:`~hybridlib.data.clotho`, :mod:`~hybridlib.data.audiocaps`, :mod:`~hybridlib.data.wavcaps` - readers of
  the real datasets (:func:`~hybridlib.data.loaders.load_split` dispatches on the name)
* :mod:`~hybridlib.data.detect` - what a folder holds (teaching set, Clotho in either layout, AudioCaps, WavCaps)
* :mod:`~hybridlib.data.metadata` - OS/CS/FS rendering, the FS protocol, degradation knobs
* :mod:`~hybridlib.data.metadata_retrieval` - zero-shot metadata-only retrieval with a frozen text encoder
* :mod:`~hybridlib.data.audio_io` - reading, resampling, crop/pad policy (needs torch)
* :mod:`~hybridlib.data.teaching`, :mod:`~hybridlib.data.sound_synthesis` - the generated teaching set
* :mod:`~hybridlib.data.download` - dataset downloads (md5-checked, resumable)
* :mod:`~hybridlib.data.splits` - dataset and split names (the one table)
* :mod:`~hybridlib.data.rehearsal` - miniature datasets from real audio and real rows in the official layouts

Modules needing torch are imported on first use, so ``import hybridlib.data`` stays light.
"""

from __future__ import annotations

import importlib

from hybridlib.data.clotho import load_clotho
from hybridlib.data.items import ClipSet, DatasetError, Item, LoadReport
from hybridlib.data.metadata import (
    degrade_metadata,
    keyword_caption_frequencies,
    metadata_text,
    with_fs_descriptions,
)

_LAZY = {
    "load_audiocaps": "hybridlib.data.audiocaps",
    "load_audioset_labels": "hybridlib.data.audiocaps",
    "load_wavcaps_freesound": "hybridlib.data.wavcaps",
    "AudioError": "hybridlib.data.audio_io",
    "load_audio": "hybridlib.data.audio_io",
    "crop_or_pad": "hybridlib.data.audio_io",
    "ensure_teaching_set": "hybridlib.data.teaching",
    "make_teaching_set": "hybridlib.data.teaching",
    "download_clotho": "hybridlib.data.download",
    "detect_dataset": "hybridlib.data.detect",
}

__all__ = ["ClipSet", "DatasetError", "Item", "LoadReport", "load_clotho", "degrade_metadata",
           "keyword_caption_frequencies", "metadata_text", "with_fs_descriptions",
           *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hybridlib.data' has no attribute {name!r}")
