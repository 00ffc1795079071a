"""Waveforms for trainable backbones: the waveform cache, unreadable clips left out, and the training DataLoader.

Real audio: sound-bank clips at 44.1, 48 and 22.05 kHz, mono and stereo, read at 16 kHz (so every clip is
resampled). The DataLoader must deliver exactly the in-process batches for any number of workers.
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
from conftest import require_shared
from training_helpers import synthetic_split

from hybridlib.data import Item, load_audio
from hybridlib.data.audio_io import crop_window
from hybridlib.features.loader import TrainingLoader
from hybridlib.features.splits import crop_seed, encode_split, epoch_seed
from hybridlib.features.waveform_cache import WaveformCache, read_waveform

RATE = 16000
BANK_FILES = [  # (rate, channels, seconds) in the manifest: 44.1 kHz stereo and mono, 48 kHz, 22.05 kHz
    "sounds/sounds_airplane_prop.ogg",     # 44.1 kHz, 2 channels, 4.96 s
    "sounds/sounds_apple_bite.ogg",        # 44.1 kHz, 1, 0.82 s
    "sounds/sounds_ar_burst_01.ogg",       # 44.1 kHz, 2, 0.62 s
    "sounds/sounds_node_step_water.1.ogg",  # 48 kHz, 1, 2.42 s
    "sounds/sounds_node_step_dirt.2.ogg",   # 22.05 kHz, 1, 0.57 s
]


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """Five real clips copied to a folder the tests may change; two captions each, label words as keywords."""
    import csv

    root = require_shared("soundbank-modsounds")
    labels = {r["file"]: r["label"] for r in csv.DictReader((root / "manifest.csv").open())}
    folder = tmp_path_factory.mktemp("bank")
    items = []
    for rel in BANK_FILES:
        dst = folder / rel.split("/")[-1]
        shutil.copy(root / rel, dst)
        label = labels[rel]
        items.append(Item(dst.name, dst, [f"the sound of {label}", f"{label} heard close by"], keywords=label.split()))
    return items


def broken_items(folder):
    (folder / "corrupt.wav").write_bytes(b"RIFF nonsense")
    (folder / "empty.wav").write_bytes(b"")
    return [Item("corrupt.wav", folder / "corrupt.wav", ["a"]), Item("empty.wav", folder / "empty.wav", ["b"]),
            Item("gone.wav", folder / "gone.wav", ["c"]), Item("none.wav", None, ["d"])]


def waveform_split(items, cache, max_seconds=1.0, **kw):
    return encode_split(items, "development", metadata_kind="os", audio_cached=False, text_cached=False,
                        sample_rate=RATE, max_audio_seconds=max_seconds, waveform_cache=cache, progress=False, **kw)


# ------------------------------------------------------------------------------------------------ the cache
def test_cold_then_warm_cache_reads_the_decoded_arrays(bank, tmp_path):
    cache = WaveformCache(tmp_path / "c")
    cold = [cache.load(it.audio_path, RATE) for it in bank]
    assert cache.stats == {"waveform_computed": len(bank)}
    warm = [cache.load(it.audio_path, RATE) for it in bank]
    assert cache.stats == {"waveform_computed": len(bank), "waveform_hits": len(bank)}
    for item, a, b in zip(bank, cold, warm):
        decoded = load_audio(item.audio_path, RATE)
        assert a.dtype == torch.float32 and torch.equal(a, decoded) and torch.equal(b, decoded)
    entries = sorted((tmp_path / "c").rglob("*.safetensors"))
    assert len(entries) == len(bank) and all("waveforms/16000hz" in str(e) for e in entries)
    assert not list((tmp_path / "c").rglob("*.tmp"))
    # a crop read through the cache (a slice of the entry) equals the crop of the decoded clip
    path, n = bank[0].audio_path, cold[0].numel()
    for seed in [(1, 2), (1, 3), 7]:
        start, stop = crop_window(n, 4000, seed)
        assert stop - start == 4000
        window = read_waveform(path, RATE, cache, crop_length=4000, crop_seed=seed)
        assert torch.equal(window, cold[0][start:stop])
        assert torch.equal(window, read_waveform(path, RATE, None, crop_length=4000, crop_seed=seed))
    assert crop_window(n, 4000, (1, 2)) != crop_window(n, 4000, (1, 3))
    assert crop_window(100, 4000, 5) == (0, 100)  # shorter than the window: the whole clip
    # another rate is another entry
    cache.load(path, 8000)
    assert cache.stats["waveform_computed"] == len(bank) + 1
    cache.clear()
    assert not (tmp_path / "c" / "waveforms").exists()


def test_stale_or_damaged_entries_are_recomputed(bank, tmp_path):
    cache = WaveformCache(tmp_path / "c")
    clip = tmp_path / "clip.ogg"
    shutil.copy(bank[0].audio_path, clip)
    cache.load(clip, RATE)
    shutil.copy(bank[1].audio_path, clip)  # the file changed: other size and modification time
    again = cache.load(clip, RATE)
    assert torch.equal(again, load_audio(bank[1].audio_path, RATE)) and cache.stats["waveform_computed"] == 2
    entry = cache.entry_path(clip, RATE)
    entry.write_bytes(entry.read_bytes()[:200])  # truncated entry
    assert torch.equal(cache.load(clip, RATE), again) and cache.stats["waveform_computed"] == 3
    assert torch.equal(cache.load(clip, RATE), again) and cache.stats["waveform_hits"] == 1


# ------------------------------------------------------------------------------------------------ bad clips
@pytest.mark.parametrize("with_cache,workers", [(True, 0), (True, 2), (False, 0)],
                         ids=["cache", "cache-2-workers", "headers-only"])
def test_unreadable_clips_are_excluded_and_counted(bank, tmp_path, with_cache, workers):
    cache = WaveformCache(tmp_path / "c") if with_cache else None
    split = waveform_split([*bank, *broken_items(tmp_path)], cache, num_workers=workers)
    assert split.n_clips == len(bank) and split.clip_ids == [it.clip_id for it in bank]
    assert set(split.excluded) == {"corrupt.wav", "empty.wav", "gone.wav", "none.wav"}
    assert "gone.wav" in split.excluded["gone.wav"] and "no audio file" in split.excluded["none.wav"]
    if with_cache:  # every readable clip was decoded once, in whichever process
        assert cache.stats == {"waveform_computed": len(bank)}
        assert len(list((tmp_path / "c").rglob("*.safetensors"))) == len(bank)
    batch = next(split.training_batches(4, seed=0, epoch=1))
    assert batch["waveform"].shape == (4, RATE)
    with pytest.raises(ValueError, match="no clip has readable audio"):
        waveform_split(broken_items(tmp_path), cache)


# ------------------------------------------------------------------------------------------------ the loader
def assert_same_batches(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.keys() == b.keys()
        for key in a:
            assert (torch.equal(a[key], b[key]) if torch.is_tensor(a[key]) else a[key] == b[key]), key


@pytest.mark.filterwarnings("ignore:.pin_memory. argument is set as true but no accelerator")
def test_loader_delivers_the_in_process_batches_for_any_worker_count(bank, tmp_path):
    split = waveform_split(bank, WaveformCache(tmp_path / "c"))  # fills the cache
    want = {e: list(split.training_batches(4, seed=7, epoch=e)) for e in (1, 2)}
    examples = 2 * split.n_training_batches(4) * 4
    for workers in (0, 2):
        loader = TrainingLoader(split, 4, seed=7, num_workers=workers, pin_memory=workers == 2)
        assert len(loader) == split.n_training_batches(4) == 2
        for epoch in (2, 1):  # any order: a batch depends on (seed, epoch, position) only
            assert_same_batches(list(loader.epoch(epoch)), want[epoch])
        assert loader.stats == {"waveform_hits": examples}  # warm cache: every waveform read as an array
    # each crop is the window crop_seed(epoch_seed(seed, epoch), caption) picks in the whole clip
    order = split.caption_order(7, 1)
    for k, q in enumerate(order[:4].tolist()):
        clip = int(split.caption_clip[q])
        whole = load_audio(split.audio_paths[clip], RATE)
        start, stop = crop_window(whole.numel(), RATE, crop_seed(epoch_seed(7, 1), q))
        assert torch.equal(want[1][0]["waveform"][k, : stop - start], whole[start:stop])
    crops = [torch.cat([b["waveform"] for b in want[e]]) for e in (1, 2)]
    assert not torch.equal(crops[0], crops[1])  # other epoch, other captions and crops


def test_loader_ddp_slices_and_cold_cache(bank, tmp_path):
    split = waveform_split(bank, WaveformCache(tmp_path / "c"))
    glob = list(split.training_batches(4, seed=3, epoch=1))
    cold = dataclasses.replace(split, waveform_cache=WaveformCache(tmp_path / "cold"))
    ranks = [list(TrainingLoader(cold, 4, seed=3, rank=r, world_size=2, num_workers=2).epoch(1)) for r in (0, 1)]
    for g, a, b in zip(glob, *ranks):  # the ranks' slices (same crops) make up the global batch
        assert torch.equal(g["waveform"], torch.cat([a["waveform"], b["waveform"]]))
        assert g["captions"] == a["captions"] + b["captions"]
    loader = TrainingLoader(dataclasses.replace(split, waveform_cache=WaveformCache(tmp_path / "cold0")), 4,
                            seed=3, num_workers=0)
    first = list(loader.epoch(1))
    used = len({int(c) for b in first for c in b["clip_index"]})
    assert loader.stats == {"waveform_computed": used, "waveform_hits": 8 - used}  # cold: decoded once each
    assert_same_batches(first, glob)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_clip_broken_after_the_check_stops_training_with_one_line(bank, tmp_path, workers):
    """Without a cache only headers are checked: a clip whose body cannot be decoded stops the epoch with an
    AudioError naming the file (from a worker too: its traceback is not the message)."""
    from hybridlib.data.audio_io import AudioError

    clips = []
    for item in bank:
        shutil.copy(item.audio_path, tmp_path / item.clip_id)
        clips.append(dataclasses.replace(item, audio_path=tmp_path / item.clip_id))
    split = waveform_split(clips, None)
    (tmp_path / clips[0].clip_id).write_bytes(b"OggS" + bytes(300))
    with pytest.raises(AudioError) as info:
        list(TrainingLoader(split, 2, seed=0, num_workers=workers).epoch(1))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tmp_path / clips[0].clip_id)), message


def test_cached_frames_stay_in_process():
    split = synthetic_split("s", 10, caps=3)
    loader = TrainingLoader(split, 4, seed=1, num_workers=2, captions_per_clip=2)
    assert loader.num_workers == 0 and not loader.stats
    assert_same_batches(list(loader.epoch(3)), list(split.training_batches(4, 1, 3, captions_per_clip=2)))
    with pytest.raises(ValueError, match="num_workers"):
        TrainingLoader(split, 4, seed=1, num_workers=-1)
