"""download_file against a local HTTP server (Range resume, truncation, md5), .7z extraction, Clotho flow."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from argparse import Namespace

import pytest

from hybridlib.data import download as dl
from hybridlib.data import load_clotho
from hybridlib.data.download import extract_7z
from hybridlib.util.fetch import DownloadError, download_file


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    log: list[dict] = []
    truncate_once: set[str] = set()
    ignore_range: set[str] = set()

    def do_GET(self):  # noqa: N802 - http.server naming
        path = self.path.split("?")[0]
        rng = self.headers.get("Range")
        self.log.append({"path": path, "range": rng})
        if path not in self.files:
            self.send_error(404)
            return
        data = self.files[path]
        start = 0
        if rng and path not in self.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path in self.truncate_once:
            self.truncate_once.discard(path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection mid-body
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.log = {}, []
    _Handler.truncate_once, _Handler.ignore_range = set(), set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    watchdog = threading.Timer(60, httpd.shutdown)  # stops by itself even if a test hangs
    watchdog.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        watchdog.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


PAYLOAD = bytes(range(256)) * 4000  # ~1 MB
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_and_reuse(server, tmp_path):
    _, url = server
    _Handler.files["/f.bin"] = PAYLOAD
    out = download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert out.read_bytes() == PAYLOAD and not (tmp_path / "f.bin.part").exists()
    n = len(_Handler.log)
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert len(_Handler.log) == n  # verified file reused, no request


def test_resume_with_range(server, tmp_path):
    _, url = server
    _Handler.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:300_000])
    out = download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert _Handler.log[-1]["range"] == "bytes=300000-"


def test_interrupted_download_resumes_on_rerun(server, tmp_path):
    _, url = server
    _Handler.files["/f.bin"] = PAYLOAD
    _Handler.truncate_once.add("/f.bin")
    with pytest.raises(DownloadError, match="rerun to resume"):
        download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    kept = (tmp_path / "f.bin.part").stat().st_size
    assert 0 < kept < len(PAYLOAD)
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert _Handler.log[-1]["range"] == f"bytes={kept}-"


def test_server_ignoring_range_restarts(server, tmp_path):
    _, url = server
    _Handler.files["/f.bin"] = PAYLOAD
    _Handler.ignore_range.add("/f.bin")
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_md5_mismatch_and_http_errors(server, tmp_path):
    _, url = server
    _Handler.files["/f.bin"] = PAYLOAD
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
def test_download_clotho_flow(server, tmp_path, shared_data, monkeypatch):
    """Real v2.1 caption CSVs (official md5s) + a stand-in metadata CSV and audio archive."""
    import py7zr  # pinned in requirements.txt: a missing one is a failure, not a skip
    _, url = server
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
    _Handler.files.update({"/clotho_captions_development.csv": captions,
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
    n = len(_Handler.log)
    dl.download_clotho(tmp_path / "data", splits=["development"], progress=False, base_url=url)
    assert len(_Handler.log) == n  # everything verified in place, nothing fetched again


def test_cli_audiocaps_and_weights(capsys, monkeypatch, tmp_path):
    from hybridlib.cli import download as cli_download
    from hybridlib.models import audio

    assert cli_download.run(Namespace(what="audiocaps")) == 0
    assert "cannot be redistributed" in capsys.readouterr().out
    calls = []
    monkeypatch.setattr(audio, "fetch_weights", lambda name, dest=None, progress=True: calls.append((name, dest))
                        or tmp_path / f"{name}.pth")
    args = Namespace(what="weights", name="panns-cnn14", dest=str(tmp_path), no_progress=True)
    assert cli_download.run(args) == 0 and calls == [("panns-cnn14", str(tmp_path))]
    from hybridlib.util.errors import UserError

    with pytest.raises(UserError, match="needs a NAME, one of .*panns-cnn14"):  # the valid names are listed
        cli_download.run(Namespace(what="weights", name=None, dest=None, no_progress=True))


def test_download_clotho_csv_only(server, tmp_path, shared_data, monkeypatch, capsys):
    """`download clotho --csv-only`: the six tables, md5-checked (real v2.1 caption CSVs with their official
    md5s; stand-in metadata CSVs), no audio archive requested; load_clotho reads the result."""
    import functools

    from hybridlib.cli import download as cli_download

    _, url = server
    v21 = shared_data("clotho", "v2.1")
    for split in dl.CLOTHO_SPLITS:
        captions = (v21 / f"clotho_captions_{split}.csv").read_bytes()
        metadata = f"file_name,keywords\nclip_{split}.wav,a;b\n".encode()
        _Handler.files[f"/clotho_captions_{split}.csv"] = captions
        _Handler.files[f"/clotho_metadata_{split}.csv"] = metadata
        monkeypatch.setitem(dl.CLOTHO_FILES, f"clotho_metadata_{split}.csv", hashlib.md5(metadata).hexdigest())
    monkeypatch.setattr(dl, "download_clotho", functools.partial(dl.download_clotho, base_url=url))
    args = Namespace(what="clotho", name=None, root=str(tmp_path / "data"), splits=list(dl.CLOTHO_SPLITS),
                     keep_archives=False, no_progress=True, csv_only=True)
    assert cli_download.run(args) == 0
    assert "caption and metadata tables ready in" in capsys.readouterr().out
    assert sorted(entry["path"] for entry in _Handler.log) == sorted(_Handler.files)  # no .7z asked for
    csv_dir = dl.clotho_csv_dir(tmp_path / "data")
    assert sorted(p.name for p in csv_dir.iterdir()) == sorted(n.lstrip("/") for n in _Handler.files)
    assert not (tmp_path / "data" / "CLOTHO_v2.1" / "clotho_audio_files").exists()
    dev = load_clotho(tmp_path / "data", "development")
    assert len(dev) == 3839 and dev.report.missing_audio == 3839 and dev.report.metadata_without_clip == 1
    n = len(_Handler.log)
    assert cli_download.run(args) == 0 and len(_Handler.log) == n  # verified in place, nothing fetched again
    _Handler.files["/clotho_captions_validation.csv"] = b"tampered"
    (csv_dir / "clotho_captions_validation.csv").unlink()
    with pytest.raises(DownloadError, match="md5 mismatch for clotho_captions_validation.csv"):
        cli_download.run(args)
