"""Checks of exercise 6's two measurements (the reference is :mod:`hybridlib.assignments.research`).

Students write ``effective_negatives(loss_fn, sim) -> float`` and ``near_duplicate_rate(sim, concepts) -> float``;
the experiment and the written answer of the exercise are graded by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hybridlib import losses as L
from hybridlib.assignments import research as R
from hybridlib.assignments.checks.common import as_number, call, close, fail, passed, reference_blocked, show

REFERENCES = (
    "hybridlib.assignments.research.negative_gradients",
    "hybridlib.assignments.research.effective_negatives",
    "hybridlib.assignments.research.near_duplicate_rate",
)
LOSS_FUNCTIONS = {"nt-xent": L.nt_xent, "triplet-max": L.triplet_max, "triplet-sum": L.triplet_sum}


def _student(fn, *args):
    with reference_blocked([fn], REFERENCES, "measurement"):
        return call(fn, *args)


def _batch(gen, max_b: int = 16):
    b = int(torch.randint(2, max_b + 1, (1,), generator=gen))
    concepts = torch.randint(0, max(1, b // 3), (b,), generator=gen)
    centres = torch.randn(int(concepts.max()) + 1, 8, generator=gen, dtype=torch.float64)
    a = F.normalize(centres[concepts] + 0.5 * torch.randn(b, 8, generator=gen, dtype=torch.float64), dim=1)
    t = F.normalize(a + 0.5 * torch.randn(b, 8, generator=gen, dtype=torch.float64), dim=1)
    return a @ t.T, concepts


def _participation(g: torch.Tensor) -> float:
    total = g.sum(1)
    active = total > 0
    return float((total[active] ** 2 / (g[active] ** 2).sum(1)).mean()) if bool(active.any()) else 0.0


def visible_effective_negatives(effective_negatives) -> None:
    sim = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]], dtype=torch.float64)
    value = as_number(_student(effective_negatives, L.triplet_sum, sim), "effective_negatives")
    if not close(value, 0.0):
        fail(f"triplet-sum on sim = {show(sim)} (every negative 0.8 below its positive, margin 0.2) gives no gradient "
             f"at all, so effective_negatives is 0, got {value}")
    sim = torch.full((4, 4), 0.2, dtype=torch.float64).fill_diagonal_(0.5)
    value = as_number(_student(effective_negatives, L.nt_xent, sim), "effective_negatives")
    if not close(value, 3.0, atol=1e-6):
        fail(f"NT-Xent on a batch of 4 whose negatives all score alike spreads the gradient evenly over the 3 "
             f"negatives of each row: effective_negatives = 3, got {value}")
    passed("visible effective-negatives examples", 2)


def hidden_effective_negatives(effective_negatives, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed))
    n = 0
    for i in range(18):
        name = list(LOSS_FUNCTIONS)[i % 3]
        loss_fn = LOSS_FUNCTIONS[name]
        sim, _ = _batch(gen)
        expected = R.effective_negatives(loss_fn, sim)
        value = as_number(_student(effective_negatives, loss_fn, sim), "effective_negatives")
        n += 1
        if close(value, expected, atol=1e-6, rtol=1e-6):
            continue
        x = sim.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(x), x)
        case = f"{name}, sim = {show(sim, 3)}"
        if close(value, _participation(grad.abs()), atol=1e-6):
            fail(f"exclude the diagonal: the positive pair is not a negative\n  case: {case}")
        off = grad.abs().masked_fill(torch.eye(sim.shape[0], dtype=torch.bool), 0.0)
        if close(value, float(off.sum() ** 2 / (off ** 2).sum()) if off.sum() > 0 else 0.0, atol=1e-6):
            fail(f"compute the participation ratio per anchor row, then average over the rows (you pooled the "
                 f"whole matrix)\n  case: {case}")
        fail(f"effective_negatives is wrong\n  case: {case}\n  expected {expected:.6f}, got {value:.6f}")
    passed("effective negatives of NT-Xent, triplet-max and triplet-sum on random batches", n)


def visible_near_duplicate_rate(near_duplicate_rate) -> None:
    sim = torch.tensor([[0.9, 0.8, 0.1], [0.7, 0.9, 0.2], [0.3, 0.1, 0.9]], dtype=torch.float64)
    concepts = torch.tensor([0, 0, 1])
    value = as_number(_student(near_duplicate_rate, sim, concepts), "near_duplicate_rate")
    if not close(value, 2 / 3):
        fail(f"sim = {show(sim)}, concepts = [0, 0, 1]: the hardest negatives are columns 1, 0, 0; rows 0 and 1 pick "
             f"a caption of their own concept, so the rate is 2/3, got {value}")
    passed("visible near-duplicate example", 1)


def hidden_near_duplicate_rate(near_duplicate_rate, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed) + 1)
    for _ in range(16):
        sim, concepts = _batch(gen)
        expected = R.near_duplicate_rate(sim, concepts)
        value = as_number(_student(near_duplicate_rate, sim, concepts), "near_duplicate_rate")
        if close(value, expected, atol=1e-9):
            continue
        case = f"sim = {show(sim, 3)}, concepts = {show(concepts)}"
        if close(value, float((concepts[sim.argmax(1)] == concepts).double().mean())):
            fail(f"the hardest NEGATIVE excludes the positive on the diagonal\n  case: {case}")
        fail(f"near_duplicate_rate is wrong\n  case: {case}\n  expected {expected:.4f}, got {value:.4f}")
    passed("near-duplicate rate on random batches", 16)
