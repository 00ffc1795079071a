"""Utilities: atomic files, RNG state round trips, the one length mask and tensor helpers, the text normaliser."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from hybridlib.util import files, seeding, tensors
from hybridlib.util.text import normalize_text


def test_rng_state_round_trip_uses_only_plain_types(tmp_path):
    seeding.seed_everything(5)
    state = seeding.rng_state()
    a = (torch.rand(3), np.random.rand(), random.random())
    torch.save(state, tmp_path / "s.pt")
    seeding.set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True))
    b = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    path = files.atomic_write_json(tmp_path / "sub" / "x.json", {"a": 1})
    assert files.read_json(path) == {"a": 1}
    with pytest.raises(RuntimeError), files.atomic_path(tmp_path / "y.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert not (tmp_path / "y.txt").exists() and not list(tmp_path.glob(".*"))
    with pytest.raises(ValueError):
        files.atomic_write_json(tmp_path / "nan.json", {"x": float("nan")})


def test_length_mask_and_checks():
    mask = tensors.length_mask(torch.tensor([2, 3]), 4)
    assert mask.tolist() == [[True, True, False, False], [True, True, True, False]]
    assert tensors.length_mask(None, 3, batch=2).all()
    with pytest.raises(ValueError, match="shape"):
        tensors.length_mask(torch.tensor([1, 2]), 3, batch=3)
    with pytest.raises(ValueError, match="lie in"):
        tensors.check_lengths(torch.tensor([5]), 3)


def test_masked_max_mean_ignores_padding():
    frames = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    out = tensors.masked_max_mean(frames, torch.tensor([2, 3]))
    assert out.flatten().tolist() == [3.0 + 2.0, 6.0 + 4.0]
    torch.testing.assert_close(tensors.masked_max_mean(frames[1:]), out[1:])
    with pytest.raises(ValueError):
        tensors.masked_max_mean(frames, torch.tensor([0, 4]))


def test_concat_along_batch():
    from hybridlib.models.retrieval import ItemEmbeddings

    parts = [ItemEmbeddings(torch.ones(2, 3), None, torch.tensor([True, False])),
             ItemEmbeddings(torch.zeros(1, 3), None, torch.tensor([True]))]
    out = tensors.concat_along_batch(parts)
    assert out.embedding.shape == (3, 3) and out.metadata is None and out.has_metadata.tolist() == [True, False, True]
    assert tensors.concat_along_batch([torch.ones(1), torch.zeros(2)]).tolist() == [1, 0, 0]
    with pytest.raises(ValueError):
        tensors.concat_along_batch([])
    with pytest.raises(ValueError, match="some chunks"):
        tensors.concat_along_batch([ItemEmbeddings(torch.ones(1, 2), torch.ones(1, 2)), ItemEmbeddings(torch.ones(1, 2))])


def test_one_normaliser_for_queries_and_metadata():
    assert normalize_text("A Dog's  bark, then: RAIN!") == "a dogs bark then rain"
    assert normalize_text("field-recording_zoom") == "field recording zoom"
    assert normalize_text("\u201cQuoted\u201d \u2014 text\u00bf") == "quoted text"
    assert normalize_text("Rain , falls; on a dog's roof.", mode="mei") == "rain falls on a dog's roof"
    with pytest.raises(TypeError):
        normalize_text(None)
    with pytest.raises(ValueError, match="mode"):
        normalize_text("x", mode="nope")


def test_module_mode_sets_the_mode_and_restores_it_even_after_an_error():
    import torch

    from hybridlib.util.modules import module_mode

    net = torch.nn.Dropout(0.5).train()
    with module_mode(net):
        assert not net.training
    assert net.training
    net.eval()
    with pytest.raises(RuntimeError), module_mode(net, training=True):
        assert net.training
        raise RuntimeError("inside")
    assert not net.training
