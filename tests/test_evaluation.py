"""Evaluation: metric keys and values on known similarity matrices, chunked embedding, ranks, examples."""

from __future__ import annotations

import pytest
import torch

from hybridlib import evaluation as E


def test_perfect_and_reversed_rankings():
    target = torch.tensor([0, 0, 1, 2, 2])  # 5 captions of 3 clips
    perfect = torch.nn.functional.one_hot(target, 3).float()
    m = E.metrics_from_similarity(perfect, target)
    for k in ("t2a_mAP@10", "t2a_R@1", "t2a_R@5", "t2a_R@10", "a2t_R@1", "a2t_R@5", "a2t_R@10"):
        assert m[k] == pytest.approx(100.0), k
    assert m["R-sum"] == pytest.approx(600.0)
    worst = 1.0 - perfect  # own clip ranked last (3rd of 3)
    m = E.metrics_from_similarity(worst, target)
    assert m["t2a_R@1"] == 0.0 and m["t2a_R@5"] == 100.0
    assert m["t2a_mAP@10"] == pytest.approx(100 / 3)


def test_caption_ranks_and_partial_recall():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.1], [0.5, 0.6, 0.4], [0.1, 0.0, 0.3]])
    target = torch.tensor([0, 1, 2, 2])
    assert E.caption_ranks(sim, target).tolist() == [1, 1, 3, 1]
    m = E.metrics_from_similarity(sim, target)
    assert m["t2a_R@1"] == pytest.approx(75.0)
    assert m["t2a_mAP@10"] == pytest.approx((1 + 1 + 1 / 3 + 1) / 4 * 100)


def test_chunked_evaluation_equals_whole():
    from training_helpers import TinyModel, synthetic_split

    torch.manual_seed(0)
    split = synthetic_split("evaluation", 13, caps=3)
    model = TinyModel()
    a = E.evaluate_split(model, split, batch_size=4)
    b = E.evaluate_split(model, split, batch_size=1000)
    assert a == pytest.approx(b)
    assert model.training  # restored after evaluation


def test_chance_map_matches_random_rankings():
    assert E.chance_map_at_k(150) == pytest.approx(100 * sum(1 / r for r in range(1, 11)) / 150)
    assert E.chance_map_at_k(3) == pytest.approx(100 * (1 + 1 / 2 + 1 / 3) / 3)
    g = torch.Generator().manual_seed(0)
    n = 40
    target = torch.arange(n).repeat(50)
    sim = torch.rand(len(target), n, generator=g)
    got = E.metrics_from_similarity(sim, target)["t2a_mAP@10"]
    assert got == pytest.approx(E.chance_map_at_k(n), abs=1.0)


def test_retrieval_examples_good_and_bad():
    from training_helpers import synthetic_split

    split = synthetic_split("evaluation", 4, caps=2)
    target = split.caption_clip
    good = torch.nn.functional.one_hot(target, 4).float()
    bad = 1.0 - good
    df = E.retrieval_examples({"hybrid": good, "baseline": bad}, split, by="hybrid", n_good=2, n_bad=1, top=2)
    assert list(df.kind) == ["good", "good", "bad"]
    assert df["rank (hybrid)"].tolist()[:2] == [1, 1] and df["rank (baseline)"].tolist()[0] == 4
    assert df["top 2 (hybrid)"][0][0] == df["clip"][0]
    assert df["clip"][0] != df["clip"][1]  # captions 0 and 1 share clip 0: the second example is another clip
    df = E.retrieval_examples({"hybrid": bad}, split, by="hybrid", n_good=0, n_bad=3)
    assert df["clip"].nunique() == 3 and (df["rank (hybrid)"] == 4).all()
