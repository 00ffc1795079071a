"""Checks of exercise 4: late fusion and the query-derived score weights of mid-level fusion.

The reference is :mod:`hybridlib.models.fusion` (``LateFusion``, ``QueryWeights``, ``effective_weights``,
``mix_scores``). Students write

* ``late_fusion(audio, metadata, present) -> [B, D]`` - the sum, with the metadata term only where present;
* ``query_weights(query, weight, bias) -> [Q, M]`` - ``softmax(W q + b)`` over the M item modalities;
* ``effective_weights(weights, available, num_items) -> [Q, A, M]`` - a modality an item lacks gets weight 0,
  the others are renormalised to sum to 1 (``available`` None: all present);
* ``mix_scores(scores, weights, available=None) -> [Q, A]`` - the weighted sum of the per-modality score
  matrices with those weights.
"""

from __future__ import annotations

import torch

from hybridlib.assignments.checks.common import as_tensor, call, close, fail, passed, reference_blocked, show
from hybridlib.models import fusion as FU

REFERENCES = (
    "hybridlib.models.fusion.LateFusion.forward",
    "hybridlib.models.fusion.QueryWeights.forward",
    "hybridlib.models.fusion.effective_weights",
    "hybridlib.models.fusion.mix_scores",
    "hybridlib.models.fusion.MidFusion.score",
    "hybridlib.models.fusion.MissingMetadata.forward",
)


def _student(fn, *args, **kwargs):
    with reference_blocked([fn], REFERENCES, "fusion"):
        return call(fn, *args, **kwargs)


def _size(gen, lo, hi) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _available(gen, a: int, m: int) -> torch.Tensor:
    """Random availability ``[A, M]``: modality 0 (audio) always there, the others missing about half the time."""
    avail = torch.rand(a, m, generator=gen) < 0.5
    avail[:, 0] = True
    return avail


def _reference_query_weights(query, weight, bias):
    module = FU.QueryWeights(weight.shape[1], weight.shape[0]).double()
    with torch.no_grad():
        module.linear.weight.copy_(weight)
        module.linear.bias.copy_(bias)
    return module(query)


