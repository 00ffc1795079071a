"""Official weights table and download_weights (served from a local HTTP server, md5-checked, load-verified)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from hybridlib.models.audio import available_backbones, build_audio_backbone, fetch_weights
from hybridlib.models.audio import weights as W
from hybridlib.models.audio.checkpoints import CheckpointError
from hybridlib.util.fetch import md5sum


def test_every_backbone_has_an_official_source():
    assert set(W.WEIGHTS) == set(available_backbones())
    for name, info in W.WEIGHTS.items():
        assert info.name == name and info.source
        if name == "sfx-cnn":
            assert info.url is None and W.weights_path(name).name == "checkpoint.pth"
        else:
            assert info.url.startswith("https://") and info.filename in info.url.replace("%3D", "=")
    assert W.WEIGHTS["panns-cnn14"].md5 == "541141fa2ee191a88f24a3219fff024e"
    assert W.WEIGHTS["panns-resnet38"].md5 == "bf12f36aaabac4e0855e22d3c3239c1b"


def test_weights_paths_and_unknown_names(tmp_path):
    assert W.weights_path("panns-cnn14", tmp_path) == tmp_path / "Cnn14_mAP=0.431.pth"
    with pytest.raises(ValueError, match="no official weights"):
        W.weights_path("vggish")


@pytest.mark.slow
def test_download_weights_verifies_and_loads(file_server, tmp_path, monkeypatch, capsys):
    root, base = tmp_path / "served", file_server.url
    root.mkdir()
    model = build_audio_backbone("efficientat-mn10", pretrained=False)
    torch.nn.init.normal_(model.features[16][0].weight)
    torch.save(model.state_dict(), root / "mn10.pt")
    md5 = md5sum(root / "mn10.pt")
    file_server.files["/mn10.pt"] = (root / "mn10.pt").read_bytes()
    info = dataclasses.replace(W.WEIGHTS["efficientat-mn10"], url=f"{base}/mn10.pt", md5=md5)
    monkeypatch.setitem(W.WEIGHTS, "efficientat-mn10", info)
    dest = tmp_path / "weights"
    path = fetch_weights("efficientat-mn10", dest, progress=False)
    assert path == dest / info.filename and md5sum(path) == md5
    loaded = build_audio_backbone("efficientat-mn10", checkpoint=W.weights_path("efficientat-mn10", dest))
    assert torch.equal(loaded.features[16][0].weight, model.features[16][0].weight)
    # a file of the wrong architecture is refused and removed
    torch.save(build_audio_backbone("efficientat-mn40", pretrained=False).state_dict(), root / "wrong.pt")
    file_server.files["/wrong.pt"] = (root / "wrong.pt").read_bytes()
    bad = dataclasses.replace(info, url=f"{base}/wrong.pt", md5=None, filename="wrong.pt")
    monkeypatch.setitem(W.WEIGHTS, "efficientat-mn10", bad)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        fetch_weights("efficientat-mn10", dest, progress=False)
    assert not (dest / "wrong.pt").exists()


# ---- mirrors (`download weights NAME --mirror URL` / HYBRIDLIB_MIRROR): the official md5 table is never touched
def _weights(*args):
    from hybridlib.cli import main

    return main(["download", "weights", *args, "--no-progress"])


@pytest.mark.slow
def test_weights_from_a_mirror_resume_after_a_dropped_connection(file_server, tmp_path, capsys):
    """A mirror serving efficientat-mn10's file (real format, random weights) under its official name: the
    connection drops midway (one line, exit 1, the part kept), the rerun resumes it with a Range request; the file
    is byte-identical and, as the publisher lists no checksum, verified by loading it into the model."""
    from hybridlib.models.audio import write_random_weights

    served = write_random_weights("efficientat-mn10", tmp_path / "served")
    data = served.read_bytes()
    file_server.files[f"/{served.name}"] = data
    file_server.truncate_once.add(f"/{served.name}")
    dest = tmp_path / "weights"
    assert _weights("efficientat-mn10", "--dest", str(dest), "--mirror", file_server.url) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{file_server.url}/{served.name}: connection" in err and "rerun to resume" in err
    kept = (dest / f"{served.name}.part").stat().st_size
    assert 0 < kept < len(data) and not (dest / served.name).exists()
    assert _weights("efficientat-mn10", "--dest", str(dest), "--mirror", file_server.url) == 0
    assert file_server.log[-1] == {"path": f"/{served.name}", "range": f"bytes={kept}-"}
    assert (dest / served.name).read_bytes() == data
    out = capsys.readouterr().out
    assert "(the publisher lists no checksum)" in out and f"weights saved to {dest / served.name}" in out
    build_audio_backbone("efficientat-mn10", checkpoint=dest / served.name)


def test_weights_from_a_mirror_are_checked_against_the_official_md5(file_server, tmp_path, monkeypatch, capsys):
    """HYBRIDLIB_MIRROR serving another file as Cnn14_mAP=0.431.pth: refused in one line naming the file (exit 2),
    nothing left behind, the official checksum untouched by the test."""
    monkeypatch.setenv("HYBRIDLIB_MIRROR", file_server.url)
    file_server.files["/Cnn14_mAP=0.431.pth"] = b"not the PANNs weights"
    dest = tmp_path / "weights"
    assert _weights("panns-cnn14", "--dest", str(dest)) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {file_server.url}/Cnn14_mAP%3D0.431.pth: md5 mismatch for Cnn14_mAP=0.431.pth: expected "
                   f"541141fa2ee191a88f24a3219fff024e, got {hashlib.md5(b'not the PANNs weights').hexdigest()} (file deleted)")
    assert not dest.exists() or list(dest.iterdir()) == []


@pytest.mark.parametrize("name", sorted(n for n, info in W.WEIGHTS.items() if info.url))
def test_every_weights_file_is_asked_of_the_mirror_under_its_official_name(name, file_server, tmp_path,
                                                                           monkeypatch, capsys):
    """A mirror without the file: one line naming the URL, exit 2; through the CLI option, and through the
    environment variable when a model builds itself (build_audio_backbone fetching its missing weights)."""
    import urllib.parse

    from hybridlib.util.fetch import DownloadError

    info = W.WEIGHTS[name]
    url = f"{file_server.url}/{urllib.parse.quote(info.filename)}"
    assert _weights(name, "--dest", str(tmp_path), "--mirror", file_server.url) == 2
    assert capsys.readouterr().err.strip() == (f"error: {url}: HTTP 404 Not Found (downloading to "
                                               f"{tmp_path / info.filename})")
    monkeypatch.setenv("HYBRIDLIB_MIRROR", file_server.url)
    monkeypatch.setenv("HYBRIDLIB_DATA", str(tmp_path / "data"))
    with pytest.raises(DownloadError, match=f"^{url}: HTTP 404"):
        build_audio_backbone(name)
    assert file_server.requested() == [f"/{info.filename}"] * 2
