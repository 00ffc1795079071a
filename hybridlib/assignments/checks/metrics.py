"""Checks of exercise 1: pessimistic ranks, mAP@k and R@k with several relevant items and ties.

The reference is :mod:`hybridlib.metrics` (``text_to_audio`` with a boolean relevance matrix, ``relevant_ranks``).
Students write three functions on a similarity matrix ``sim [Q, A]`` (rows are queries) and a boolean
relevance matrix ``relevant [Q, A]`` (every row has at least one relevant item, at most ``k``):

* ``pessimistic_ranks(sim, relevant) -> [Q, A]`` - 1-based rank of every relevant item; an irrelevant item
  with the same score ranks before it, tied relevant items in any order; non-relevant entries are ignored;
* ``map_at_k(sim, relevant, k=10) -> float`` - mAP@k in percent;
* ``recall_at_k(sim, relevant, k) -> float`` - R@k in percent (a query is a hit when any relevant item is
  in the top k).
"""

from __future__ import annotations

import math

import torch

from hybridlib import metrics as M
from hybridlib.assignments.checks.common import (
    as_number,
    as_tensor,
    call,
    close,
    fail,
    first_counterexample,
    passed,
    reference_blocked,
    show,
)

REFERENCES = (
    "hybridlib.metrics.text_to_audio",
    "hybridlib.metrics.audio_to_text",
    "hybridlib.metrics.retrieval_metrics",
    "hybridlib.metrics.per_query_metrics",
    "hybridlib.metrics.relevant_ranks",
    "hybridlib.metrics.bootstrap_ci",
)


# ------------------------------------------------------------------------------------------- reference
def reference_ranks(sim: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """``[Q, A]`` pessimistic ranks of the relevant items (``inf`` elsewhere), from ``hybridlib.metrics``."""
    order = torch.sort((~relevant).to(torch.int8), dim=1, stable=True).indices  # relevant columns first
    width = max(1, int(relevant.sum(1).max()))
    rel_idx = order[:, :width]
    rel_mask = relevant.gather(1, rel_idx)
    ranks = M.relevant_ranks(sim, rel_idx, rel_mask).double()
    out = torch.full(sim.shape, math.inf, dtype=torch.float64)
    rows = torch.arange(sim.shape[0])[:, None].expand_as(rel_idx)
    out[rows[rel_mask], rel_idx[rel_mask]] = ranks[rel_mask]
    return out


def reference_map(sim, relevant, k: int = 10) -> float:
    return M.text_to_audio(sim, relevant, ks=(1,), map_k=k)[f"mAP@{k}"]


def reference_recall(sim, relevant, k: int) -> float:
    return M.text_to_audio(sim, relevant, ks=(k,), map_k=10)[f"R@{k}"]


# ------------------------------------------------------------------------------------------- cases
def random_case(gen: torch.Generator, max_q: int, max_a: int, multi: bool, ties: bool, max_rel: int = 5):
    """A random ``(sim, relevant)``: float64 scores (integers 0-3 when ``ties``), 1 or up to ``max_rel``
    relevant items per row."""
    q = int(torch.randint(1, max_q + 1, (1,), generator=gen))
    a = int(torch.randint(2, max_a + 1, (1,), generator=gen))
    if ties:
        sim = torch.randint(0, 4, (q, a), generator=gen).double()
    else:
        sim = torch.randn(q, a, generator=gen, dtype=torch.float64)
    n_rel = torch.ones(q, dtype=torch.long)
    if multi:
        n_rel = torch.randint(1, min(max_rel, a) + 1, (q,), generator=gen)
    perm = torch.argsort(torch.rand(q, a, generator=gen), dim=1)
    relevant = torch.zeros(q, a, dtype=torch.bool)
    relevant[torch.arange(a)[None, :].expand(q, a) < n_rel[:, None]] = True
    relevant = relevant.gather(1, torch.argsort(perm, dim=1))
    return sim, relevant


def _case_text(sim, relevant) -> str:
    return f"sim = {show(sim, 2)}, relevant = {show(relevant)}"


def _student(fn, *args, **kwargs):
    with reference_blocked([fn], REFERENCES, "metric"):
        return call(fn, *args, **kwargs)


# ------------------------------------------------------------------------------------------- ranks
def _sorted_relevant(ranks: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    ranks = torch.as_tensor(ranks).double()
    return torch.where(relevant, ranks, torch.full_like(ranks, math.inf)).sort(dim=1).values


def _ranks_agree(fn, sim, relevant) -> bool:
    got = _student(fn, sim, relevant)
    got = as_tensor(got, "pessimistic_ranks", tuple(sim.shape))
    return close(_sorted_relevant(got, relevant), _sorted_relevant(reference_ranks(sim, relevant), relevant))


def _optimistic_ranks(sim, relevant):
    """Ranks with ties broken in the relevant item's favour (the mistake the checks recognise)."""
    s = sim.unsqueeze(2)  # [Q, A(me), 1]
    others = sim.unsqueeze(1)  # [Q, 1, A(other)]
    cols = torch.arange(sim.shape[1])
    before = (others > s) | ((others == s) & (cols[None, None, :] < cols[None, :, None]))
    irrelevant_above = ((others > s) & ~relevant.unsqueeze(1)).sum(2)
    relevant_before = (before & relevant.unsqueeze(1)).sum(2)
    return (irrelevant_above + relevant_before + 1).double()


def _check_ranks(fn, seed: int, multi: bool, ties: bool, n_cases: int, title: str) -> None:
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(n_cases):
        sim, relevant = random_case(gen, 30, 40, multi, ties)
        if _ranks_agree(fn, sim, relevant):
            continue
        small = first_counterexample(lambda g: random_case(g, 2, 5, multi, ties), lambda s, r: _ranks_agree(fn, s, r),
                                     seed) or (sim, relevant)
        s, r = small
        got = as_tensor(_student(fn, s, r), "pessimistic_ranks")
        expected = reference_ranks(s, r)
        hint = ""
        if ties and close(_sorted_relevant(got, r), _sorted_relevant(_optimistic_ranks(s, r), r)):
            hint = ("your ranks break ties in favour of the relevant item; ties are pessimistic: an irrelevant "
                    "item with exactly the same score ranks BEFORE the relevant one (count scores >=, not >). ")
        elif close(_sorted_relevant(got + 1, r), _sorted_relevant(expected, r)):
            hint = "your ranks are 0-based; the best item has rank 1. "
        fail(f"{hint}pessimistic_ranks is wrong on {_case_text(s, r)}: expected ranks of the relevant items "
             f"{show(torch.where(r, expected, torch.zeros_like(expected)))}, got "
             f"{show(torch.where(r, torch.as_tensor(got).double(), torch.zeros_like(expected)))} "
             "(0 marks a non-relevant entry, which is not checked)")
    passed(title, n_cases)


def visible_ranks(pessimistic_ranks) -> None:
    """One relevant item per row, no ties: a small example you can check by hand."""
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4]], dtype=torch.float64)
    relevant = torch.tensor([[False, False, True], [False, True, False]])
    got = as_tensor(_student(pessimistic_ranks, sim, relevant), "pessimistic_ranks", (2, 3))
    if not (close(got[0, 2], 2.0) and close(got[1, 1], 1.0)):
        fail(f"one relevant item per row: {_case_text(sim, relevant)} should give ranks 2 (row 0) and 1 (row 1), "
             f"got {show(got[0, 2])} and {show(got[1, 1])}")
    passed("visible ranks example", 1)


