"""Official weights table and download_weights (served from a local HTTP server, md5-checked, load-verified)."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading

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


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_download_weights_verifies_and_loads(http_dir, tmp_path, monkeypatch, capsys):
    root, base = http_dir
    model = build_audio_backbone("efficientat-mn10", pretrained=False)
    torch.nn.init.normal_(model.features[16][0].weight)
    torch.save(model.state_dict(), root / "mn10.pt")
    md5 = md5sum(root / "mn10.pt")
    info = dataclasses.replace(W.WEIGHTS["efficientat-mn10"], url=f"{base}/mn10.pt", md5=md5)
    monkeypatch.setitem(W.WEIGHTS, "efficientat-mn10", info)
    dest = tmp_path / "weights"
    path = fetch_weights("efficientat-mn10", dest, progress=False)
    assert path == dest / info.filename and md5sum(path) == md5
    loaded = build_audio_backbone("efficientat-mn10", checkpoint=W.weights_path("efficientat-mn10", dest))
    assert torch.equal(loaded.features[16][0].weight, model.features[16][0].weight)
    # a file of the wrong architecture is refused and removed
    torch.save(build_audio_backbone("efficientat-mn40", pretrained=False).state_dict(), root / "wrong.pt")
    bad = dataclasses.replace(info, url=f"{base}/wrong.pt", md5=None, filename="wrong.pt")
    monkeypatch.setitem(W.WEIGHTS, "efficientat-mn10", bad)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        fetch_weights("efficientat-mn10", dest, progress=False)
    assert not (dest / "wrong.pt").exists()
