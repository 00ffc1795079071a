"""Caption-pair and clip datasets with collate functions, on a tiny generated teaching set."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from hybridlib.data import Item, load_clotho, make_teaching_set
from hybridlib.features.waveforms import CaptionPairDataset, ClipDataset, collate_clips, collate_pairs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = make_teaching_set(tmp_path_factory.mktemp("tds") / "t", seed=0, n_clips=(4, 1, 1), progress=False)
    return load_clotho(root, "development")


def test_pairs_and_collate(tiny, tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    items = [*tiny, Item("bad.wav", tmp_path / "bad.wav", ["x"], keywords=["k"])]
    ds = CaptionPairDataset(items, sample_rate=16000, metadata_kind="os", max_seconds=2.0)
    assert set(ds.problems) == {"bad.wav"} and len(ds.items) == 4 and len(ds) == 20
    ex = ds[7]
    assert ex["clip_index"] == 1 and ex["caption"] == tiny[1].captions[2]
    assert ex["waveform"].shape == (32000,) and ex["length"] == 32000  # clips are 5-10 s: cropped
    assert ex["metadata_text"] == " ".join(k.lower() for k in tiny[1].keywords)
    batch = next(iter(DataLoader(ds, batch_size=6, shuffle=False, collate_fn=collate_pairs)))
    assert batch["waveform"].shape == (6, 32000) and batch["lengths"].tolist() == [32000] * 6
    assert batch["clip_index"].tolist() == [0, 0, 0, 0, 0, 1]
    assert batch["same_item"][0].tolist() == [True] * 5 + [False]
    assert len(batch["captions"]) == 6 and batch["captions"][5] == tiny[1].captions[0]


def test_random_crop_varies_and_is_seeded(tiny):
    ds = CaptionPairDataset(tiny, sample_rate=8000, max_seconds=1.0)
    torch.manual_seed(0)
    a = [ds[0]["waveform"] for _ in range(3)]
    torch.manual_seed(0)
    b = [ds[0]["waveform"] for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])


def test_clip_dataset_whole_clips(tiny):
    ds = ClipDataset(tiny, sample_rate=8000, metadata_kind="cs")
    assert len(ds) == 4 and ds.items.report.clips == 4
    batch = collate_clips([ds[i] for i in range(4)])
    lengths = batch["lengths"].tolist()
    assert batch["waveform"].shape == (4, max(lengths)) and all(40000 <= n <= 80000 for n in lengths)
    for i, n in enumerate(lengths):
        assert batch["waveform"][i, n:].abs().sum() == 0
    assert "captions" not in batch and batch["clip_index"].tolist() == [0, 1, 2, 3]
    assert ds.items.captions == [c for it in tiny for c in it.captions]


def test_without_audio(tiny):
    ds = CaptionPairDataset(tiny, sample_rate=16000, metadata_kind=None, with_audio=False)
    batch = collate_pairs([ds[0], ds[5]])
    assert "waveform" not in batch and batch["metadata_text"] == [None, None]
    assert batch["clip_index"].tolist() == [0, 1]
