"""Downloads: Clotho v2.1 (md5-checked, resumable, .7z extraction), AudioCaps instructions, model weights.

``python -m hybridlib download clotho [--root DIR] [--splits development validation evaluation] [--keep-archives]``
``python -m hybridlib download audiocaps``   prints how to obtain AudioCaps audio (not redistributable)
``python -m hybridlib download weights NAME [--dest DIR]``   official checkpoints of the audio encoders

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

Resume: a partial download lives in ``<file>.part``; the next call asks the server for the remaining
bytes (HTTP ``Range``) and appends; a server that ignores ``Range`` (status 200) restarts the file.
Completed files are checked against their md5 (a mismatch deletes the file and raises
:class:`DownloadError`), and a file already present with the right md5 is not fetched again.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from hybridlib.paths import data_dir


class DownloadError(RuntimeError):
    """A download failed or its checksum did not match; the message names the URL and the file."""


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
CLOTHO_SPLITS = ("development", "validation", "evaluation")

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
   (research.google.com/audioset/download.html) in one folder; pass it as audioset_labels=FOLDER.
"""


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest: str | Path, md5: str | None = None, progress: bool = True,
                  timeout: float = 60.0, chunk: int = 1 << 16) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part`` via HTTP Range), verify ``md5``; return ``dest``.

    An existing ``dest`` whose md5 matches is returned without network access (without ``md5``, any
    existing file is kept). On a checksum mismatch the bad file is deleted and :class:`DownloadError` raised.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    if dest.is_file() and (md5 is None or md5sum(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "hybridlib-downloader"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the .part file is complete
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason} (downloading to {dest})") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(f"{url}: {exc} (downloading to {dest}; rerun to resume)") from exc
    if response is not None:
        with response:
            status = getattr(response, "status", 200)
            mode = "ab" if have and status == 206 else "wb"
            if mode == "wb":
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, mode) as fh, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                               desc=dest.name, disable=not progress) as bar:
                try:
                    while block := response.read(chunk):
                        fh.write(block)
                        bar.update(len(block))
                except (OSError, TimeoutError, http.client.HTTPException) as exc:
                    raise DownloadError(f"{url}: connection lost after {fh.tell()} bytes; rerun to resume "
                                        f"({part} kept)") from exc
                if total is not None and fh.tell() < total:  # closed early without an error
                    raise DownloadError(f"{url}: connection closed after {fh.tell()} of {total} bytes; "
                                        f"rerun to resume ({part} kept)")
    if md5 is not None:
        got = md5sum(part)
        if got != md5:
            part.unlink()
            raise DownloadError(f"{url}: md5 mismatch for {dest.name}: expected {md5}, got {got} (file deleted)")
    part.replace(dest)
    return dest


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


def download_clotho(root: str | Path | None = None, splits=CLOTHO_SPLITS, keep_archives: bool = False,
                    progress: bool = True, base_url: str = CLOTHO_RECORD) -> Path:
    """Download and extract Clotho v2.1 below ``root`` (default :func:`hybridlib.paths.data_dir`)."""
    root = Path(root) if root is not None else data_dir()
    clotho = root / "CLOTHO_v2.1"
    csv_dir, audio_root = clotho / "clotho_csv_files", clotho / "clotho_audio_files"
    archives = clotho / "archives"
    for split in splits:
        if split not in CLOTHO_SPLITS:
            raise ValueError(f"Unknown Clotho split {split!r}; expected one of {CLOTHO_SPLITS}")
        for kind in ("captions", "metadata"):
            name = f"clotho_{kind}_{split}.csv"
            download_file(f"{base_url}/{name}?download=1", csv_dir / name, CLOTHO_FILES[name], progress)
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


# ---------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    parser.add_argument("what", choices=["clotho", "audiocaps", "weights"], help="what to download")
    parser.add_argument("name", nargs="?", help="weights: name of the checkpoint")
    parser.add_argument("--root", default=None, help="dataset root (default: hybridlib.paths.data_dir())")
    parser.add_argument("--dest", default=None, help="weights: destination folder")
    parser.add_argument("--splits", nargs="+", default=list(CLOTHO_SPLITS), choices=list(CLOTHO_SPLITS))
    parser.add_argument("--keep-archives", action="store_true", help="keep the .7z files after extraction")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    if args.what == "audiocaps":
        print(AUDIOCAPS_HELP)
        return 0
    try:
        if args.what == "clotho":
            root = download_clotho(args.root, args.splits, args.keep_archives, progress=not args.no_progress)
            print(f"Clotho v2.1 ready below {root / 'CLOTHO_v2.1'}")
            return 0
        if not args.name:
            print("error: download weights needs a NAME")
            return 2
        from hybridlib.models.audio.weights import download_weights  # owned by the encoder module

        print(f"weights saved to {download_weights(args.name, args.dest)}")
        return 0
    except DownloadError as exc:
        print(f"error: {exc}")
        return 1