# ------------------------------------------------------------------------------------------- late fusion
def visible_late_fusion(late_fusion) -> None:
    audio = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    meta = torch.tensor([[0.5, 0.5], [2.0, 2.0]], dtype=torch.float64)
    present = torch.tensor([True, False])
    got = as_tensor(_student(late_fusion, audio, meta, present), "late_fusion", (2, 2))
    expected = torch.tensor([[1.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    if not close(got, expected):
        hint = ("items without metadata (present False) must keep their audio embedding unchanged: add the metadata "
                "term only where present") if close(got, audio + meta) else "late_fusion is wrong"
        fail(f"{hint}\n  case: late_fusion(audio={show(audio)}, metadata={show(meta)}, present=[True, False]) should "
             f"be {show(expected)}, got {show(got)}")
    passed("visible late-fusion example", 1)


def hidden_late_fusion(late_fusion, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(16):
        b, d = _size(gen, 1, 8), _size(gen, 1, 12)
        audio = torch.randn(b, d, generator=gen, dtype=torch.float64, requires_grad=True)
        meta = torch.randn(b, d, generator=gen, dtype=torch.float64, requires_grad=True)
        present = torch.rand(b, generator=gen) < 0.6
        expected = FU.LateFusion(d, d)(audio, meta, present)
        got = as_tensor(_student(late_fusion, audio, meta, present), "late_fusion", (b, d))
        case = f"audio = {show(audio, 2)}, metadata = {show(meta, 2)}, present = {show(present)}"
        if not close(got.detach(), expected.detach(), atol=1e-9):
            if close(got.detach(), (audio + meta).detach()):
                fail(f"items without metadata (present False) must keep their audio embedding unchanged: add the "
                     f"metadata term only where present\n  case: {case}")
            if close(got.detach(), torch.where(present[:, None], meta, audio).detach()):
                fail(f"late fusion SUMS audio and metadata (hybrid paper, Fig. 2); it does not replace the audio\n"
                     f"  case: {case}")
            fail(f"late_fusion is wrong\n  case: {case}\n  expected {show(expected)}, got {show(got)}")
        grads = torch.autograd.grad(got.sum(), (audio, meta), allow_unused=True)
        if grads[0] is None or grads[1] is None or not close(grads[1], present[:, None].double().expand(b, d)):
            fail("gradients must reach both embeddings (the metadata one only where present): keep it a plain sum")
    passed("late fusion: values, missing metadata, gradients", 16)


# ------------------------------------------------------------------------------------------- query weights
def visible_query_weights(query_weights) -> None:
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    weight = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    bias = torch.zeros(2, dtype=torch.float64)
    got = as_tensor(_student(query_weights, query, weight, bias), "query_weights", (2, 2))
    e = torch.softmax(torch.tensor([2.0, 0.0], dtype=torch.float64), 0)
    expected = torch.stack([e, e.flip(0)])
    if not close(got, expected):
        fail(f"query_weights(query={show(query)}, weight={show(weight)}, bias=[0, 0]) should be {show(expected)}, got "
             f"{show(got)}")
    passed("visible query-weights example", 1)


def hidden_query_weights(query_weights, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed) + 1)
    for _ in range(16):
        q, dt, m = _size(gen, 1, 7), _size(gen, 1, 10), _size(gen, 2, 4)
        query = torch.randn(q, dt, generator=gen, dtype=torch.float64)
        weight = torch.randn(m, dt, generator=gen, dtype=torch.float64)
        bias = torch.randn(m, generator=gen, dtype=torch.float64)
        expected = _reference_query_weights(query, weight, bias).detach()
        got = as_tensor(_student(query_weights, query, weight, bias), "query_weights", (q, m))
        if close(got.detach(), expected, atol=1e-9):
            continue
        logits = query @ weight.T + bias
        case = f"query = {show(query, 2)}, weight = {show(weight, 2)}, bias = {show(bias, 2)}"
        if close(got.detach(), torch.softmax(logits, 0)):
            fail(f"take the softmax over the modalities (the last dimension): each query's weights sum to 1\n  case: {case}")
        if close(got.detach(), torch.softmax(query @ weight.T, -1)):
            fail(f"add the bias b before the softmax: w(q) = softmax(W q + b)\n  case: {case}")
        if close(got.detach(), torch.sigmoid(logits)):
            fail(f"use a softmax over the modalities, not a sigmoid (the weights must sum to 1)\n  case: {case}")
        fail(f"query_weights is wrong\n  case: {case}\n  expected {show(expected)}, got {show(got)}")
    passed("query weights equal QueryWeights (softmax(W q + b))", 16)


# ------------------------------------------------------------------------------------------- effective weights
def visible_effective_weights(effective_weights) -> None:
    weights = torch.tensor([[0.7, 0.3]], dtype=torch.float64)
    available = torch.tensor([[True, True], [True, False]])
    got = as_tensor(_student(effective_weights, weights, available, 2), "effective_weights", (1, 2, 2))
    expected = torch.tensor([[[0.7, 0.3], [1.0, 0.0]]], dtype=torch.float64)
    if not close(got, expected):
        hint = ("after zeroing a missing modality, renormalise the remaining weights of each (query, item) to sum "
                "to 1") if close(got, [[[0.7, 0.3], [0.7, 0.0]]]) else "effective_weights is wrong"
        fail(f"{hint}\n  case: effective_weights(weights=[[0.7, 0.3]], available={show(available)}, num_items=2) "
             f"should be {show(expected)} (item 1 has no metadata: all weight on audio), got {show(got)}")
    passed("visible effective-weights example", 1)


def hidden_effective_weights(effective_weights, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed) + 2)
    for i in range(16):
        q, a, m = _size(gen, 1, 6), _size(gen, 1, 7), _size(gen, 2, 3)
        weights = torch.softmax(torch.randn(q, m, generator=gen, dtype=torch.float64), -1)
        available = None if i % 4 == 0 else _available(gen, a, m)
        expected = FU.effective_weights(weights, available, a)
        got = as_tensor(_student(effective_weights, weights, available, a), "effective_weights", (q, a, m))
        if close(got, expected, atol=1e-9):
            continue
        case = f"weights = {show(weights, 3)}, available = {show(available) if available is not None else None}"
        if available is not None:
            masked = weights[:, None, :] * available[None].double()
            if close(got, masked):
                fail(f"after zeroing a missing modality, renormalise the remaining weights of each (query, item) to "
                     f"sum to 1\n  case: {case}")
            if close(got, masked / masked.sum(dim=(0, 2), keepdim=True)):
                fail(f"renormalise over the modalities of one (query, item) pair, not over queries\n  case: {case}")
        fail(f"effective_weights is wrong\n  case: {case}\n  expected {show(expected, 3)}, got {show(got, 3)}")
    passed("effective weights: masking, renormalisation, all present", 16)


# ------------------------------------------------------------------------------------------- mixed scores
def visible_mix_scores(mix_scores) -> None:
    audio = torch.tensor([[0.8, 0.2]], dtype=torch.float64)
    meta = torch.tensor([[0.1, 0.9]], dtype=torch.float64)
    weights = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    available = torch.tensor([[True, True], [True, False]])
    got = as_tensor(_student(mix_scores, [audio, meta], weights, available), "mix_scores", (1, 2))
    expected = torch.tensor([[0.45, 0.2]], dtype=torch.float64)
    if not close(got, expected):
        if close(got, [[0.45, 0.1]]):
            fail("item 1 has no metadata, so its score must be its audio score 0.2: use the effective weights "
                 "(renormalised after removing the missing modality); you got 0.1")
        fail(f"mix_scores([audio={show(audio)}, metadata={show(meta)}], weights=[[0.5, 0.5]], available="
             f"{show(available)}) should be {show(expected)} (item 1 has no metadata: its score is the audio score), "
             f"got {show(got)}")
    passed("visible mixed-scores example", 1)


def hidden_mix_scores(mix_scores, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed) + 3)
    for i in range(16):
        q, a, m = _size(gen, 1, 6), _size(gen, 1, 7), _size(gen, 2, 3)
        scores = [torch.rand(q, a, generator=gen, dtype=torch.float64) * 2 - 1 for _ in range(m)]
        weights = torch.softmax(torch.randn(q, m, generator=gen, dtype=torch.float64), -1)
        available = None if i % 4 == 0 else _available(gen, a, m)
        expected = FU.mix_scores(scores, weights, available)
        got = as_tensor(_student(mix_scores, scores, weights, available), "mix_scores", (q, a))
        if close(got, expected, atol=1e-9):
            continue
        case = f"scores = {show(scores, 2)}, weights = {show(weights, 3)}, available = " \
               f"{show(available) if available is not None else None}"
        if close(got, FU.mix_scores(scores, weights, None)):
            fail(f"a modality an item lacks must not contribute to its score: use the effective weights\n  case: {case}")
        if close(got, torch.stack(scores, -1).mean(-1)):
            fail(f"weight each modality's score with the query's weight (you averaged them)\n  case: {case}")
        fail(f"mix_scores is wrong\n  case: {case}\n  expected {show(expected, 3)}, got {show(got, 3)}")
    passed("mixed scores equal mix_scores", 16)