def visible_ranks_ties(pessimistic_ranks) -> None:
    """A tie and a row with two relevant items."""
    sim = torch.tensor([[0.5, 0.5, 0.1]], dtype=torch.float64)
    relevant = torch.tensor([[True, False, False]])
    got = as_tensor(_student(pessimistic_ranks, sim, relevant), "pessimistic_ranks", (1, 3))
    if not close(got[0, 0], 2.0):
        fail(f"ties are pessimistic: in {_case_text(sim, relevant)} the irrelevant item with the same score 0.5 "
             f"ranks first, so the relevant item has rank 2 (count scores >=, not >), got {show(got[0, 0])}")
    sim = torch.tensor([[0.3, 0.9, 0.6, 0.1]], dtype=torch.float64)
    relevant = torch.tensor([[True, False, True, False]])
    got = as_tensor(_student(pessimistic_ranks, sim, relevant), "pessimistic_ranks", (1, 4))
    if not (close(got[0, 2], 2.0) and close(got[0, 0], 3.0)):
        fail(f"two relevant items: {_case_text(sim, relevant)}: ranks 3 (column 0) and 2 (column 2), got "
             f"{show(got[0, 0])} and {show(got[0, 2])}")
    passed("visible ranks examples with a tie and two relevant items", 2)


def hidden_ranks_single(pessimistic_ranks, seed: int = 0) -> None:
    _check_ranks(pessimistic_ranks, seed, multi=False, ties=False, n_cases=20,
                 title="ranks, one relevant item, random scores")


def hidden_ranks_ties(pessimistic_ranks, seed: int = 0) -> None:
    _check_ranks(pessimistic_ranks, seed + 1, multi=True, ties=True, n_cases=30,
                 title="ranks, several relevant items, ties")


