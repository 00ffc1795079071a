"""Reader for Clotho v2.1 (Drossos et al.), in both on-disk layouts, and for the teaching set.

Layouts (``root`` may be either the folder holding ``CLOTHO_v2.1`` or that folder itself):

* **aac-datasets layout** (also written by ``python -m hybridlib download clotho`` and the teaching set)::

      {root}/CLOTHO_v2.1/clotho_csv_files/clotho_captions_{split}.csv
      {root}/CLOTHO_v2.1/clotho_csv_files/clotho_metadata_{split}.csv
      {root}/CLOTHO_v2.1/clotho_audio_files/{split}/*.wav

* **flat Zenodo layout** (archives extracted side by side)::

      {root}/clotho_captions_{split}.csv   {root}/clotho_metadata_{split}.csv   {root}/{split}/*.wav

Captions CSV: ``file_name, caption_1..caption_5``. Metadata CSV (ISO-8859-1 in the official release):
``file_name, keywords`` (``;``-separated open-set tags) and ``sound_id, sound_link, start_end_samples,
manufacturer, license`` (kept in ``Item.extra``). The teaching set adds a ``tags`` column (closed-set
class names, ``;``-separated) read into ``Item.tags``.

Clips without a metadata row are kept with ``keywords=None`` and counted as ``missing_metadata``
(the real Clotho v1 metadata covers 2893 of the 3839 v2.1 development clips). Clips whose wav is
not on disk are kept with ``audio_path=None`` and counted as ``missing_audio`` (caption statistics need no
audio), unless ``require_audio=True``, which excludes them, counts them as ``excluded`` and names them in
``bad_audio``. Training screens the clips it uses (:func:`hybridlib.data.audio_io.screen_audio`), so a clip
without audio is excluded and reported there, never a crash in the feature cache.

File names are matched exactly first; a CSV name whose file exists on disk only with another letter case
(``Rain.wav`` listed, ``rain.wav`` extracted) is matched to that file and counted in the report's notes, as
a case-insensitive file system (Windows, macOS) would do; when several files differ from it only in case,
the clip counts as missing and its reason names them.

A file name must name a file inside its split's audio folder (:class:`hybridlib.util.filenames.FolderGuard`):
an absolute path, a ``..`` part, a NUL byte or a symbolic link leading out of the folder (the folder itself may
be a link) leaves the row out, counted in ``excluded`` and named in ``bad_audio`` with the reason; nothing at
that path is opened. A case-insensitive match is held to the same rule.
"""

from __future__ import annotations

from pathlib import Path

from hybridlib.data.items import ClipSet, DatasetError, Item, LoadReport, match_file_case
from hybridlib.data.splits import normalize_split
from hybridlib.data.tables import read_csv_rows
from hybridlib.util.filenames import FolderGuard

CAPTION_COLUMNS = [f"caption_{i}" for i in range(1, 6)]
METADATA_EXTRA = ["sound_id", "sound_link", "start_end_samples", "manufacturer", "license"]


def locate_clotho(root: str | Path, split: str) -> dict[str, Path | None]:
    """Find the captions CSV, metadata CSV (or None) and audio folder of ``split`` below ``root``."""
    root = Path(root)
    split = normalize_split("clotho", split)
    candidates = [
        (root / "CLOTHO_v2.1" / "clotho_csv_files", root / "CLOTHO_v2.1" / "clotho_audio_files" / split),
        (root / "clotho_csv_files", root / "clotho_audio_files" / split),
        (root, root / split),
    ]
    for csv_dir, audio_dir in candidates:
        captions = csv_dir / f"clotho_captions_{split}.csv"
        if captions.is_file():
            metadata = csv_dir / f"clotho_metadata_{split}.csv"
            return {"captions": captions, "metadata": metadata if metadata.is_file() else None,
                    "audio_dir": audio_dir}
    tried = ", ".join(str(c / f"clotho_captions_{split}.csv") for c, _ in candidates)
    raise DatasetError(f"No Clotho captions for split {split!r} below {root} (tried {tried}). "
                       "Download with `python -m hybridlib download clotho --root DIR`.")


