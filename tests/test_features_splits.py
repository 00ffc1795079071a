"""Encoded splits: caption-level training batches with the same-item mask, DDP slices, caption sampling,
frame pooling, and the waveform path for trainable encoders."""

from __future__ import annotations

import math

import pytest
import torch
from training_helpers import DA, synthetic_split

from hybridlib.features.splits import encode_split, pool_frames, same_item_mask


def test_caption_batches_cover_every_caption_and_mask_same_clip():
    split = synthetic_split("s", 10, caps=3)
    seen = []
    for batch in split.training_batches(batch_size=4, seed=0, epoch=1, drop_last=False):
        ci = batch["clip_index"]
        assert torch.equal(batch["same_item"], ci[:, None] == ci[None, :])
        assert batch["frames"].shape[0] == len(ci) and batch["frames"].shape[2] == DA
        assert torch.equal(batch["caption_emb"], split.caption_emb[_caption_ids(split, batch)])
        seen += _caption_ids(split, batch)
    assert sorted(seen) == list(range(30))
    # the order depends on (seed, epoch) only
    assert torch.equal(split.caption_order(0, 1), split.caption_order(0, 1))
    assert not torch.equal(split.caption_order(0, 1), split.caption_order(0, 2))
    assert split.n_training_batches(4) == 7 and len(list(split.training_batches(4, 0, 1))) == 7


def _caption_ids(split, batch):
    out = []
    for row in batch["caption_emb"]:
        out.append(int((split.caption_emb == row).all(1).nonzero()[0]))
    return out


def test_same_item_mask_and_pair_batch():
    m = same_item_mask(torch.tensor([3, 1, 3, 2]))
    assert m.tolist() == [[True, False, True, False], [False, True, False, False],
                          [True, False, True, False], [False, False, False, True]]
    split = synthetic_split("s", 5, caps=2)
    b = split.pair_batch([0, 1, 4])  # captions 0 and 1 both describe clip 0
    assert b["clip_index"].tolist() == [0, 0, 2]
    assert b["same_item"][0, 1] and not b["same_item"][0, 2]
    assert torch.equal(b["metadata_emb"][2], split.metadata_emb[2])
    assert b["frame_lengths"][2] == split.frames[2].shape[0]


@pytest.mark.parametrize("batch_size,world,sizes", [(8, 2, [4, 4]), (7, 2, [4, 3]), (8, 3, [3, 3, 2]),
                                                     (30, 2, [12, 12])])
def test_ddp_slices_reassemble_the_global_batch(batch_size, world, sizes):
    """batch_size is the global batch: the ranks' slices (sizes differing by at most one) make up the batches a
    single process draws with the same seed; a global batch larger than the epoch is the whole epoch."""
    from hybridlib.features.splits import slice_sizes

    split = synthetic_split("s", 12, caps=2)
    full = list(split.training_batches(batch_size=batch_size, seed=3, epoch=2))
    ranks = [list(split.training_batches(batch_size=batch_size, seed=3, epoch=2, rank=r, world_size=world))
             for r in range(world)]
    assert len(full) == split.n_training_batches(batch_size) == max(1, 24 // batch_size)  # 24 captions
    for f, *parts in zip(full, *ranks):
        assert [len(p["clip_index"]) for p in parts] == sizes == slice_sizes(len(f["clip_index"]), world)
        assert torch.equal(f["clip_index"], torch.cat([p["clip_index"] for p in parts]))
    assert all(len(r) == len(full) for r in ranks)
    assert slice_sizes(1, 2) == [1, 0] and split.training_batch(0, 1, 3, 2, rank=1, world_size=2) is None


def test_captions_per_clip_sampling():
    split = synthetic_split("s", 10, caps=3)
    order = split.caption_order(seed=1, epoch=4, captions_per_clip=2)
    assert len(order) == 20 == split.n_epoch_captions(2)
    assert torch.bincount(split.caption_clip[order], minlength=10).tolist() == [2] * 10
    assert len(set(order.tolist())) == 20
    assert torch.equal(order, split.caption_order(1, 4, 2))
    other_epoch = split.caption_order(1, 5, 2)
    assert set(order.tolist()) != set(other_epoch.tolist())  # different captions chosen in another epoch
    assert split.n_training_batches(8, captions_per_clip=1) == 1
    batches = list(split.training_batches(4, seed=0, epoch=1, captions_per_clip=1))
    assert len(batches) == 2 and all(len(set(b["clip_index"].tolist())) == 4 for b in batches)


@pytest.mark.parametrize("stride", [2, 3, 4])
def test_pool_frames_has_the_bits_of_avg_pool1d(stride):
    for length in (1, 2, 5, stride * 7, stride * 7 + 1, 317):
        f = torch.randn(length, 16)
        ref = torch.nn.functional.avg_pool1d(f.T[None], stride, stride, ceil_mode=True)[0].T
        assert torch.equal(pool_frames(f, stride), ref), (length, stride)
    assert pool_frames(torch.zeros(0, 16), stride).shape == (0, 16)


def test_pool_frames_averages_windows():
    f = torch.arange(5.0)[:, None].repeat(1, 2)
    out = pool_frames(f, 2)
    assert out[:, 0].tolist() == [0.5, 2.5, 4.0]
    assert pool_frames(f, 1) is f
    split = synthetic_split("s", 3).with_frame_stride(3)
    assert all(fr.shape[0] == -(-orig.shape[0] // 3) for fr, orig in zip(split.frames, synthetic_split("s", 3).frames))


def test_waveform_path_for_trainable_encoders(tmp_path):
    """Without cached features the batches carry waveforms (cropped for training) and raw strings."""
    import soundfile as sf

    from hybridlib.data import Item

    items = []
    for i, seconds in enumerate((1.0, 3.0)):
        path = tmp_path / f"c{i}.wav"
        t = torch.arange(int(seconds * 8000)) / 8000
        sf.write(path, (0.3 * torch.sin(2 * math.pi * 220 * (i + 1) * t)).numpy(), 8000)
        items.append(Item(f"c{i}.wav", path, [f"tone {i} a", f"tone {i} b"], keywords=["tone", f"k{i}"]))
    split = encode_split(items, "development", metadata_kind="os", audio_cached=False, text_cached=False,
                         sample_rate=8000, max_audio_seconds=2.0, progress=False)
    assert split.frames is None and split.caption_emb is None and split.n_captions == 4
    batch = split.pair_batch([0, 2, 3], crop_key=0)
    assert batch["waveform"].shape == (3, 16000)  # the 3 s clip cropped to 2 s, the 1 s clip zero-padded
    assert batch["lengths"].tolist() == [8000, 16000, 16000]
    assert batch["captions"] == ["tone 0 a", "tone 1 a", "tone 1 b"]
    assert batch["metadata_text"] == ["tone k0", "tone k1", "tone k1"] and batch["same_item"][1, 2]
    whole = split.item_batch([1])  # evaluation batches are not cropped
    assert whole["lengths"].tolist() == [24000]
    with pytest.raises(ValueError, match="FeatureCache"):
        encode_split(items, "development", metadata_kind=None, progress=False)
