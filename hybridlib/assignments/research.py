"""Exercise 6 (open research question): why do hard-negative losses suffer from large batches?

Mei et al. (Table 2) find that triplet-max and triplet-weighted degrade when the batch grows from 32 to 128
while NT-Xent does not. Two measurements on a batch's ``[B, B]`` similarity matrix (rows audios, columns
captions, positives on the diagonal) help a student test an explanation:

* :func:`effective_negatives` - how many negatives a loss actually learns from: for each audio anchor (row)
  the gradient magnitudes ``g_ij = |dL/ds_ij|`` over its negatives (``j != i``) give the participation ratio
  ``(sum_j g_ij)^2 / sum_j g_ij^2`` (``k`` for ``k`` equal weights, 1 when one negative takes everything);
  the result is its mean over the rows that receive any gradient (0 when none does). Gradients from both
  directions of the loss are included, as the optimiser sees them.
* :func:`near_duplicate_rate` - how often the hardest negative of an audio anchor (the most similar other
  caption of its row) shares the anchor's concept, i.e. is a near-duplicate rather than a true negative;
  with more items per batch, near-duplicates become likelier (:mod:`hybridlib.toy_embeddings` draws items from
  a fixed number of concepts).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def negative_gradients(loss_fn: Callable[[torch.Tensor], torch.Tensor], sim: torch.Tensor) -> torch.Tensor:
    """``|dL/ds_ij|`` for every pair, with the diagonal (positives) set to 0."""
    x = sim.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(x), x)
    grad = grad.abs()
    return grad.masked_fill(torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device), 0.0)


def effective_negatives(loss_fn: Callable[[torch.Tensor], torch.Tensor], sim: torch.Tensor) -> float:
    """Mean participation ratio of the negatives' gradient magnitudes per row (see the module docstring)."""
    g = negative_gradients(loss_fn, sim)
    total = g.sum(1)
    active = total > 0
    if not bool(active.any()):
        return 0.0
    ratio = total[active] ** 2 / (g[active] ** 2).sum(1)
    return float(ratio.mean())


def near_duplicate_rate(sim: torch.Tensor, concepts: torch.Tensor) -> float:
    """Fraction of rows whose hardest negative (max over ``j != i``) has the row's concept."""
    b = sim.shape[0]
    if b < 2:
        raise ValueError("a batch needs at least two pairs to have negatives")
    masked = sim.masked_fill(torch.eye(b, dtype=torch.bool, device=sim.device), float("-inf"))
    hardest = masked.argmax(1)
    concepts = torch.as_tensor(concepts, device=sim.device)
    return float((concepts[hardest] == concepts).double().mean())