# ------------------------------------------------------------------------------------------- mAP@k
def _probe(value, expected: float, wrongs: dict[str, float], case: str, what: str) -> None:
    if close(value, expected, atol=1e-4, rtol=1e-5):
        return
    for message, wrong in wrongs.items():
        if close(value, wrong, atol=1e-4, rtol=1e-5):
            fail(f"{message}\n  case: {case}\n  expected {what} = {expected:.4f}, got {value:.4f}")
    if close(value * 100, expected, atol=1e-3, rtol=1e-5):
        fail(f"{what} must be in percent (0-100), like hybridlib.metrics; got {value:.4f}, expected {expected:.4f}\n"
             f"  case: {case}")
    fail(f"{what} is wrong\n  case: {case}\n  expected {expected:.4f}, got {value:.4f}")


def _one_row(scores: list[float], relevant_cols: list[int]):
    sim = torch.tensor([scores], dtype=torch.float64)
    relevant = torch.zeros_like(sim, dtype=torch.bool)
    relevant[0, relevant_cols] = True
    return sim, relevant


def _map_value(fn, sim, relevant, k=10) -> float:
    return as_number(_student(fn, sim, relevant, k=k), "map_at_k")


def _random_map(fn, seed: int, multi: bool, n_cases: int, title: str) -> None:
    gen = torch.Generator().manual_seed(int(seed))
    for i in range(n_cases):
        k = (10, 5, 3, 1)[i % 4]
        sim, relevant = random_case(gen, 25, 30, multi, ties=i % 2 == 1, max_rel=min(5, k))

        def agree(s, r, k=k):
            return close(_map_value(fn, s, r, k), reference_map(s, r, k), atol=1e-4)

        if agree(sim, relevant):
            continue
        small = first_counterexample(lambda g, k=k: random_case(g, 2, 14, multi, ties=True, max_rel=min(5, k)),
                                     agree, seed) or (sim, relevant)
        s, r = small
        fail(f"map_at_k(k={k}) differs from the reference on {_case_text(s, r)}: expected "
             f"{reference_map(s, r, k):.4f}, got {_map_value(fn, s, r, k):.4f}")
    passed(title, n_cases)


def visible_map(map_at_k) -> None:
    sim, relevant = _one_row([0.1, 0.9, 0.5], [2])
    _probe(_map_value(map_at_k, sim, relevant), 50.0, {}, _case_text(sim, relevant) + " (relevant item at rank 2)",
           "mAP@10")
    sim = torch.tensor([[0.9, 0.2, 0.1, 0.3, 0.4], [0.9, 0.2, 0.1, 0.3, 0.4]], dtype=torch.float64)
    relevant = torch.tensor([[True, False, False, False, False], [False, True, False, False, False]])
    _probe(_map_value(map_at_k, sim, relevant), 62.5, {}, _case_text(sim, relevant) + " (ranks 1 and 4)", "mAP@10")
    passed("visible mAP examples", 2)


def visible_map_multi(map_at_k) -> None:
    sim, relevant = _one_row([0.9, 0.8, 0.7, 0.6], [0, 2])  # ranks 1 and 3: (1/1 + 2/3) / 2
    _probe(_map_value(map_at_k, sim, relevant), 100 * (1 + 2 / 3) / 2, {},
           _case_text(sim, relevant) + " (relevant at ranks 1 and 3: precisions 1/1 and 2/3)", "mAP@10")
    passed("visible mAP example with two relevant items", 1)


def hidden_map_single(map_at_k, seed: int = 0) -> None:
    """One relevant item per query: 1/rank inside the top k, 0 outside; pessimistic ties; percent."""
    scores = [1.0 - 0.05 * i for i in range(12)]
    sim, relevant = _one_row(scores, [10])  # rank 11
    _probe(_map_value(map_at_k, sim, relevant, 10), 0.0,
           {"your mAP counts a relevant item outside the top 10: with k = 10 an item at rank 11 contributes 0": 100 / 11},
           _case_text(sim, relevant) + " (the relevant item is at rank 11)", "mAP@10")
    sim, relevant = _one_row(scores[:6], [4])  # rank 5, k = 3
    _probe(_map_value(map_at_k, sim, relevant, 3), 0.0,
           {"your mAP ignores its argument k: with k = 3 an item at rank 5 contributes 0": 20.0},
           _case_text(sim, relevant) + " (rank 5, k = 3)", "mAP@3")
    sim, relevant = _one_row([0.7, 0.7, 0.7, 0.1], [1])  # tied with two irrelevant: pessimistic rank 3
    _probe(_map_value(map_at_k, sim, relevant), 100 / 3,
           {"ties must be pessimistic: the relevant item tied with two irrelevant ones has rank 3, not 1": 100.0,
            "ties must be pessimistic: the relevant item tied with two irrelevant ones has rank 3, not 2 "
            "(do not break ties by column order)": 50.0},
           _case_text(sim, relevant), "mAP@10")
    _random_map(map_at_k, seed + 2, multi=False, n_cases=16, title="mAP@k, one relevant item, random scores and ties")


