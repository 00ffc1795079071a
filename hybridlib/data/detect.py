"""What a folder holds: the teaching set, Clotho (either layout), AudioCaps, or WavCaps' FreeSound subset.

:func:`find_datasets` lists every dataset the readers of :mod:`hybridlib.data` would find below a root (captions
tables only, no audio decoded); :func:`detect_dataset` picks the one a root holds (or the one asked for) and
raises a one-line :class:`~hybridlib.data.items.DatasetError` naming what it looked for when there is none::

    {root}/teaching.json                                        the teaching set (Clotho layout + its marker)
    {root}/[CLOTHO_v2.1/]clotho_csv_files/clotho_captions_*.csv Clotho, aac-datasets layout
    {root}/clotho_captions_*.csv                                Clotho, Zenodo layout (archives extracted)
    {root}/[AUDIOCAPS/][csv_files_v1/]{train,val,test}.csv      AudioCaps (with AudioSet label files or not)
    {root}/[WavCaps/]json_files/FreeSound/fsd_final.json        WavCaps' FreeSound subset

A generated teaching set is written in Clotho's layout; its ``teaching.json`` makes it the teaching set. The
rehearsal's folder (:mod:`hybridlib.data.rehearsal`) holds Clotho, AudioCaps and WavCaps side by side: there
the dataset must be named (``dataset=``), or the root pointed at one of its subfolders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hybridlib.data.items import DatasetError
from hybridlib.data.splits import DATASET_SPLITS, dataset_splits

TEACHING_MARKER = "teaching.json"
NAMES = {"teaching": "teaching set", "clotho": "Clotho", "audiocaps": "AudioCaps",
         "wavcaps-fs": "WavCaps FreeSound"}
LOOKED_FOR = ("teaching.json (teaching set), CLOTHO_v2.1/clotho_csv_files/clotho_captions_<split>.csv or "
              "clotho_captions_<split>.csv (Clotho), AUDIOCAPS/csv_files_v1/<split>.csv (AudioCaps), "
              "WavCaps/json_files/FreeSound/fsd_final.json (WavCaps FreeSound)")


@dataclass(frozen=True)
class FoundDataset:
    """One dataset found below ``root``: its name (a :data:`~hybridlib.data.splits.DATASET_SPLITS` key), the
    layout, and for AudioCaps the folder of AudioSet's label files (None: no closed-set tags)."""

    dataset: str
    root: Path
    layout: str
    audioset_labels: Path | None = None

    @property
    def label(self) -> str:
        """``"Clotho (aac-datasets layout)"``, ``"AudioCaps (with AudioSet labels)"``, ``"teaching set"``."""
        return f"{NAMES[self.dataset]} ({self.layout})" if self.layout else NAMES[self.dataset]


def _clotho_layout(root: Path) -> str | None:
    from hybridlib.data.clotho import locate_clotho

    for split in DATASET_SPLITS["clotho"]:
        try:
            where = locate_clotho(root, split)
        except DatasetError:
            continue
        return "aac-datasets layout" if where["captions"].parent.name == "clotho_csv_files" else "Zenodo layout"
    return None


def find_audioset_labels(root: str | Path) -> Path | None:
    """The folder holding AudioSet's ``class_labels_indices.csv`` for an AudioCaps ``root``: the first of
    ``root/audioset``, ``root/AUDIOSET``, ``root/AUDIOCAPS`` (where aac-datasets keeps them) and ``root`` itself."""
    root = Path(root)
    return next((folder for folder in (root / "audioset", root / "AUDIOSET", root / "AUDIOCAPS", root)
                 if (folder / "class_labels_indices.csv").is_file()), None)


def _has_audiocaps(root: Path) -> bool:
    from hybridlib.data.audiocaps import locate_audiocaps

    for split in DATASET_SPLITS["audiocaps"]:
        try:
            locate_audiocaps(root, split)
        except DatasetError:
            continue
        return True
    return False


def find_datasets(root: str | Path) -> list[FoundDataset]:
    """Every dataset below ``root`` (see the module docstring); a teaching set is listed as the teaching set
    only (not also as Clotho). An empty list when there is none or ``root`` does not exist."""
    root = Path(root)
    if not root.is_dir():
        return []
    if (root / TEACHING_MARKER).is_file():
        return [FoundDataset("teaching", root, "")]
    found = []
    layout = _clotho_layout(root)
    if layout:
        found.append(FoundDataset("clotho", root, layout))
    if _has_audiocaps(root):
        labels = find_audioset_labels(root)
        found.append(FoundDataset("audiocaps", root, "with AudioSet labels" if labels else "no AudioSet labels",
                                  labels))
    from hybridlib.data.wavcaps import JSON_PATH, wavcaps_root

    if (wavcaps_root(root) / JSON_PATH).is_file():
        found.append(FoundDataset("wavcaps-fs", root, ""))
    return found


def detect_dataset(root: str | Path, dataset: str | None = None) -> FoundDataset:
    """The dataset ``root`` holds (``dataset`` given: that one, checked to be there).

    :class:`DatasetError` (one line) when ``root`` does not exist, holds no dataset (naming what was looked
    for), holds several and ``dataset`` is None (naming them), or does not hold ``dataset``.
    """
    root = Path(root)
    if dataset is not None and dataset not in DATASET_SPLITS:
        raise DatasetError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASET_SPLITS)} (or None: "
                           "recognised from the folder)")
    if not root.exists():
        raise DatasetError(f"data folder {root} does not exist")
    found = find_datasets(root)
    if dataset is not None:
        match = [f for f in found if f.dataset == dataset]
        if dataset == "clotho" and not match and found and found[0].dataset == "teaching":
            match = [FoundDataset("clotho", root, "teaching set in Clotho's layout")]  # read as plain Clotho
        if not match:
            holds = ", ".join(f.label for f in found) or "no dataset"
            raise DatasetError(f"{root} holds {holds}, not {NAMES[dataset]} (looked for {LOOKED_FOR})")
        return match[0]
    if not found:
        raise DatasetError(f"{root}: no dataset recognised (looked for {LOOKED_FOR})")
    if len(found) > 1:
        raise DatasetError(f"{root} holds several datasets ({', '.join(f.label for f in found)}): name one "
                           f"(dataset= in a config, DATASET in a notebook: {', '.join(f.dataset for f in found)}) "
                           "or point at its own folder")
    return found[0]


def split_summary(found: FoundDataset, **kwargs) -> dict[str, dict[str, int]]:
    """Per split of ``found``, as its reader loads it (captions tables; ``kwargs`` go to the reader): clips,
    captions, clips with two captions or more (``multi_caption``: the FS protocol moves one to the metadata), and
    clips with open-set keywords (``keywords``) and with closed-set tags (``tags``)."""
    from hybridlib.data.loaders import load_split

    summary = {}
    for split in dataset_splits(found.dataset):
        try:
            items = list(load_split(found.dataset, found.root, split, **kwargs))
        except DatasetError:
            items = []
        summary[split] = {"clips": len(items), "captions": sum(len(it.captions) for it in items),
                          "multi_caption": sum(len(it.captions) >= 2 for it in items),
                          "keywords": sum(bool(it.keywords) for it in items),
                          "tags": sum(bool(it.tags) for it in items)}
    return summary
