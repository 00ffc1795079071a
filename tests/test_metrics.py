"""Retrieval metrics: hand-computed ranks, pessimistic ties, Mei et al.'s loop conventions, multi-positive,
chunking and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridlib.metrics import (
    audio_to_text,
    bootstrap_ci,
    per_query_metrics,
    relevant_ranks,
    retrieval_metrics,
    target_to_relevance,
    text_to_audio,
)


def test_text_to_audio_hand_computed():
    # 4 captions, 3 audios; target audio of each caption and its rank:
    sim = torch.tensor([
        [0.9, 0.1, 0.2],   # target 0 -> rank 1
        [0.3, 0.2, 0.8],   # target 1 -> rank 3
        [0.1, 0.5, 0.4],   # target 2 -> rank 2
        [0.0, 0.7, 0.6],   # target 1 -> rank 1
    ])
    target = torch.tensor([0, 1, 2, 1])
    m = text_to_audio(sim, target, ks=(1, 2, 3))
    assert m == pytest.approx({"mAP@10": 100 * (1 + 1 / 3 + 1 / 2 + 1) / 4, "R@1": 50.0, "R@2": 75.0,
                               "R@3": 100.0})
    # mAP@2 ignores the rank-3 query
    assert text_to_audio(sim, target, ks=(1,), map_k=2)["mAP@2"] == pytest.approx(100 * 2.5 / 4)
    assert list(text_to_audio(sim, target)) == ["mAP@10", "R@1", "R@5", "R@10"]


def test_mAP_is_reciprocal_rank_within_cutoff():
    # one query per rank 1..12 over 12 audios: correct audio placed at each rank in turn
    n = 12
    sim = torch.zeros(n, n)
    target = torch.zeros(n, dtype=torch.long)
    for q in range(n):
        scores = torch.arange(n, 0, -1, dtype=torch.float32)  # audio a has rank a + 1
        sim[q] = scores
        target[q] = q  # rank q + 1
    m = text_to_audio(sim, target)
    assert m["mAP@10"] == pytest.approx(100 * sum(1 / r for r in range(1, 11)) / n)
    assert m["R@1"] == pytest.approx(100 / n) and m["R@5"] == pytest.approx(500 / n)
    assert m["R@10"] == pytest.approx(1000 / n)


def test_ties_are_pessimistic():
    # constant matrix: the correct audio ranks after every tied wrong one
    const = torch.zeros(10, 5)
    target = torch.arange(10) % 5
    m = text_to_audio(const, target)
    assert m["R@1"] == 0.0 and m["R@5"] == 100.0 and m["mAP@10"] == pytest.approx(100 / 5)
    # a single tie with one wrong audio costs one rank
    sim = torch.tensor([[0.5, 0.5, 0.1]])
    assert text_to_audio(sim, torch.tensor([0]), ks=(1, 2))["R@1"] == 0.0
    assert text_to_audio(sim, torch.tensor([1]), ks=(1, 2))["R@2"] == 100.0
    assert audio_to_text(torch.zeros(5, 10), target)["R@1"] == 0.0


def _pessimistic_loop(sim: np.ndarray, relevant: list[set[int]], map_k: int = 10):
    """Reference: sort every row explicitly (ties: irrelevant first), then read off ranks."""
    hits1, hits5, hits10, aps = [], [], [], []
    for row, rel in zip(sim, relevant):
        order = sorted(range(len(row)), key=lambda c: (-row[c], c in rel))
        ranks = [i + 1 for i, c in enumerate(order) if c in rel]
        hits1.append(ranks[0] <= 1)
        hits5.append(ranks[0] <= 5)
        hits10.append(ranks[0] <= 10)
        aps.append(sum((j + 1) / r for j, r in enumerate(ranks) if r <= map_k) / len(rel))
    return {"mAP@10": 100 * np.mean(aps), "R@1": 100 * np.mean(hits1), "R@5": 100 * np.mean(hits5),
            "R@10": 100 * np.mean(hits10)}


def test_matches_explicit_sort_with_many_ties():
    gen = torch.Generator().manual_seed(1)
    sim = torch.randint(0, 4, (60, 25), generator=gen).float()  # only 4 distinct values: ties everywhere
    target = torch.randint(0, 25, (60,), generator=gen)
    expected = _pessimistic_loop(sim.numpy(), [{int(t)} for t in target])
    assert text_to_audio(sim, target) == pytest.approx(expected)
    # audio-to-text: relevant captions of each audio
    sim_a = torch.randint(0, 5, (25, 60), generator=gen).float()
    rel = [{q for q in range(60) if target[q] == a} for a in range(25)]
    keep = [a for a in range(25) if rel[a]]
    expected = _pessimistic_loop(sim_a.numpy()[keep], [rel[a] for a in keep])
    with pytest.warns(UserWarning, match="no relevant item"):
        got = audio_to_text(sim_a, target)
    assert got == pytest.approx(expected)


def _mei_t2a(sim: np.ndarray, target: np.ndarray):
    """Mei et al.'s evaluation loop (caption to audio): argsort each row, position of the target."""
    ranks = np.array([np.where(np.argsort(row)[::-1] == t)[0][0] for row, t in zip(sim, target)])
    return {"mAP@10": 100 * np.sum(1 / (ranks[ranks < 10] + 1)) / len(ranks),
            "R@1": 100 * np.mean(ranks < 1), "R@5": 100 * np.mean(ranks < 5), "R@10": 100 * np.mean(ranks < 10)}


