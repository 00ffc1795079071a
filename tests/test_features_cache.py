"""Feature cache: audio frames and text embeddings stored as safetensors, reused, invalidated; CLI extract."""

from __future__ import annotations

import csv
import os
import shutil

import pandas as pd
import pytest
import soundfile as sf
import torch
from safetensors import safe_open

from hybridlib.data import Item, load_audio
from hybridlib.features.cache import FeatureCache
from hybridlib.models.audio import build_audio_backbone
from hybridlib.models.audio.frontends import SfxLogMel
from hybridlib.models.audio.sfx_cnn import SfxCNN
from hybridlib.models.text import build_text_encoder

BANK_FILES = [
    "sounds/sounds_airplane_prop.ogg",
    "sounds/sounds_apple_bite.ogg",
    "sounds/sounds_ar_burst_01.ogg",
]


@pytest.fixture(scope="module")
def sfx():
    return build_audio_backbone("sfx-cnn")


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm")


@pytest.fixture
def bank_items(shared_data, tmp_path):
    """Three real sound-bank clips, copied to a temporary folder so tests may touch them."""
    root = shared_data("soundbank-modsounds")
    items = []
    for rel in BANK_FILES:
        dst = tmp_path / "audio" / os.path.basename(rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / rel, dst)
        items.append(Item(clip_id=dst.name, audio_path=dst, captions=["x"], dataset="bank"))
    return items


