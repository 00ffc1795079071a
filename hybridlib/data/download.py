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
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hybridlib.data.splits import DATASET_SPLITS, normalize_split
from hybridlib.paths import data_dir
from hybridlib.util.fetch import DownloadError, download_file

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
                    progress: bool = True, base_url: str = CLOTHO_RECORD, csv_only: bool = False) -> Path:
    """Download and extract Clotho v2.1 below ``root`` (default :func:`hybridlib.paths.data_dir`).

    ``csv_only``: only the caption and metadata CSVs of ``splits`` (md5-checked), no audio.
    """
    root = Path(root) if root is not None else data_dir()
    clotho = root / "CLOTHO_v2.1"
    csv_dir, audio_root = clotho / "clotho_csv_files", clotho / "clotho_audio_files"
    archives = clotho / "archives"
    for split in splits:
        split = normalize_split("clotho", split)
        for kind in ("captions", "metadata"):
            name = f"clotho_{kind}_{split}.csv"
            download_file(f"{base_url}/{name}?download=1", csv_dir / name, CLOTHO_FILES[name], progress)
        if csv_only:
            continue
        audio_dir = audio_root / split
        if audio_dir.is_dir() and any(audio_dir.glob("*.wav")) and (audio_dir / ".complete").exists():
            continue
        name = f"clotho_audio_{split}.7z"
        archive = download_file(f"{base_url}/{name}?download=1", archives / name, CLOTHO_FILES[name], progress)
        staging = audio_root / f".{split}.extracting"
        if staging.exists():
            shutil.rmtree(staging)
        extract_7z(archive, staging)
        inner = staging / split if (staging / split).is_dir() else staging  # archives hold a {split}/ folder
        if audio_dir.exists():
            shutil.rmtree(audio_dir)
        inner.replace(audio_dir)
        shutil.rmtree(staging, ignore_errors=True)
        (audio_dir / ".complete").write_text(CLOTHO_FILES[name] + "\n")
        if not keep_archives:
            archive.unlink()
    if archives.is_dir() and not any(archives.iterdir()):
        archives.rmdir()
    return root
