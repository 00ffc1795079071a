"""Dataset downloads: Clotho v2.1 (md5-checked, resumable, .7z extraction) and how to obtain AudioCaps.

Commands: ``python -m hybridlib download clotho [--root DIR] [--splits ...] [--keep-archives] [--csv-only]``
and ``python -m hybridlib download audiocaps`` (see :mod:`hybridlib.cli.download`). ``--csv-only`` fetches the
caption and metadata tables alone (six CSV files, a few MB, md5-checked; the audio archives are several GB),
enough for notebooks 01 and 02 to explore real Clotho captions and keywords. HTTP and checksums:
:mod:`hybridlib.util.fetch`.

Clotho ends up in the layout that :func:`hybridlib.data.load_clotho` reads and aac-datasets writes::

    {root}/CLOTHO_v2.1/clotho_csv_files/clotho_{captions,metadata}_{split}.csv
    {root}/CLOTHO_v2.1/clotho_audio_files/{split}/*.wav

Why not aac-datasets as the downloader (evaluated with ``pip download --no-deps aac-datasets``, version
0.7.0): its install requirements are ``datasets>=3.1`` (the Hugging Face library, with pyarrow and its
own dependency tree), ``huggingface-hub``, ``pythonwrench<0.5``, ``torchwrench<0.8`` and ``py7zr``: a large
dependency footprint for what is nine files with published md5 values, and the extra pins would constrain
ours. So the downloader is written here (standard-library HTTP with Range resume), extraction uses
``py7zr`` (pinned in requirements.txt; the ``7z``/``7za`` program is used when py7zr is missing), and the
layout stays aac-datasets compatible, so a Clotho folder prepared by aac-datasets is read as is.

Nothing the downloader did not write is deleted: an audio folder already there (aac-datasets leaves no
``.complete`` marker; a user may have filled it by hand) is checked against the clips its caption CSV names
(:func:`fill_clotho_audio`); complete, it is marked and kept; incomplete, the archive is extracted into a
staging folder of the downloader's own and only the missing clips are moved in. An archive already in
``archives/`` is used and kept; a CSV in place that is not the official file is refused, naming it.

Mirrors: ``download clotho --mirror URL`` or ``HYBRIDLIB_MIRROR=URL`` fetch the files under their official names
below ``URL`` (:func:`hybridlib.util.fetch.source_url`); the md5 sums of :data:`CLOTHO_FILES` are checked all the
same, nothing the mirror says about its files is trusted.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hybridlib.data.splits import DATASET_SPLITS, normalize_split
from hybridlib.paths import data_dir
from hybridlib.util.fetch import DownloadError, download_file, source_url

CLOTHO_RECORD = "https://zenodo.org/records/4783391/files"
# file name -> md5 (Clotho v2.1, Zenodo record 4783391)
CLOTHO_FILES: dict[str, str] = {
    "clotho_captions_development.csv": "d4090b39ce9f2491908eebf4d5b09bae",
    "clotho_captions_validation.csv": "5879e023032b22a2c930aaa0528bead4",
    "clotho_captions_evaluation.csv": "1b16b9e57cf7bdb7f13a13802aeb57e2",
    "clotho_metadata_development.csv": "170d20935ecfdf161ce1bb154118cda5",
    "clotho_metadata_validation.csv": "2e010427c56b1ce6008b0f03f41048ce",
    "clotho_metadata_evaluation.csv": "13946f054d4e1bf48079813aac61bf77",
    "clotho_audio_development.7z": "c8b05bc7acdb13895bb3c6a29608667e",
    "clotho_audio_validation.7z": "7dba730be08bada48bd15dc4e668df59",
    "clotho_audio_evaluation.7z": "4569624ccadf96223f19cb59fe4f849f",
}
CLOTHO_SPLITS = DATASET_SPLITS["clotho"]

AUDIOCAPS_HELP = """\
AudioCaps audio cannot be redistributed: it is cut from YouTube videos (some since removed).
1. Caption CSVs (train/val/test.csv): the official AudioCaps repository (github.com/cdjkim/audiocaps, dataset/).
2. Audio: fetch each clip's 10 s segment (youtube_id, start_time) yourself, e.g. with aac-datasets
   (pip install aac-datasets yt-dlp; needs ffmpeg):
       python -c "from aac_datasets import AudioCaps; AudioCaps('DIR', subset='val', download=True)"
   or with yt-dlp + ffmpeg directly; convert to 32 kHz FLAC named {youtube_id}_{start_time}.flac.