def _mei_a2t(sim: np.ndarray, n_captions: int = 5):
    """Mei et al.'s loop (audio to caption, 5 consecutive captions per audio)."""
    r1 = r5 = r10 = ap_sum = 0.0
    for a, row in enumerate(sim):
        inds = np.argsort(row)[::-1]
        ranks = sorted(np.where(inds == q)[0][0] for q in range(n_captions * a, n_captions * (a + 1)))
        r1 += ranks[0] < 1
        r5 += ranks[0] < 5
        r10 += ranks[0] < 10
        within = np.array([r + 1 for r in ranks if r < 10])
        ap_sum += np.sum(np.arange(1, len(within) + 1) / within) / n_captions if len(within) else 0.0
    n = len(sim)
    return {"mAP@10": 100 * ap_sum / n, "R@1": 100 * r1 / n, "R@5": 100 * r5 / n, "R@10": 100 * r10 / n}


def test_matches_mei_et_al_loops_on_continuous_scores():
    gen = torch.Generator().manual_seed(2)
    n_audio = 40
    target = torch.arange(n_audio).repeat_interleave(5)
    emb_a = torch.randn(n_audio, 8, generator=gen)
    emb_t = emb_a[target] + 1.2 * torch.randn(5 * n_audio, 8, generator=gen)  # somewhat informative
    sim = emb_t @ emb_a.t()  # [Q, A]
    t2a = text_to_audio(sim, target)
    assert t2a == pytest.approx(_mei_t2a(sim.double().numpy(), target.numpy()))
    a2t = audio_to_text(sim.t(), target)
    assert a2t == pytest.approx(_mei_a2t(sim.t().double().numpy()))
    assert 0 < t2a["R@1"] < 100 and 0 < a2t["mAP@10"] < 100


def test_audio_to_text_hand_computed_multi_caption_map():
    # audio 0 has captions 0, 1 ; audio 1 has caption 2
    sim = torch.tensor([[0.2, 0.9, 0.5],    # audio 0: caption 1 rank 1, caption 0 rank 3 -> AP (1/1 + 2/3) / 2
                        [0.8, 0.1, 0.3]])   # audio 1: caption 2 rank 2 -> AP 1/2
    target = torch.tensor([0, 0, 1])
    m = audio_to_text(sim, target, ks=(1, 2))
    assert m == pytest.approx({"mAP@10": 100 * ((1 + 2 / 3) / 2 + 0.5) / 2, "R@1": 50.0, "R@2": 100.0})


def test_multi_positive_relevance_matrix():
    sim = torch.tensor([[0.9, 0.8, 0.1, 0.7],
                        [0.1, 0.2, 0.3, 0.4]])
    rel = torch.tensor([[False, True, False, True],   # ranks 2 and 3 -> AP (1/2 + 2/3) / 2
                        [True, False, False, False]])  # rank 4 -> AP 1/4
    m = text_to_audio(sim, rel, ks=(1, 2, 4))
    assert m == pytest.approx({"mAP@10": 100 * ((0.5 + 2 / 3) / 2 + 0.25) / 2, "R@1": 0.0, "R@2": 50.0,
                               "R@4": 100.0})
    assert retrieval_metrics(sim, rel, ks=(1, 2, 4)) == pytest.approx(m)
    # a one-hot relevance matrix gives the same numbers as the index form
    sim = torch.randn(30, 9)
    target = torch.randint(0, 9, (30,))
    assert text_to_audio(sim, target_to_relevance(target, 9)) == pytest.approx(text_to_audio(sim, target))
    assert audio_to_text(sim.t(), target_to_relevance(target, 9)) == pytest.approx(audio_to_text(sim.t(), target))


