"""Reader for AudioCaps (Kim et al.) with closed-set tags from AudioSet.

Layout (the aac-datasets layout; ``root`` may be the folder holding ``AUDIOCAPS`` or that folder)::

    {root}/AUDIOCAPS/audio_32000Hz/{train,val,test}/{youtube_id}_{start_time}.flac   (.wav/.ogg also found)
    {root}/AUDIOCAPS/csv_files_v1/{train,val,test}.csv    (or directly in AUDIOCAPS/)

CSV columns ``audiocap_id, youtube_id, start_time, caption``: one row per caption; train clips have one
caption, val/test clips five. Rows are grouped into one :class:`~hybridlib.data.items.Item` per
``(youtube_id, start_time)`` with ``clip_id = "{youtube_id}_{start_time}"``.

AudioCaps audio cannot be redistributed (it is cut from YouTube videos, some of them since removed). To
use it: obtain the clips yourself (e.g. with the official AudioCaps repository's instructions or
aac-datasets' ``AudioCaps(root, download=True)``, which uses yt-dlp and ffmpeg), convert them to 32 kHz
FLAC named ``{youtube_id}_{start_time}.flac`` and place them as above. Clips missing on disk (removed
videos) are excluded and counted in the load report (``missing_audio``/``excluded``), never silently;
``require_audio=False`` keeps them with ``audio_path=None`` (enough for caption statistics). A clip whose
``{youtube_id}_{start_time}`` is no plain file name (a ``/``, ``..``, a NUL byte) or whose file is a symbolic
link out of the audio folder is always left out and named (:class:`hybridlib.util.filenames.FolderGuard`).

Closed-set (CS) tags: AudioSet's ``class_labels_indices.csv`` (``index, mid, display_name``) and one or
more segment CSVs (``YTID, start_seconds, end_seconds, positive_labels``; AudioCaps clips are in
``unbalanced_train_segments.csv`` and ``eval_segments.csv``). Pass ``audioset_labels`` as a folder holding
these files, a mapping ``youtube_id -> [class names]`` (see :func:`load_audioset_labels`), or None (no tags).
Clips without an AudioSet row get ``tags=None`` and count as missing metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hybridlib.data.items import ClipSet, DatasetError, Item, LoadReport
from hybridlib.data.splits import normalize_split
from hybridlib.data.tables import csv_records, read_csv_rows, read_text
from hybridlib.util.filenames import FolderGuard

AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg")


def _root(root: Path) -> Path:
    return root / "AUDIOCAPS" if (root / "AUDIOCAPS").is_dir() else root


def locate_audiocaps(root: str | Path, split: str) -> dict[str, Path]:
    split = normalize_split("audiocaps", split)
    base = _root(Path(root))
    for csv_dir in (base / "csv_files_v1", base / "csv_files", base):
        if (csv_dir / f"{split}.csv").is_file():
            audio_dir = next((d for d in (base / "audio_32000Hz" / split, base / "audio" / split, base / split)
                              if d.is_dir()), base / "audio_32000Hz" / split)
            return {"captions": csv_dir / f"{split}.csv", "audio_dir": audio_dir, "split": split}
    raise DatasetError(f"No AudioCaps {split}.csv below {base} (looked in csv_files_v1/, csv_files/ and the "
                       "folder itself). See the docstring of hybridlib.data.audiocaps for how to get AudioCaps.")


def read_audioset_segments(path: str | Path) -> dict[str, tuple[float, list[str]]]:
    """``YTID -> (start_seconds, [label mids])`` from an AudioSet segments CSV (``#`` header lines)."""
    path = Path(path)
    rows: dict[str, tuple[float, list[str]]] = {}
    for lineno, values in csv_records(path, read_text(path)):
        if not values or values[0].startswith("#"):
            continue
        if len(values) != 4:
            raise DatasetError(f"{path}: line {lineno} should have 4 fields (YTID, start_seconds, end_seconds, "
                               f"positive_labels), has {len(values)}")
        try:
            start = float(values[1])
        except ValueError:
            raise DatasetError(f"{path}: line {lineno}: start_seconds {values[1]!r} is not a number") from None
        rows[values[0]] = (start, [m.strip() for m in values[3].split(",") if m.strip()])
    return rows


def load_audioset_labels(class_indices: str | Path, segments: str | Path | Iterable[str | Path]
                         ) -> dict[str, list[str]]:
    """``youtube_id -> [display names]`` from AudioSet's class list and segment CSV(s)."""
    classes = {r["mid"]: r["display_name"] for r in read_csv_rows(Path(class_indices), ["mid", "display_name"])}
    files = [segments] if isinstance(segments, (str, Path)) else list(segments)
    labels: dict[str, list[str]] = {}
    for file in files:
        for ytid, (_, mids) in read_audioset_segments(file).items():
            unknown = [m for m in mids if m not in classes]
            if unknown:
                raise DatasetError(f"{file}: {ytid} has label ids {unknown} not in {class_indices}")
            labels[ytid] = [classes[m] for m in mids]
    return labels


def _resolve_labels(audioset_labels) -> dict[str, list[str]] | None:
    if audioset_labels is None or isinstance(audioset_labels, dict):
        return audioset_labels
    folder = Path(audioset_labels)
    indices = folder / "class_labels_indices.csv"
    segments = sorted(folder.glob("*segments*.csv"))
    if not indices.is_file() or not segments:
        raise DatasetError(f"{folder}: expected class_labels_indices.csv and *segments*.csv for AudioSet tags")
    return load_audioset_labels(indices, segments)


def load_audiocaps(root: str | Path, split: str, audioset_labels=None, require_audio: bool = True) -> ClipSet:
    """Load one AudioCaps split (``train|val|test``) as a :class:`ClipSet` (see the module docstring)."""
    where = locate_audiocaps(root, split)
    split = where["split"]
    notes: list[str] = []
    rows = read_csv_rows(where["captions"], ["audiocap_id", "youtube_id", "start_time", "caption"], notes=notes)
    labels = _resolve_labels(audioset_labels)
    report = LoadReport(dataset="audiocaps", split=split, sources={k: str(v) for k, v in where.items()}, notes=notes)
    grouped: dict[str, dict] = {}
    for lineno, row in enumerate(rows, start=2):
        ytid = row["youtube_id"].strip()
        try:
            start = int(float(row["start_time"]))
        except ValueError:
            raise DatasetError(f"{where['captions']}: line {lineno}: start_time {row['start_time']!r} "
                               "is not a number") from None
        if not ytid:
            raise DatasetError(f"{where['captions']}: line {lineno}: empty youtube_id")
        entry = grouped.setdefault(f"{ytid}_{start}", {"ytid": ytid, "start": start, "captions": [], "ids": []})
        if row["caption"].strip():
            entry["captions"].append(row["caption"].strip())
            entry["ids"].append(row["audiocap_id"])
    audio_dir = where["audio_dir"]
    on_disk = {p.stem: p for p in audio_dir.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS} \
        if audio_dir.is_dir() else {}
    if not audio_dir.is_dir():
        report.notes.append(f"audio folder {audio_dir} not found (see hybridlib.data.audiocaps for how to get it)")
    items = []
    by_lower: dict[str, list[str]] | None = None
    guard = FolderGuard(audio_dir, "audio folder")
    for clip_id, entry in grouped.items():
        path = on_disk.get(clip_id)
        refusal = guard.refusal(clip_id) or (guard.refusal(path.name) if path is not None else None)
        if refusal is not None:  # named and left out whatever require_audio says: nothing there is opened
            report.excluded += 1
            report.bad_audio[clip_id] = refusal
            continue
        if path is None:
            report.missing_audio += 1
            if by_lower is None:
                by_lower = {}
                for stem, p in on_disk.items():
                    by_lower.setdefault(stem.lower(), []).append(p.name)
            # YouTube ids are case-sensitive, so a file differing only in case is another video: named, not used
            variants = by_lower.get(clip_id.lower(), [])
            hint = f" (on disk only with another letter case: {', '.join(variants)})" if variants else ""
            if require_audio:
                report.excluded += 1
                report.bad_audio[clip_id] = f"{audio_dir / clip_id}.flac: audio file not found{hint}"
                continue
            if hint:
                entry["hint"] = hint.strip(" ()")
        tags = labels.get(entry["ytid"]) if labels is not None else None
        if tags is None:
            report.missing_metadata += 1
        items.append(Item(clip_id=clip_id, audio_path=path, captions=entry["captions"], tags=tags, split=split,
                          dataset="audiocaps", extra={"youtube_id": entry["ytid"], "start_time": entry["start"],
                                                      "audiocap_ids": entry["ids"],
                                                      **({"audio_hint": entry["hint"]} if "hint" in entry else {})}))
    report.clips = len(items)
    report.captions = sum(len(it.captions) for it in items)
    if require_audio and report.missing_audio:
        report.notes.append(f"{report.missing_audio} clips excluded: audio not on disk (removed videos or not "
                            "downloaded)")
    return ClipSet(items, report)