def split_list(value: str | None, sep: str = ";") -> list[str]:
    """``"a;b; c;"`` -> ``["a", "b", "c"]``."""
    if value is None:
        return []
    return [v.strip() for v in value.split(sep) if v.strip()]


def load_clotho(root: str | Path, split: str, require_audio: bool = False,
                dataset: str | None = None) -> ClipSet:
    """Load one Clotho split as a :class:`ClipSet` of :class:`Item` (see the module docstring).

    ``dataset`` (the items' ``dataset`` field) defaults to ``"teaching"`` when ``root`` holds a generated
    teaching set (``teaching.json``), else ``"clotho"``.
    """
    split = normalize_split("clotho", split)
    if dataset is None:
        dataset = "teaching" if (Path(root) / "teaching.json").is_file() else "clotho"
    where = locate_clotho(root, split)
    report_notes: list[str] = []
    rows = read_csv_rows(where["captions"], ["file_name", *CAPTION_COLUMNS], notes=report_notes)
    report = LoadReport(dataset=dataset, split=split, sources={k: str(v) if v else None for k, v in where.items()},
                        notes=report_notes)

    metadata: dict[str, dict] = {}
    if where["metadata"] is not None:
        for row in read_csv_rows(where["metadata"], ["file_name", "keywords"], notes=report.notes):
            name = row["file_name"].strip()
            if name in metadata:
                raise DatasetError(f"{where['metadata']}: duplicate file_name {name!r}")
            metadata[name] = row
    else:
        report.notes.append(f"no metadata CSV for {split}: every clip marked as missing metadata")

    items: list[Item] = []
    seen: set[str] = set()
    audio_dir = where["audio_dir"]
    guard = FolderGuard(audio_dir, "audio folder")
    case_matched: list[str] = []
    for row in rows:
        name = row["file_name"].strip()
        if not name:
            raise DatasetError(f"{where['captions']}: empty file_name in a row")
        if name in seen:
            raise DatasetError(f"{where['captions']}: duplicate file_name {name!r}")
        seen.add(name)
        captions = [row[c].strip() for c in CAPTION_COLUMNS if row.get(c, "").strip()]
        if not captions:
            report.excluded += 1
            report.notes.append(f"{name}: no captions, excluded")
            continue
        path, refusal = guard.locate(name)
        audio_path, hint = match_file_case(path) if path is not None else (None, None)
        if audio_path is not None and audio_path != path:  # a case variant: an entry of the same folder
            refusal = guard.refusal(str(Path(name).with_name(audio_path.name)))
            if refusal is None:
                case_matched.append(f"{name} -> {audio_path.name}")
        if refusal is not None:  # named and left out whatever require_audio says: nothing there is opened
            report.excluded += 1
            report.bad_audio[name] = refusal
            continue
        if audio_path is None:
            report.missing_audio += 1
            if require_audio:
                report.excluded += 1
                report.bad_audio[name] = f"{path}: audio file not found" + (f" ({hint})" if hint else "")
                continue
        meta = metadata.get(name)
        item = Item(clip_id=name, audio_path=audio_path, captions=captions, split=split, dataset=dataset)
        if hint:
            item.extra["audio_hint"] = hint
        if meta is None:
            report.missing_metadata += 1
        else:
            item.keywords = split_list(meta.get("keywords"))
            if "tags" in meta:
                item.tags = split_list(meta.get("tags"))
            item.extra.update({k: meta[k] for k in METADATA_EXTRA if meta.get(k, "") != ""})
        items.append(item)
    if case_matched:
        report.notes.append(f"{len(case_matched)} file name(s) matched on disk only ignoring letter case: "
                            + ", ".join(case_matched[:10]) + (" ..." if len(case_matched) > 10 else ""))
    report.metadata_without_clip = len(set(metadata) - seen)
    report.clips = len(items)
    report.captions = sum(len(it.captions) for it in items)
    return ClipSet(items, report)


def has_clotho(root: str | Path | None, split: str = "development") -> bool:
    """Whether ``root`` holds Clotho's caption table of ``split`` (either layout; audio not needed), e.g. after
    ``python -m hybridlib download clotho --csv-only``."""
    if root is None:
        return False
    try:
        locate_clotho(root, split)
    except DatasetError:
        return False
    return True
