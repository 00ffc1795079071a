"""Synthetic frozen-encoder embeddings and the small training loop behind notebook 05."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from hybridlib.toy_embeddings import (
    ProjectionHeads,
    batch_size_sweep,
    evaluate_toy,
    make_toy_data,
    mean_pairwise_cosine,
    train_toy,
)

SMALL = dict(n_train=240, n_test=40, n_concepts=8, latent_dim=8, feature_dim=16, captions_per_item=3)


def test_make_toy_data_shapes_and_determinism():
    data = make_toy_data(**SMALL, seed=3)
    assert data.describe() == {"train_audio": [240, 16], "train_captions": [240, 3, 16],
                               "test_audio": [40, 16], "test_captions": [40, 3, 16], "concepts": 8}
    again = make_toy_data(**SMALL, seed=3)
    assert torch.equal(data.train_captions, again.train_captions)
    assert not torch.equal(data.train_audio, make_toy_data(**SMALL, seed=4).train_audio)
    assert data.train_concepts.max() < 8 and data.params["offset"] == 3.0
    with pytest.raises(ValueError, match=">= 1"):
        make_toy_data(n_train=0)


def test_offset_makes_features_anisotropic():
    def spread(offset):
        x = torch.nn.functional.normalize(make_toy_data(**SMALL, offset=offset).train_audio, dim=1)
        return mean_pairwise_cosine(x)

    assert spread(0.0) < 0.3 < 0.8 < spread(3.0)


def test_mean_pairwise_cosine_matches_matrix():
    emb = torch.nn.functional.normalize(torch.randn(7, 5, dtype=torch.float64), dim=1)
    full = emb @ emb.t()
    expected = (full.sum() - full.diagonal().sum()) / (7 * 6)
    assert mean_pairwise_cosine(emb) == pytest.approx(expected.item())
    assert mean_pairwise_cosine(torch.ones(4, 3) / 3**0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mean_pairwise_cosine(torch.ones(1, 3))


def test_training_improves_retrieval_and_restores_threads():
    data = make_toy_data(**SMALL, offset=0.0, seed=0)
    torch.manual_seed(0)
    untrained = evaluate_toy(ProjectionHeads(16, 16, 8), data)
    threads = torch.get_num_threads()
    run = train_toy(data, loss="nt-xent", batch_size=16, epochs=6, lr=1e-2, embed_dim=8, seed=0)
    assert torch.get_num_threads() == threads
    assert run.steps == 6 * (240 // 16) and len(run.history) == 6
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert run.metrics["mAP@10"] > untrained["mAP@10"] + 10
    assert set(run.metrics) == {"mAP@10", "R@1", "R@5", "R@10", "spread"}
    again = train_toy(data, loss="nt-xent", batch_size=16, epochs=6, lr=1e-2, embed_dim=8, seed=0)
    assert again.metrics == run.metrics  # seeded


def test_train_toy_rejects_bad_batch_size_and_loss():
    data = make_toy_data(**SMALL)
    with pytest.raises(ValueError, match="batch_size"):
        train_toy(data, batch_size=1000)
    with pytest.raises(ValueError, match="unknown loss"):
        train_toy(data, loss="hinge")


def test_batch_size_sweep_table():
    data = make_toy_data(**SMALL)
    table, hist = batch_size_sweep(data, losses=("triplet-max", "nt-xent"), batch_sizes=(8, 32), epochs=2,
                                   eval_every=1, progress=False)
    assert len(table) == 4 and len(hist) == 8
    assert set(table["loss"]) == {"triplet-max", "nt-xent"}
    assert table.loc[table.batch_size == 8, "steps"].tolist() == [2 * 30, 2 * 30]
    assert table["R@10"].between(0, 100).all() and table["spread"].between(-1, 1).all()


def test_batch_size_sweep_keeps_models_matching_the_table():
    data = make_toy_data(**SMALL)
    table, _, models = batch_size_sweep(data, losses=("nt-xent",), batch_sizes=(16,), epochs=2, keep_models=True,
                                        progress=False)
    heads = models[("nt-xent", 16, 0)]
    assert evaluate_toy(heads, data)["mAP@10"] == pytest.approx(table.loc[0, "mAP@10"])


@pytest.mark.slow  # starts two worker processes (torch imports)
def test_batch_size_sweep_in_two_workers_equals_one_process():
    data = make_toy_data(**SMALL)
    kw = dict(losses=("triplet-max", "nt-xent"), batch_sizes=(8, 32), seeds=(0, 1), epochs=2, progress=False)
    one, hist_one = batch_size_sweep(data, workers=1, **kw)
    two, hist_two = batch_size_sweep(data, workers=2, **kw)
    pd.testing.assert_frame_equal(one.drop(columns="seconds"), two.drop(columns="seconds"))
    pd.testing.assert_frame_equal(hist_one.drop(columns="seconds", errors="ignore"),
                                  hist_two.drop(columns="seconds", errors="ignore"))
