"""download_file against a local HTTP server (Range resume, truncation, md5), .7z extraction, Clotho flow."""

from __future__ import annotations

import hashlib
import shutil
from argparse import Namespace

import pytest

from hybridlib.data import download as dl
from hybridlib.data import load_clotho
from hybridlib.data.download import extract_7z
from hybridlib.util.fetch import DownloadError, download_file

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_and_reuse(file_server, tmp_path):
    url = file_server.url
    file_server.files["/f.bin"] = PAYLOAD
    out = download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert out.read_bytes() == PAYLOAD and not (tmp_path / "f.bin.part").exists()
    n = len(file_server.log)
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert len(file_server.log) == n  # verified file reused, no request


def test_resume_with_range(file_server, tmp_path):
    url = file_server.url
    file_server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:300_000])
    out = download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert file_server.log[-1]["range"] == "bytes=300000-"


def test_interrupted_download_resumes_on_rerun(file_server, tmp_path):
    url = file_server.url
    file_server.files["/f.bin"] = PAYLOAD
    file_server.truncate_once.add("/f.bin")
    with pytest.raises(DownloadError, match="rerun to resume"):
        download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    kept = (tmp_path / "f.bin.part").stat().st_size
    assert 0 < kept < len(PAYLOAD)
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert file_server.log[-1]["range"] == f"bytes={kept}-"