def hidden_map_multi(map_at_k, seed: int = 0) -> None:
    """Several relevant items: precision j/rank at each relevant item in the top k, divided by their number."""
    sim, relevant = _one_row([1.0 - 0.02 * i for i in range(25)], [0, 1, 19])  # ranks 1, 2, 20
    _probe(_map_value(map_at_k, sim, relevant), 100 * 2 / 3,
           {"AP@k divides by the number of relevant items of the query (3 here), not by the number found in the "
            "top k (2)": 100.0,
            "your mAP counts a relevant item outside the top 10 (rank 20)": 100 * (1 + 1 + 3 / 20) / 3},
           _case_text(sim, relevant) + " (relevant at ranks 1, 2 and 20)", "mAP@10")
    sim, relevant = _one_row([0.9, 0.8, 0.7, 0.1], [1, 2])  # ranks 2 and 3
    _probe(_map_value(map_at_k, sim, relevant), 100 * (1 / 2 + 2 / 3) / 2,
           {"the precision at a relevant item is j / rank, where j counts the relevant items ranked at or before it "
            "(you used 1 / rank)": 100 * (1 / 2 + 1 / 3) / 2,
            "with several relevant items, average the precision over all of them (you kept only the best one)": 50.0},
           _case_text(sim, relevant) + " (relevant at ranks 2 and 3)", "mAP@10")
    _random_map(map_at_k, seed + 3, multi=True, n_cases=24, title="mAP@k, several relevant items, random scores and ties")


# ------------------------------------------------------------------------------------------- R@k
def _recall_value(fn, sim, relevant, k) -> float:
    return as_number(_student(fn, sim, relevant, k=k), "recall_at_k")


def visible_recall(recall_at_k) -> None:
    sim, relevant = _one_row([0.9, 0.8, 0.3, 0.2, 0.1], [2])  # rank 3
    for k, expected in ((1, 0.0), (3, 100.0), (5, 100.0)):
        _probe(_recall_value(recall_at_k, sim, relevant, k), expected, {},
               _case_text(sim, relevant) + " (relevant at rank 3)", f"R@{k}")
    passed("visible recall examples", 3)


def hidden_recall(recall_at_k, seed: int = 0) -> None:
    scores = [1.0 - 0.05 * i for i in range(12)]
    sim, relevant = _one_row(scores, [2, 7])  # ranks 3 and 8
    _probe(_recall_value(recall_at_k, sim, relevant, 5), 100.0,
           {"R@k counts a query as a hit when ANY of its relevant items is in the top k (not the fraction of its "
            "relevant items found)": 50.0},
           _case_text(sim, relevant) + " (relevant at ranks 3 and 8)", "R@5")
    sim, relevant = _one_row(scores, [4])  # rank 5
    _probe(_recall_value(recall_at_k, sim, relevant, 5), 100.0,
           {"an item at rank k is inside the top k (rank <= k, not < k)": 0.0},
           _case_text(sim, relevant) + " (relevant at rank 5)", "R@5")
    sim, relevant = _one_row([0.6, 0.6, 0.2], [0])  # tie with an irrelevant item: pessimistic rank 2
    _probe(_recall_value(recall_at_k, sim, relevant, 1), 0.0,
           {"ties must be pessimistic: the relevant item tied with an irrelevant one has rank 2, so R@1 = 0": 100.0},
           _case_text(sim, relevant), "R@1")
    gen = torch.Generator().manual_seed(int(seed) + 4)
    n = 0
    for i in range(24):
        k = (1, 5, 10)[i % 3]
        sim, relevant = random_case(gen, 25, 30, multi=True, ties=i % 2 == 0)

        def agree(s, r, k=k):
            return close(_recall_value(recall_at_k, s, r, k), reference_recall(s, r, k), atol=1e-4)

        n += 1
        if agree(sim, relevant):
            continue
        s, r = first_counterexample(lambda g: random_case(g, 2, 12, multi=True, ties=True), agree, seed) or (sim, relevant)
        fail(f"recall_at_k(k={k}) differs from the reference on {_case_text(s, r)}: expected "
             f"{reference_recall(s, r, k):.2f}, got {_recall_value(recall_at_k, s, r, k):.2f}")
    passed("R@1/5/10, several relevant items, random scores and ties", n + 3)
