"""Audio I/O: the real Clotho clip, real ogg sound effects, and broken files made here."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from hybridlib.data import AudioError, Item, crop_or_pad, load_audio
from hybridlib.data.audio_io import audio_info, validate_items
from hybridlib.util.tensors import pad_sequences


@pytest.fixture
def radio_wav(shared_data):
    return shared_data("clotho", "audio") / "Distorted AM Radio noise.wav"


def test_real_clotho_clip(radio_wav):
    info = audio_info(radio_wav)
    assert info["sample_rate"] == 44100 and info["channels"] == 1
    wave = load_audio(radio_wav, 44100)
    assert wave.dtype == torch.float32 and wave.ndim == 1 and wave.shape[0] == info["frames"]
    ref, _ = sf.read(str(radio_wav), dtype="float32")
    assert torch.equal(wave, torch.from_numpy(ref))
    down = load_audio(radio_wav, 16000)
    assert abs(down.shape[0] - round(info["frames"] * 16000 / 44100)) <= 1
    # resampling keeps the signal's energy roughly (radio noise is broadband, so allow a wide band)
    assert 0.3 < float(down.pow(2).mean() / wave.pow(2).mean()) < 1.1


def test_real_ogg_stereo_mixdown(shared_data):
    bank = shared_data("soundbank-modsounds")
    path = bank / "sounds" / "sounds_airplane_prop.ogg"  # stereo, 44.1 kHz in the manifest
    stereo = load_audio(path, 44100, mono=False)
    assert stereo.shape[0] == 2
    mono = load_audio(path, 44100)
    assert torch.allclose(mono, stereo.mean(0), atol=1e-6)


def test_resample_sine_frequency(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    sf.write(tmp_path / "sine.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), sr, subtype="PCM_16")
    y = load_audio(tmp_path / "sine.wav", 32000).numpy()
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 32000 / len(y) - 1000) < 2


def test_broken_files_raise_naming_the_file(tmp_path):
    sr = 16000
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    sf.write(tmp_path / "empty.wav", np.zeros(0), sr)
    sf.write(tmp_path / "silent.wav", np.zeros(sr), sr)
    sf.write(tmp_path / "nan.wav", np.full(100, np.nan, dtype=np.float32), sr, subtype="FLOAT")
    for name, pattern in [("corrupt.wav", "cannot decode"), ("empty.wav", "no samples"),
                          ("silent.wav", "silent"), ("nan.wav", "NaN"), ("missing.wav", "not found")]:
        with pytest.raises(AudioError, match=pattern) as info:
            load_audio(tmp_path / name, sr)
        assert name in str(info.value)
        assert isinstance(info.value, ValueError)
    assert load_audio(tmp_path / "silent.wav", sr, allow_silent=True).abs().max() == 0


def test_validate_items_excludes_and_reports(tmp_path, radio_wav):
    (tmp_path / "corrupt.wav").write_bytes(b"not audio at all")
    items = [Item("ok", radio_wav, ["a"]), Item("bad", tmp_path / "corrupt.wav", ["b"]), Item("none", None, ["c"])]
    good, problems = validate_items(items, progress=False)
    assert [it.clip_id for it in good] == ["ok"]
    assert set(problems) == {"bad", "none"} and "corrupt.wav" in problems["bad"]


def test_crop_or_pad_policy():
    x = torch.arange(10, dtype=torch.float32)
    y, n = crop_or_pad(x, 4, mode="start")
    assert y.tolist() == [0, 1, 2, 3] and n == 4
    y, _ = crop_or_pad(x, 4, mode="center")
    assert y.tolist() == [3, 4, 5, 6]
    g = torch.Generator().manual_seed(0)
    offsets = {int(crop_or_pad(x, 4, generator=g)[0][0]) for _ in range(50)}
    assert offsets == set(range(7))  # every offset reachable
    y, n = crop_or_pad(x, 13)
    assert y.shape[0] == 13 and n == 10 and y[10:].abs().sum() == 0
    with pytest.raises(ValueError, match="crop mode"):
        crop_or_pad(x, 4, mode="middle")
    batch, lengths = pad_sequences([torch.ones(3), torch.ones(5)])
    assert batch.shape == (2, 5) and lengths.tolist() == [3, 5] and batch[0, 3:].sum() == 0


def _bad_folder(tmp_path):
    """One good clip and one of each kind of bad audio; returns the items."""
    from hybridlib.data import Item

    sr = 16000
    sf.write(tmp_path / "good.wav", 0.1 * np.sin(np.arange(sr) / 3.0), sr, subtype="PCM_16")
    sf.write(tmp_path / "silent.wav", np.zeros(sr), sr, subtype="PCM_16")
    sf.write(tmp_path / "empty.wav", np.zeros(0), sr)
    sf.write(tmp_path / "nan.wav", np.full(100, np.nan, dtype=np.float32), sr, subtype="FLOAT")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    good = (tmp_path / "good.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(good[:44] + b"\x01")  # header claims more data than there is
    names = ["good", "silent", "empty", "nan", "corrupt", "truncated", "missing"]
    items = [Item(n, tmp_path / f"{n}.wav", ["a caption"]) for n in names]
    return items + [Item("no-path", None, ["c"])]


def test_full_check_finds_every_kind_of_bad_audio_at_once(tmp_path):
    items = _bad_folder(tmp_path)
    good, problems = validate_items(items, progress=False, check="full")
    assert [it.clip_id for it in good] == ["good"]
    assert set(problems) == {"silent", "empty", "nan", "corrupt", "truncated", "missing", "no-path"}
    assert "silent" in problems["silent"] and "NaN" in problems["nan"] and "not found" in problems["missing"]
    # the header check is fast and catches what the header shows; silence and NaN need the full check
    _, header = validate_items(items, progress=False, check="header")
    assert set(header) == {"empty", "corrupt", "truncated", "missing", "no-path"}
    assert validate_items(items, 16000, progress=False)[1].keys() == problems.keys()  # older call form


def test_screen_audio_excludes_and_reports_or_raises_listing_all(tmp_path):
    from hybridlib.data import ClipSet, LoadReport
    from hybridlib.data.audio_io import BadAudioError, screen_audio

    items = ClipSet(_bad_folder(tmp_path), LoadReport(dataset="d", split="s", clips=8, missing_audio=1))
    kept = screen_audio(items, progress=False)
    assert [it.clip_id for it in kept] == ["good"]
    assert kept.report.excluded == 7 and set(kept.report.bad_audio) == set(items.by_id()) - {"good"}
    assert kept.report.missing_audio == 1 and kept.report.clips == 1
    assert "7 for missing or unusable audio" in str(kept.report)
    with pytest.raises(BadAudioError) as info:
        screen_audio(items, on_bad="error", progress=False, where="d/s")
    message = str(info.value)
    assert message.startswith("7 clip(s) with unusable audio in d/s: silent (audio is silent)") and "\n" not in message
    for name in ("empty", "nan", "corrupt", "truncated", "missing", "no-path"):
        assert name in message


def test_full_check_result_is_remembered_until_a_file_changes(tmp_path, monkeypatch):
    from hybridlib.data import audio_io

    items = _bad_folder(tmp_path)
    memo = tmp_path / "memo"
    first = validate_items(items, progress=False, check="full", memo_dir=memo)[1]
    calls = []
    monkeypatch.setattr(audio_io, "check_audio_file", lambda *a, **k: calls.append(a))
    assert validate_items(items, progress=False, check="full", memo_dir=memo)[1] == first and not calls
    sf.write(tmp_path / "silent.wav", 0.2 * np.ones(800), 16000, subtype="PCM_16")  # fixed: checked again
    validate_items(items, progress=False, check="full", memo_dir=memo)
    assert len(calls) == 6  # every file on disk, checked again because one changed