def test_server_ignoring_range_restarts(file_server, tmp_path):
    url = file_server.url
    file_server.files["/f.bin"] = PAYLOAD
    file_server.ignore_range.add("/f.bin")
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_md5_mismatch_and_http_errors(file_server, tmp_path):
    url = file_server.url
    file_server.files["/f.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="md5 mismatch for f.bin"):
        download_file(f"{url}/f.bin", tmp_path / "f.bin", md5="0" * 32, progress=False)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{url}/missing.bin", tmp_path / "m.bin", progress=False)


def test_extract_7z(tmp_path):
    import py7zr  # pinned in requirements.txt: a missing one is a failure, not a skip
    src = tmp_path / "src" / "development"
    src.mkdir(parents=True)
    (src / "a.wav").write_bytes(b"RIFFdata")
    with py7zr.SevenZipFile(tmp_path / "a.7z", "w") as z:
        z.writeall(src, arcname="development")
    out = extract_7z(tmp_path / "a.7z", tmp_path / "out")
    assert (out / "development" / "a.wav").read_bytes() == b"RIFFdata"
    (tmp_path / "broken.7z").write_bytes(b"7z but not really")
    with pytest.raises(DownloadError, match="broken.7z"):
        extract_7z(tmp_path / "broken.7z", tmp_path / "out2")


@pytest.mark.slow
def test_download_clotho_flow(file_server, tmp_path, shared_data, monkeypatch):
    """Real v2.1 caption CSVs (official md5s) + a stand-in metadata CSV and audio archive."""
    import py7zr  # pinned in requirements.txt: a missing one is a failure, not a skip
    url = file_server.url
    v21 = shared_data("clotho", "v2.1")
    wav = shared_data("clotho", "audio") / "Distorted AM Radio noise.wav"
    captions = (v21 / "clotho_captions_development.csv").read_bytes()
    assert hashlib.md5(captions).hexdigest() == dl.CLOTHO_FILES["clotho_captions_development.csv"]
    metadata = b"file_name,keywords\nDistorted AM Radio noise.wav,noise;radio\n"
    stage = tmp_path / "stage" / "development"
    stage.mkdir(parents=True)
    shutil.copy(wav, stage)
    with py7zr.SevenZipFile(tmp_path / "audio.7z", "w") as z:
        z.writeall(stage, arcname="development")
    archive = (tmp_path / "audio.7z").read_bytes()
    file_server.files.update({"/clotho_captions_development.csv": captions,
                           "/clotho_metadata_development.csv": metadata,
                           "/clotho_audio_development.7z": archive})
    monkeypatch.setitem(dl.CLOTHO_FILES, "clotho_metadata_development.csv", hashlib.md5(metadata).hexdigest())
    monkeypatch.setitem(dl.CLOTHO_FILES, "clotho_audio_development.7z", hashlib.md5(archive).hexdigest())
    root = dl.download_clotho(tmp_path / "data", splits=["development"], progress=False, base_url=url)
    dev = load_clotho(root, "development")
    assert len(dev) == 3839 and dev.report.missing_audio == 3838
    radio = dev.by_id()["Distorted AM Radio noise.wav"]
    assert radio.keywords == ["noise", "radio"] and radio.audio_path.read_bytes() == wav.read_bytes()
    assert not (root / "CLOTHO_v2.1" / "archives").exists()  # archives removed after extraction
    n = len(file_server.log)
    dl.download_clotho(tmp_path / "data", splits=["development"], progress=False, base_url=url)
    assert len(file_server.log) == n  # everything verified in place, nothing fetched again


def test_cli_audiocaps_and_weights(capsys, monkeypatch, tmp_path):
    from hybridlib.cli import download as cli_download
    from hybridlib.models import audio

    assert cli_download.run(Namespace(what="audiocaps")) == 0
    assert "cannot be redistributed" in capsys.readouterr().out
    calls = []
    monkeypatch.setattr(audio, "fetch_weights", lambda name, dest=None, progress=True, mirror=None:
                        calls.append((name, dest)) or tmp_path / f"{name}.pth")
    args = Namespace(what="weights", name="panns-cnn14", dest=str(tmp_path), no_progress=True, mirror=None)
    assert cli_download.run(args) == 0 and calls == [("panns-cnn14", str(tmp_path))]
    from hybridlib.util.errors import UserError

    with pytest.raises(UserError, match="needs a NAME, one of .*panns-cnn14"):  # the valid names are listed
        cli_download.run(Namespace(what="weights", name=None, dest=None, no_progress=True, mirror=None))


def test_download_clotho_csv_only(file_server, tmp_path, shared_data, monkeypatch, capsys):
    """`download clotho --csv-only`: the six tables, md5-checked (real v2.1 caption CSVs with their official
    md5s; stand-in metadata CSVs), no audio archive requested; load_clotho reads the result."""
    import functools

    from hybridlib.cli import download as cli_download

    url = file_server.url
    v21 = shared_data("clotho", "v2.1")
    for split in dl.CLOTHO_SPLITS:
        captions = (v21 / f"clotho_captions_{split}.csv").read_bytes()
        metadata = f"file_name,keywords\nclip_{split}.wav,a;b\n".encode()
        file_server.files[f"/clotho_captions_{split}.csv"] = captions
        file_server.files[f"/clotho_metadata_{split}.csv"] = metadata
        monkeypatch.setitem(dl.CLOTHO_FILES, f"clotho_metadata_{split}.csv", hashlib.md5(metadata).hexdigest())
    monkeypatch.setattr(dl, "download_clotho", functools.partial(dl.download_clotho, base_url=url))
    args = Namespace(what="clotho", name=None, root=str(tmp_path / "data"), splits=list(dl.CLOTHO_SPLITS),
                     keep_archives=False, no_progress=True, csv_only=True)
    assert cli_download.run(args) == 0
    assert "caption and metadata tables ready in" in capsys.readouterr().out
    assert sorted(entry["path"] for entry in file_server.log) == sorted(file_server.files)  # no .7z asked for
    csv_dir = dl.clotho_csv_dir(tmp_path / "data")
    assert sorted(p.name for p in csv_dir.iterdir()) == sorted(n.lstrip("/") for n in file_server.files)
    assert not (tmp_path / "data" / "CLOTHO_v2.1" / "clotho_audio_files").exists()
    dev = load_clotho(tmp_path / "data", "development")
    assert len(dev) == 3839 and dev.report.missing_audio == 3839 and dev.report.metadata_without_clip == 1
    n = len(file_server.log)
    assert cli_download.run(args) == 0 and len(file_server.log) == n  # verified in place, nothing fetched again
    file_server.files["/clotho_captions_validation.csv"] = b"tampered"
    (csv_dir / "clotho_captions_validation.csv").unlink()
    with pytest.raises(DownloadError, match="md5 mismatch for clotho_captions_validation.csv"):
        cli_download.run(args)


# ---------------------------------------------------------------------------------------------------------------
# Mirrors and folders already there, through the command a user runs (`hybridlib download clotho --mirror URL`).
# Which checksums are trusted: only the official table CLOTHO_FILES, never anything a mirror serves. The real v2.1
# archives are gigabytes, so the tests serve a three-clip development split (real audio, real caption rows) and
# put the md5 sums of those stand-in files into CLOTHO_FILES for the test's own process (monkeypatch.setitem,
# undone after the test); everything else is the downloader's real code path. test_clotho_mirror_env_var_* runs
# the command in a subprocess with the official table untouched (real caption CSV, official md5).
CLIPS = ["Distorted AM Radio noise.wav", "Paper_Parchment_Rustling.wav", "03 Whales Slowing Down.wav"]
SOUNDS = ["sounds_airplane_prop.ogg", "sounds_apple_bite.ogg"]  # real sounds standing in for two Clotho clips
DEV_FILES = ("clotho_captions_development.csv", "clotho_metadata_development.csv", "clotho_audio_development.7z")


@pytest.fixture(scope="module")
def clotho_mirror_files(tmp_path_factory):
    """``({official name: bytes}, {clip name: bytes})``: a three-clip Clotho development split (real caption rows,
    real audio: the shared Clotho clip and two soundbank sounds, a real .7z built with py7zr), built once."""
    import py7zr  # pinned in requirements.txt
    import soundfile as sf
    from conftest import require_shared

    rows = (require_shared("clotho", "v2.1") / DEV_FILES[0]).read_text(encoding="utf-8").splitlines()
    assert [r.split(",")[0] for r in rows[1:4]] == CLIPS  # real caption rows of these three clips
    tmp = tmp_path_factory.mktemp("clotho-mirror")
    stage = tmp / "stage" / "development"
    stage.mkdir(parents=True)
    shutil.copy(require_shared("clotho", "audio") / CLIPS[0], stage)
    for name, sound in zip(CLIPS[1:], SOUNDS):
        audio, rate = sf.read(require_shared("soundbank-modsounds", "sounds", sound))
        sf.write(stage / name, audio, rate)
    with py7zr.SevenZipFile(tmp / "archive.7z", "w") as z:
        z.writeall(stage, arcname="development")
    files = {DEV_FILES[0]: ("\n".join(rows[:4]) + "\n").encode(),
             DEV_FILES[1]: ("file_name,keywords\n" + "".join(f"{n},kw{i};real\n" for i, n in enumerate(CLIPS))).encode(),
             DEV_FILES[2]: (tmp / "archive.7z").read_bytes()}
    return files, {n: (stage / n).read_bytes() for n in CLIPS}


@pytest.fixture
def clotho_mirror(clotho_mirror_files, file_server, monkeypatch):
    """``(url, clips)``: the server as a mirror of :func:`clotho_mirror_files` under the official names, their md5
    sums standing in for the official ones in CLOTHO_FILES for this test."""
    files, clips = clotho_mirror_files
    for name, data in files.items():
        file_server.files[f"/{name}"] = data
        monkeypatch.setitem(dl.CLOTHO_FILES, name, hashlib.md5(data).hexdigest())
    return file_server.url, clips


def _download(root, *extra, mirror=None):
    from hybridlib.cli import main

    return main(["download", "clotho", "--root", str(root), "--splits", "development", "--no-progress",
                 *(["--mirror", mirror] if mirror else []), *extra])


def _audio(root):
    return root / "CLOTHO_v2.1" / "clotho_audio_files" / "development"


def test_clotho_from_a_mirror_then_verified_in_place(clotho_mirror, file_server, tmp_path, capsys):
    url, clips = clotho_mirror
    root = tmp_path / "data"
    assert _download(root, mirror=url + "/") == 0  # a trailing slash is fine
    assert file_server.requested() == [f"/{n}" for n in DEV_FILES]  # the official names, below the mirror
    dev = load_clotho(root, "development")
    assert [it.clip_id for it in dev] == CLIPS and dev.report.missing_audio == 0
    assert all(it.audio_path.read_bytes() == clips[it.clip_id] for it in dev)
    assert dev.by_id()[CLIPS[1]].keywords == ["kw1", "real"]
    assert not (root / "CLOTHO_v2.1" / "archives").exists() and (_audio(root) / ".complete").is_file()
    assert sorted(p.name for p in _audio(root).parent.iterdir()) == ["development"]  # no staging folder left
    capsys.readouterr()
    assert _download(root, mirror=url) == 0 and len(file_server.log) == 3  # verified in place, nothing fetched
    folder = tmp_path / "mirror"  # a folder as the mirror (file:// URL): the same files, the same checks
    folder.mkdir()
    for name in DEV_FILES:
        (folder / name).write_bytes(file_server.files[f"/{name}"])
    assert _download(tmp_path / "from-folder", mirror=folder.as_uri()) == 0
    assert all((_audio(tmp_path / "from-folder") / n).read_bytes() == d for n, d in clips.items())
    (folder / DEV_FILES[1]).unlink()
    assert _download(tmp_path / "from-folder-2", mirror=folder.as_uri()) == 2
    assert f"{folder.as_uri()}/{DEV_FILES[1]}: no such file" in capsys.readouterr().err


def test_a_complete_folder_someone_else_filled_is_kept_and_marked(clotho_mirror, file_server, tmp_path, capsys):
    """As aac-datasets leaves it (no .complete marker; one name in another letter case, a file of the user's):
    verified against the caption CSV, kept byte for byte, marked; the archive is not even fetched."""
    url, clips = clotho_mirror
    root = tmp_path / "data"
    _audio(root).mkdir(parents=True)
    for name, data in clips.items():
        (_audio(root) / (name.upper() if name == CLIPS[2] else name)).write_bytes(data)
    (_audio(root) / "my notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in _audio(root).iterdir()}
    assert _download(root, mirror=url) == 0
    assert f"/{DEV_FILES[2]}" not in file_server.requested()
    out = capsys.readouterr().out
    assert "all 3 clips of the caption CSV are already there" in out and "kept as they are and marked complete" in out
    assert {p.name: p.read_bytes() for p in _audio(root).iterdir() if p.name != ".complete"} == before
    assert (_audio(root) / ".complete").is_file() and len(load_clotho(root, "development")) == 3


def test_a_partial_folder_gets_only_the_missing_clips(clotho_mirror, file_server, tmp_path, capsys):
    """One clip there in the user's own version (another size), plus a file of theirs: both stay as they are,
    the two missing clips are extracted, and one line says what was found."""
    url, clips = clotho_mirror
    root = tmp_path / "data"
    _audio(root).mkdir(parents=True)
    (_audio(root) / CLIPS[0]).write_bytes(clips[CLIPS[0]][:100_000])  # e.g. cut short by the user
    (_audio(root) / "extra.wav").write_bytes(clips[CLIPS[1]])
    assert _download(root, mirror=url) == 0
    out = capsys.readouterr().out.splitlines()
    assert any("1 of 3 clips of the caption CSV already there (kept as they are); fetching the archive for the 2 "
               "missing" in line for line in out), out
    assert any("2 clips extracted, 1 kept as they were; 1 of those differ in size from the archive's (kept, not "
               f"replaced; to get the official ones delete them and .complete, then rerun): {CLIPS[0]}" in line
               for line in out), out
    assert (_audio(root) / CLIPS[0]).read_bytes() == clips[CLIPS[0]][:100_000]  # the user's file, untouched
    assert (_audio(root) / "extra.wav").read_bytes() == clips[CLIPS[1]]
    for name in CLIPS[1:]:
        assert (_audio(root) / name).read_bytes() == clips[name]
    assert sorted(p.name for p in _audio(root).parent.iterdir()) == ["development"]  # staging removed
    assert not (root / "CLOTHO_v2.1" / "archives").exists()  # the archive this run fetched: removed


def test_an_archive_already_there_is_used_and_kept(clotho_mirror, file_server, tmp_path, capsys):
    """An official archive someone else left in archives/ (aac-datasets does): verified, extracted, not deleted."""
    url, clips = clotho_mirror
    root = tmp_path / "data"
    archive = root / "CLOTHO_v2.1" / "archives" / DEV_FILES[2]
    archive.parent.mkdir(parents=True)
    archive.write_bytes(file_server.files[f"/{DEV_FILES[2]}"])
    assert _download(root, mirror=url) == 0
    assert f"/{DEV_FILES[2]}" not in file_server.requested() and archive.read_bytes() == file_server.files[
        f"/{DEV_FILES[2]}"]
    assert sorted(p.name for p in _audio(root).iterdir()) == sorted([*CLIPS, ".complete"])


def test_files_in_the_way_are_named_and_left_alone(clotho_mirror, file_server, tmp_path, capsys):
    """A caption CSV in place that is not the official one, and a folder at the staging name that hybridlib did
    not make: refused in one line naming them (exit 2), both untouched."""
    url, _ = clotho_mirror
    root = tmp_path / "data"
    csv = dl.clotho_csv_dir(root) / DEV_FILES[0]
    csv.parent.mkdir(parents=True)
    csv.write_text("file_name,caption_1\nmine.wav,my own caption\n")
    assert _download(root, mirror=url) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{csv} is already there but is not the official file" in err, err
    assert "left as it is" in err and csv.read_text().startswith("file_name,caption_1\nmine.wav")
    assert file_server.log == []  # refused before anything was fetched
    csv.unlink()
    staging = _audio(root).parent / ".development.extracting"
    staging.mkdir(parents=True)
    (staging / "keep.txt").write_text("mine")
    assert _download(root, mirror=url) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{staging} is in the way of the extraction" in err, err
    assert (staging / "keep.txt").read_text() == "mine"


def test_clotho_mirror_resume_drop_bad_md5_and_404(clotho_mirror, file_server, tmp_path, capsys):
    url, clips = clotho_mirror
    archive_bytes = file_server.files[f"/{DEV_FILES[2]}"]
    # a partial download left by an earlier run: resumed with a Range request, the result byte-identical
    root = tmp_path / "resume"
    part = root / "CLOTHO_v2.1" / "archives" / (DEV_FILES[2] + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_bytes[: len(archive_bytes) * 2 // 5])
    assert _download(root, "--keep-archives", mirror=url) == 0
    assert {"path": f"/{DEV_FILES[2]}", "range": f"bytes={len(archive_bytes) * 2 // 5}-"} in file_server.log
    assert (part.parent / DEV_FILES[2]).read_bytes() == archive_bytes and not part.exists()
    assert all((_audio(root) / n).read_bytes() == d for n, d in clips.items())
    # the server drops the connection midway: one line, exit 1, the part kept; the rerun resumes it
    root = tmp_path / "dropped"
    file_server.truncate_once.add(f"/{DEV_FILES[2]}")
    capsys.readouterr()
    assert _download(root, "--keep-archives", mirror=url) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "rerun to resume" in err and f"{url}/{DEV_FILES[2]}" in err, err
    kept = (root / "CLOTHO_v2.1" / "archives" / (DEV_FILES[2] + ".part")).stat().st_size
    assert 0 < kept < len(archive_bytes) and not _audio(root).exists()
    assert _download(root, "--keep-archives", mirror=url) == 0
    assert file_server.log[-1] == {"path": f"/{DEV_FILES[2]}", "range": f"bytes={kept}-"}
    assert (root / "CLOTHO_v2.1" / "archives" / DEV_FILES[2]).read_bytes() == archive_bytes
    assert all((_audio(root) / n).read_bytes() == d for n, d in clips.items())
    # the mirror serves another file under the official name: refused naming it (exit 2), nothing left as if good
    root = tmp_path / "bad-md5"
    file_server.files[f"/{DEV_FILES[2]}"] = archive_bytes[:-10] + b"0123456789"
    capsys.readouterr()
    assert _download(root, mirror=url) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"md5 mismatch for {DEV_FILES[2]}" in err and "file deleted" in err, err
    assert not (root / "CLOTHO_v2.1" / "archives").exists() or not any((root / "CLOTHO_v2.1" / "archives").iterdir())
    assert not _audio(root).exists()
    file_server.files[f"/{DEV_FILES[2]}"] = archive_bytes  # the mirror fixed: the rerun completes
    assert _download(root, mirror=url) == 0 and len(load_clotho(root, "development")) == 3
    # a file the mirror does not have: one line naming the URL, exit 2
    del file_server.files[f"/{DEV_FILES[1]}"]
    capsys.readouterr()
    assert _download(tmp_path / "404", mirror=url) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {url}/{DEV_FILES[1]}: HTTP 404 Not Found (downloading to "
                   f"{dl.clotho_csv_dir(tmp_path / '404') / DEV_FILES[1]})"), err
    # a mirror that is not a URL: refused before anything is fetched
    n = len(file_server.log)
    assert _download(tmp_path / "x", mirror="mirror.example/clotho") == 2 and len(file_server.log) == n
    assert "--mirror: a mirror is a base URL starting with http://" in capsys.readouterr().err


def test_clotho_mirror_env_var_with_the_official_checksums(file_server, shared_data, tmp_path):
    """`HYBRIDLIB_MIRROR=URL python -m hybridlib download clotho` in a subprocess, the official md5 table untouched:
    the real validation caption CSV is accepted (official md5), the metadata CSV the mirror lacks is a one-line
    error naming its URL, exit 2."""
    import os
    import subprocess
    import sys

    real = shared_data("clotho", "v2.1") / "clotho_captions_validation.csv"
    file_server.files["/clotho_captions_validation.csv"] = real.read_bytes()
    env = {**os.environ, "HYBRIDLIB_MIRROR": file_server.url}
    proc = subprocess.run([sys.executable, "-m", "hybridlib", "download", "clotho", "--root", str(tmp_path),
                           "--splits", "validation", "--no-progress"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"error: {file_server.url}/clotho_metadata_validation.csv: HTTP 404 Not Found "
                                   f"(downloading to {dl.clotho_csv_dir(tmp_path) / 'clotho_metadata_validation.csv'})")
    assert (dl.clotho_csv_dir(tmp_path) / real.name).read_bytes() == real.read_bytes()
    assert file_server.requested() == ["/clotho_captions_validation.csv", "/clotho_metadata_validation.csv"]