3. Layout read by hybridlib.data.load_audiocaps(DIR, split):
       DIR/AUDIOCAPS/csv_files_v1/{train,val,test}.csv
       DIR/AUDIOCAPS/audio_32000Hz/{train,val,test}/{youtube_id}_{start_time}.flac
   Missing clips (removed videos) are excluded and counted in the load report.
4. Closed-set tags: AudioSet class_labels_indices.csv + unbalanced_train_segments.csv + eval_segments.csv
   (research.google.com/audioset/download.html) in DIR/audioset/ (or DIR/AUDIOCAPS/, where aac-datasets puts
   them), or in any folder named by the config field audioset_labels (load_audiocaps(..., audioset_labels=FOLDER)).
   A config that uses CS tags stops with an error when they are missing.
"""


def extract_7z(archive: str | Path, out_dir: str | Path) -> Path:
    """Extract a .7z archive with py7zr (or the ``7z``/``7za`` program); return ``out_dir``."""
    archive, out_dir = Path(archive), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import py7zr
    except ImportError:
        program = shutil.which("7z") or shutil.which("7za")
        if program is None:
            raise DownloadError(f"{archive}: cannot extract .7z: pip install py7zr (or install p7zip)") from None
        subprocess.run([program, "x", "-y", f"-o{out_dir}", str(archive)], check=True, capture_output=True)
        return out_dir
    try:
        with py7zr.SevenZipFile(archive, mode="r") as z:
            z.extractall(path=out_dir)
    except Exception as exc:  # py7zr raises several exception types for broken archives
        raise DownloadError(f"{archive}: extraction failed ({exc})") from exc
    return out_dir


def clotho_csv_dir(root: str | Path | None = None) -> Path:
    """Where :func:`download_clotho` puts the caption and metadata tables below ``root`` (default data_dir)."""
    return (Path(root) if root is not None else data_dir()) / "CLOTHO_v2.1" / "clotho_csv_files"


def download_clotho(root: str | Path | None = None, splits=CLOTHO_SPLITS, keep_archives: bool = False,
                    progress: bool = True, base_url: str | None = None, csv_only: bool = False,
                    mirror: str | None = None) -> Path:
    """Download and extract Clotho v2.1 below ``root`` (default :func:`hybridlib.paths.data_dir`).

    ``csv_only``: only the caption and metadata CSVs of ``splits`` (md5-checked), no audio.
    ``mirror``: a base URL serving the files under their official names (default ``$HYBRIDLIB_MIRROR``, else
    Zenodo; see :func:`hybridlib.util.fetch.source_url`); ``base_url`` replaces the Zenodo record URL itself.
    Every file is checked against the official md5 in :data:`CLOTHO_FILES`, wherever it comes from.

    An audio folder that is already there (filled by an earlier run, by aac-datasets or by hand) is verified,
    never deleted: :func:`fill_clotho_audio` compares it with the clips the split's caption CSV names.
    """
    root = Path(root) if root is not None else data_dir()
    clotho = root / "CLOTHO_v2.1"
    csv_dir, audio_root = clotho / "clotho_csv_files", clotho / "clotho_audio_files"
    archives = clotho / "archives"

    def url(name: str) -> str:
        return source_url(f"{base_url or CLOTHO_RECORD}/{name}?download=1", name, mirror)

    for split in splits:
        split = normalize_split("clotho", split)
        for kind in ("captions", "metadata"):
            name = f"clotho_{kind}_{split}.csv"
            download_file(url(name), csv_dir / name, CLOTHO_FILES[name], progress)
        if csv_only:
            continue
        name = f"clotho_audio_{split}.7z"
        fill_clotho_audio(audio_root / split, clip_names(csv_dir / f"clotho_captions_{split}.csv"),
                          lambda name=name: download_file(url(name), archives / name, CLOTHO_FILES[name], progress),
                          archives / name, keep_archive=keep_archives)
    if archives.is_dir() and not any(archives.iterdir()):
        archives.rmdir()
    return root


COMPLETE = ".complete"  # marker of an audio folder that holds every clip its caption CSV names
STAGING_MARK = ".hybridlib-staging"  # marks an extraction folder as this downloader's own


def clip_names(captions_csv: str | Path) -> list[str]:
    """The clip file names a Clotho caption CSV lists (its ``file_name`` column), in file order."""
    from hybridlib.data.tables import read_csv_rows

    return [n for n in (row["file_name"].strip() for row in read_csv_rows(Path(captions_csv), ["file_name"])) if n]


def _present(folder: Path) -> dict[str, str]:
    """``{lower-case name: name}`` of the files in ``folder`` (a name in another letter case counts as there,
    as :func:`hybridlib.data.load_clotho` matches it)."""
    return {p.name.lower(): p.name for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def fill_clotho_audio(audio_dir: str | Path, expected: list[str], fetch_archive, archive: str | Path,
                      keep_archive: bool = False, show=print) -> dict:
    """Make ``audio_dir`` hold every clip of ``expected``, deleting nothing that is there.

    A folder marked ``.complete`` (by an earlier run) is left alone; delete the marker to have it checked again.
    Complete (every expected name there, in any letter case): marked with ``.complete`` and kept, nothing is
    fetched. Otherwise ``fetch_archive()`` provides the split's verified archive (a callable, so a complete
    folder costs no download), which is extracted into a staging folder of its own; only the files not there yet
    are moved in, files already there are kept as they are (those whose size differs from the archive's are named),
    and the staging folder is removed; the folder is then marked ``.complete`` (clips the caption CSV names but the
    official archive lacks are named, they cannot be fetched). One line says what was found. The archive is
    deleted after extraction unless ``keep_archive`` or it was there before this call (then it is not this call's
    to delete, e.g. one aac-datasets left in ``archives/``).

    Returns ``{"expected", "found", "added", "differ", "missing"}`` (counts; ``differ`` and ``missing`` lists).
    """
    audio_dir, archive = Path(audio_dir), Path(archive)
    if (audio_dir / COMPLETE).is_file():  # verified or extracted by an earlier run
        return {"expected": len(expected), "found": len(expected), "added": 0, "differ": [], "missing": []}
    present = _present(audio_dir)
    missing = [n for n in expected if n.lower() not in present]
    found = len(expected) - len(missing)
    info = {"expected": len(expected), "found": found, "added": 0, "differ": [], "missing": missing}
    if not missing:
        (audio_dir / COMPLETE).write_text(f"verified: all {len(expected)} clips of the caption CSV present\n")
        show(f"{audio_dir}: all {len(expected)} clips of the caption CSV are already there (not extracted by "
             "hybridlib): kept as they are and marked complete, nothing downloaded")
        return info
    if found:
        show(f"{audio_dir}: {found} of {len(expected)} clips of the caption CSV already there (kept as they are); "
             f"fetching the archive for the {len(missing)} missing")
    archive_was_there = archive.is_file()
    fetch_archive()
    staging = audio_dir.parent / f".{audio_dir.name}.extracting"
    if staging.exists():
        if not (staging / STAGING_MARK).is_file():
            raise DownloadError(f"{staging} is in the way of the extraction and was not written by hybridlib: "
                                "left as it is; move it away and rerun", 2)
        shutil.rmtree(staging)  # an earlier extraction of ours that was interrupted
    staging.mkdir(parents=True)
    (staging / STAGING_MARK).write_text("extraction folder of hybridlib.data.download; deleted when done\n")
    extract_7z(archive, staging)
    inner = staging / audio_dir.name if (staging / audio_dir.name).is_dir() else staging  # archives hold {split}/
    audio_dir.mkdir(parents=True, exist_ok=True)
    for src in sorted(inner.iterdir()):
        if not src.is_file() or src.name == STAGING_MARK:
            continue
        there = present.get(src.name.lower())
        if there is None:
            src.replace(audio_dir / src.name)
            present[src.name.lower()] = src.name
            info["added"] += 1
        elif (audio_dir / there).stat().st_size != src.stat().st_size:
            info["differ"].append(there)
    shutil.rmtree(staging)
    info["missing"] = [n for n in expected if n.lower() not in present]
    (audio_dir / COMPLETE).write_text(CLOTHO_FILES.get(archive.name, "") + "\n")  # the archive is all there is
    if found or info["differ"] or info["missing"]:
        show(f"{audio_dir}: {info['added']} clips extracted, {found} kept as they were"
             + (f"; {len(info['differ'])} of those differ in size from the archive's (kept, not replaced; to get the "
                f"official ones delete them and {COMPLETE}, then rerun): {_some(info['differ'])}" if info["differ"] else "")
             + (f"; {len(info['missing'])} clips of the caption CSV are not in the archive either: "
                f"{_some(info['missing'])}" if info["missing"] else ""))
    if not keep_archive and not archive_was_there:
        archive.unlink()
    return info


def _some(names: list[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")