def test_chunking_does_not_change_results():
    sim = torch.randn(103, 17)
    target = torch.randint(0, 17, (103,))
    assert text_to_audio(sim, target, chunk_elements=50) == text_to_audio(sim, target)
    assert audio_to_text(sim.t(), target, chunk_elements=7) == audio_to_text(sim.t(), target)


def test_relevant_ranks_padding_and_per_query_values():
    sim = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    idx = torch.tensor([[0, 2], [1, 0]])
    mask = torch.tensor([[True, True], [True, False]])
    ranks = relevant_ranks(sim, idx, mask)
    assert ranks[0].tolist() == [3.0, 2.0] and ranks[1, 0].item() == 2.0 and ranks[1, 1].item() == float("inf")
    pq = per_query_metrics(sim, idx, mask, ks=(1,), map_k=10)
    assert pq["rank"].tolist() == [2.0, 2.0]
    assert pq["mAP@10"].tolist() == pytest.approx([(1 / 2 + 2 / 3) / 2, 1 / 2])


def test_bad_inputs_raise_clear_errors():
    sim = torch.randn(4, 3)
    with pytest.raises(ValueError, match="target.*shape \\[4\\]"):
        text_to_audio(sim, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="audio index 3"):
        text_to_audio(sim, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="NaN"):
        text_to_audio(torch.full((4, 3), float("nan")), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="2-D"):
        text_to_audio(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer audio indices"):
        text_to_audio(sim, torch.zeros(4))
    with pytest.raises(ValueError, match="relevance"):
        retrieval_metrics(sim, torch.zeros(4, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="cut-offs"):
        text_to_audio(sim, torch.zeros(4, dtype=torch.long), ks=(0,))


def test_bootstrap_ci():
    gen = torch.Generator().manual_seed(4)
    target = torch.arange(50).repeat_interleave(5)
    sim = torch.randn(250, 50, generator=gen)
    sim[torch.arange(250), target] += 1.5
    ci = bootstrap_ci(sim, target, n_boot=300, seed=0)
    point = text_to_audio(sim, target)
    for key, (value, low, high) in ci.items():
        assert value == pytest.approx(point[key])
        assert low < value < high
    assert ci == bootstrap_ci(sim, target, n_boot=300, seed=0)  # seeded
    # captions of one clip fully correlated (all hit or all miss): resampling whole clips must give a
    # much wider interval (about sqrt(5) x) than pretending the 250 captions are independent
    corr = torch.zeros(250, 50)
    corr[torch.arange(250), target] = torch.where(target < 25, 1.0, -1.0)
    naive = bootstrap_ci(corr, target, n_boot=400, seed=0)["R@1"]
    clustered = bootstrap_ci(corr, target, n_boot=400, seed=0, groups=target)["R@1"]
    assert naive[0] == clustered[0] == pytest.approx(50.0)
    assert clustered[2] - clustered[1] > 1.5 * (naive[2] - naive[1])
    a2t = bootstrap_ci(sim.t(), target, direction="a2t", n_boot=100)
    assert a2t["R@1"][0] == pytest.approx(audio_to_text(sim.t(), target)["R@1"])
    # a perfect ranking has a degenerate interval
    perfect = bootstrap_ci(torch.eye(6), torch.arange(6), n_boot=50)
    assert perfect["R@1"] == pytest.approx((100.0, 100.0, 100.0))
    with pytest.raises(ValueError, match="groups"):
        bootstrap_ci(sim, target, groups=torch.zeros(3))
    with pytest.raises(ValueError, match="direction"):
        bootstrap_ci(sim, target, direction="x")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():  # pragma: no cover - not exercised on the CPU-only machines
    sim = torch.randn(200, 40)
    target = torch.randint(0, 40, (200,))
    assert text_to_audio(sim.cuda(), target.cuda()) == pytest.approx(text_to_audio(sim, target))
    assert audio_to_text(sim.t().cuda(), target.cuda()) == pytest.approx(audio_to_text(sim.t(), target))