@pytest.mark.slow
def test_audio_frames_computed_once_then_reused(sfx, bank_items, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    first = cache.audio_frames(bank_items, sfx, batch_size=2, progress=False)
    assert cache.stats == {"audio_hits": 0, "audio_computed": 3, "audio_damaged": 0, "text_hits": 0,
                           "text_computed": 0, "text_damaged": 0}
    assert list(first) and set(first) == {it.clip_id for it in bank_items}
    with torch.inference_mode():
        for item in bank_items:  # equal to running the backbone on the clip alone
            frames, n = sfx(load_audio(item.audio_path, sfx.sample_rate)[None])
            assert (
                first[item.clip_id].shape == (int(n[0]), 512) and first[item.clip_id].dtype == torch.float32
            )
            torch.testing.assert_close(first[item.clip_id], frames[0, : n[0]], atol=1e-5, rtol=1e-5)
    files = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert len(files) == 3 and not list((tmp_path / "cache").rglob("*.tmp"))
    with safe_open(str(files[0]), framework="pt") as f:
        assert set(f.keys()) == {"frames"} and f.metadata()["backbone"] == "sfx-cnn" and "sha256:frames" in f.metadata()
    again = FeatureCache(tmp_path / "cache")
    second = again.audio_frames(bank_items, sfx, progress=False)
    assert again.stats["audio_hits"] == 3 and again.stats["audio_computed"] == 0
    for key in first:
        assert torch.equal(first[key], second[key])


def test_audio_cache_invalidated_by_file_settings_and_weights(sfx, bank_items, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    cache.audio_frames(bank_items, sfx, progress=False)
    # a changed audio file is recomputed, the others are reused
    path = bank_items[1].audio_path
    data, sr = sf.read(path)
    sf.write(path, data[: len(data) // 2], sr, format="OGG")
    os.utime(path, ns=(1, 1))
    cache.stats["audio_computed"] = 0
    out = cache.audio_frames(bank_items, sfx, progress=False)
    assert cache.stats["audio_computed"] == 1
    n_new = sfx.frame_lengths(torch.tensor([load_audio(path, 44100).shape[0]]))
    assert out[bank_items[1].clip_id].shape[0] == int(n_new[0])
    # other frontend settings -> other fingerprint and folder
    other = build_audio_backbone("sfx-cnn", pretrained=False)
    other.load_state_dict(sfx.state_dict())
    other.frontend = SfxLogMel(peak_normalise=False)
    assert cache.audio_dir(other) != cache.audio_dir(sfx)
    # other weights (another checkpoint, or an in-place update) -> other folder
    random_net = SfxCNN()
    fp = cache.audio_fingerprint(random_net)
    assert fp != cache.audio_fingerprint(sfx)
    with torch.no_grad():
        random_net.embedding_net.conv_block1.conv1.weight.add_(1.0)
    assert cache.audio_fingerprint(random_net) != fp


def test_unreadable_clips_are_named_together_after_the_others_are_cached(sfx, bank_items, tmp_path):
    from hybridlib.data.audio_io import BadAudioError

    cache = FeatureCache(tmp_path / "cache")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    items = [Item("gone.wav", None, ["x"]), bank_items[0], Item("deleted.wav", tmp_path / "deleted.wav", ["x"]),
             Item("corrupt.wav", tmp_path / "corrupt.wav", ["x"])]
    with pytest.raises(BadAudioError) as info:
        cache.audio_frames(items, sfx, progress=False)
    message = str(info.value)
    assert message.startswith("3 clip(s) with unusable audio: gone.wav (no audio file on disk), deleted.wav")
    assert "corrupt.wav" in message and "\n" not in message
    again = FeatureCache(tmp_path / "cache")
    again.audio_frames(bank_items[:1], sfx, progress=False)
    assert again.stats["audio_hits"] == 1  # the good clip was computed and stored before the error


def test_text_embeddings_cached_by_text(minilm, tmp_path):
    cache = FeatureCache(tmp_path)
    texts = ["a dog barks", "rain on a roof", "a dog barks"]
    emb = cache.text_embeddings(texts, minilm, progress=False)
    assert emb.shape == (3, 384) and cache.stats["text_computed"] == 2 and cache.stats["text_hits"] == 1
    with torch.inference_mode():
        torch.testing.assert_close(emb, minilm(texts), atol=1e-5, rtol=1e-5)
    more = cache.text_embeddings(["rain on a roof", "birds sing"], minilm, progress=False)
    assert cache.stats["text_computed"] == 3  # only "birds sing" was new
    torch.testing.assert_close(more[0], emb[1])
    fresh = FeatureCache(tmp_path)
    again = fresh.text_embeddings(texts, minilm, progress=False)
    assert fresh.stats["text_computed"] == 0 and torch.equal(again, emb)
    assert fresh.text_embeddings([], minilm, progress=False).shape == (0, 384)


@pytest.mark.slow
def test_cached_text_embeddings_do_not_depend_on_batching_or_fill_order(minilm, tmp_path):
    """The same text gets the same bytes whatever it was encoded with and whichever order filled the cache."""
    captions = [f"a {w} sound recorded near a busy {p} while people talk" for w in ("loud", "soft", "short")
                for p in ("street", "market")]
    metadata = ["rain", "field recording", "dog bark city", "birds", "traffic street ambience noise"]
    one = FeatureCache(tmp_path / "one")
    one.text_embeddings(captions, minilm, progress=False)  # captions first (as a notebook does)
    one.text_embeddings(metadata, minilm, progress=False)
    two = FeatureCache(tmp_path / "two")
    two.text_embeddings(list(reversed(metadata + captions)), minilm, progress=False)
    texts = captions + metadata
    a = one.text_embeddings(texts, minilm, progress=False)
    b = two.text_embeddings(texts, minilm, progress=False)
    assert a.numpy().tobytes() == b.numpy().tobytes()
    # plain batching is not invariant (padding moves results by about 1e-6): what the cache avoids
    assert (minilm(texts) - a).abs().max() < 1e-4


def test_text_cache_depends_on_encoder_settings_and_refuses_trainable(minilm, tmp_path):
    cache = FeatureCache(tmp_path)
    mean = build_text_encoder("minilm", pooling="mean")
    assert cache.text_dir(mean) != cache.text_dir(minilm)
    with pytest.raises(ValueError, match="trainable"):
        cache.text_embeddings(["x"], build_text_encoder("minilm", trainable=True), progress=False)


@pytest.mark.slow
def test_text_shards_are_compacted(minilm, tmp_path):
    cache = FeatureCache(tmp_path)
    for i in range(18):
        cache.text_embeddings([f"sound number {i}"], minilm, progress=False)
    shards = list(cache.text_dir(minilm).glob("shard-*.safetensors"))
    assert len(shards) <= 16
    out = FeatureCache(tmp_path).text_embeddings(
        [f"sound number {i}" for i in range(18)], minilm, progress=False
    )
    assert out.shape == (18, 384)


@pytest.mark.slow
def test_cli_extract_fills_the_cache(shared_data, tmp_path, capsys):
    from hybridlib.cli import main

    bank = shared_data("soundbank-modsounds")
    manifest = pd.read_csv(bank / "manifest.csv").head(3)
    data = tmp_path / "clotho"
    (data / "development").mkdir(parents=True)
    with open(data / "clotho_captions_development.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
        for row in manifest.itertuples():
            y, sr = sf.read(bank / row.file)
            name = os.path.basename(row.file).replace(".ogg", ".wav")
            sf.write(data / "development" / name, y, sr)
            writer.writerow([name] + [f"the sound of a {row.label}"] * 5)
    argv = ["extract", "--data", str(data), "--splits", "development", "--cache", str(tmp_path / "cache"),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "sfx-cnn: 3 clips (3 computed, 0 cached)" in printed and "minilm: 3 texts (3 computed)" in printed
    assert len(list((tmp_path / "cache" / "audio").rglob("*.safetensors"))) == 3
    assert main(argv) == 0
    assert "(0 computed, 3 cached)" in capsys.readouterr().out


def _noise_wav(path, seconds, sr=44100, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * sr))).astype("float32"), sr, subtype="FLOAT")
    return Item(path.name, path, ["x"], dataset="noise")


def test_damaged_audio_entries_are_verified_recomputed_and_named(sfx, tmp_path, capsys):
    items = [_noise_wav(tmp_path / f"n{i}.wav", 1.5 + i, seed=i) for i in range(3)]
    cache = FeatureCache(tmp_path / "cache")
    first = cache.audio_frames(items, sfx, progress=False)
    files = {f.name.split("-")[0]: f for f in (tmp_path / "cache").rglob("*.safetensors")}
    data = files["n0.wav"].read_bytes()
    files["n0.wav"].write_bytes(data[: len(data) // 2])  # truncated: SafetensorError on read
    data = bytearray(files["n1.wav"].read_bytes())
    data[-40:-20] = bytes(20)  # same size, garbled frames: only the checksum can tell
    files["n1.wav"].write_bytes(bytes(data))
    data = bytearray(files["n2.wav"].read_bytes())
    data[8:20] = b"{{{{{{{{{{{{"  # garbled header
    files["n2.wav"].write_bytes(bytes(data))
    again = FeatureCache(tmp_path / "cache")
    second = again.audio_frames(items, sfx, progress=False)
    assert again.stats["audio_damaged"] == 3 and again.stats["audio_computed"] == 3
    for key in first:
        assert torch.equal(first[key], second[key])
    err = capsys.readouterr().err
    assert "[cache] 3 damaged audio cache entries recomputed" in err
    assert "checksum mismatch" in err and "SafetensorError" in err
    third = FeatureCache(tmp_path / "cache")
    third.audio_frames(items, sfx, progress=False)
    assert third.stats["audio_hits"] == 3 and third.stats["audio_damaged"] == 0


def test_damaged_text_shard_is_recomputed_and_named(minilm, tmp_path, capsys):
    cache = FeatureCache(tmp_path)
    texts = ["a dog barks", "rain on a roof"]
    first = cache.text_embeddings(texts, minilm, progress=False)
    (shard,) = cache.text_dir(minilm).glob("shard-*.safetensors")
    data = bytearray(shard.read_bytes())
    data[-8:] = bytes(8)
    shard.write_bytes(bytes(data))
    again = FeatureCache(tmp_path)
    second = again.text_embeddings(texts, minilm, progress=False)
    assert again.stats["text_damaged"] == 1 and again.stats["text_computed"] == 2
    assert torch.equal(first, second) and not shard.exists()
    assert "[cache] 1 damaged text cache entry recomputed" in capsys.readouterr().err


@pytest.mark.slow
def test_long_clip_is_encoded_in_chunks_with_bounded_input_and_identical_frames(sfx, tmp_path):
    """Peak memory follows the audio each forward call sees: bounded by the batch budget and the chunk."""
    from hybridlib.models.audio.chunking import encode_long

    items = [_noise_wav(tmp_path / f"short{i}.wav", 2.0, seed=i) for i in range(4)]
    items.append(_noise_wav(tmp_path / "long.wav", 40.0, seed=9))
    seen = []
    original = type(sfx).forward

    def spy(self, waveform, lengths=None):
        seen.append(tuple(waveform.shape))
        return original(self, waveform, lengths)

    cache = FeatureCache(tmp_path / "cache")
    try:
        type(sfx).forward = spy
        frames = cache.audio_frames(items, sfx, batch_size=8, max_batch_seconds=4.5, chunk_seconds=10.0,
                                    progress=False)
    finally:
        type(sfx).forward = original
    budget = int(4.5 * 44100)
    chunk_input = int((10.0 + 2 * sfx.chunk_context / 44100) * 44100) + sfx.frame_hop
    assert all(b * n <= max(budget, chunk_input) for b, n in seen), seen
    assert sum(b for b, n in seen if n <= budget) == 4  # the short clips, two per batch
    assert sfx.embedding_net.conv_block2.conv1.weight.is_contiguous()  # extraction restored the layout
    sfx.to(memory_format=torch.channels_last)  # the layout the cache extracts sfx-cnn in
    try:
        with torch.inference_mode():
            whole, n = sfx(load_audio(items[-1].audio_path, 44100)[None])
        assert torch.equal(frames["long.wav"], whole[0, : n[0]])  # exact for sfx-cnn (see models.audio.chunking)
        with torch.inference_mode():
            assert torch.equal(encode_long(sfx, load_audio(items[-1].audio_path, 44100), 7.0), whole[0, : n[0]])
    finally:
        sfx.to(memory_format=torch.contiguous_format)
    with safe_open(str(cache.clip_path(items[-1], cache.audio_dir(sfx))), framework="pt") as f:
        assert f.metadata()["chunked"].startswith("exact")
