"""Checks of exercise 2: NT-Xent and triplet-max with the same-clip mask, loop-free.

The reference is :mod:`hybridlib.losses` (``nt_xent``, ``triplet_max``, both directions summed, each averaged
over the batch). Students write ``nt_xent(sim, same_item=None, tau=0.07)`` and
``triplet_max(sim, same_item=None, margin=0.2)`` on a ``[B, B]`` similarity matrix (rows audios, columns
captions, positives on the diagonal); ``same_item[i, j]`` is True when audio i and caption j belong to the
same clip (the diagonal included), and such pairs are never negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hybridlib import losses as L
from hybridlib.assignments.checks.common import (
    AnswerError,
    call,
    close,
    fail,
    passed,
    python_loops,
    reference_blocked,
    show,
)

REFERENCES = (
    "hybridlib.losses.nt_xent",
    "hybridlib.losses.triplet_max",
    "hybridlib.losses.triplet_sum",
    "hybridlib.losses.triplet_weighted",
    "hybridlib.losses.get_loss",
    "hybridlib.losses.negative_response",
)


def random_batch(gen: torch.Generator, max_b: int = 24, masked: bool = True, min_b: int = 2):
    """``(sim, same_item)``: cosine similarities of random unit vectors (float64) and a same-clip mask from
    random clip ids (about two captions per clip), or None."""
    b = int(torch.randint(min_b, max_b + 1, (1,), generator=gen))
    a = F.normalize(torch.randn(b, 8, generator=gen, dtype=torch.float64), dim=1)
    t = F.normalize(a + 0.8 * torch.randn(b, 8, generator=gen, dtype=torch.float64), dim=1)
    sim = a @ t.T
    same = None
    if masked:
        clips = torch.randint(0, max(1, (b + 1) // 2), (b,), generator=gen)
        same = clips[:, None] == clips[None, :]
    return sim, same


def _value_and_grad(fn, sim, same, **kwargs):
    x = sim.clone().requires_grad_(True)
    out = fn(x, same_item=same, **kwargs)
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        fail(f"`{getattr(fn, '__name__', 'your loss')}` must return a scalar tensor (one number for the batch), got "
             f"{type(out).__name__}{'' if not isinstance(out, torch.Tensor) else ' of shape ' + str(tuple(out.shape))}")
    if not out.requires_grad:
        fail(f"`{getattr(fn, '__name__', 'your loss')}` returned a tensor without a gradient: compute it with torch "
             "operations on `sim` (no .item(), .detach(), .numpy() or torch.tensor(...) of intermediate values)")
    (grad,) = torch.autograd.grad(out.reshape(()), x, allow_unused=True)
    return out.detach().reshape(()), (torch.zeros_like(sim) if grad is None else grad)


def _student(fn, sim, same, **kwargs):
    with reference_blocked([fn], REFERENCES, "loss"):
        return call(_value_and_grad, fn, sim, same, what=getattr(fn, "__name__", "your loss"), **kwargs)


def _reference(fn, sim, same, **kwargs):
    return _value_and_grad(fn, sim, same, **kwargs)


def _case(sim, same) -> str:
    return f"sim = {show(sim, 3)}, same_item = {show(same) if same is not None else None}"


def _mismatch(name: str, got, expected, mistakes: list, sim, same, extra: str = "") -> str | None:
    """None when value and gradient agree with the reference, else the message for the student."""
    value, grad = got
    ref_value, ref_grad = expected
    if close(value, ref_value, atol=1e-6, rtol=1e-6):
        if not close(grad, ref_grad, atol=1e-6, rtol=1e-5):
            return (f"{name} has the right value but the wrong gradient with respect to `sim`{extra}: expected "
                    f"{show(ref_grad, 4)}, got {show(grad, 4)}. Keep every step differentiable (no .item(), "
                    "no .detach(), no in-place writes into tensors that need a gradient)")
        return None
    for message, wrong in mistakes:
        if wrong is not None and close(value, wrong, atol=1e-6, rtol=1e-6):
            return (f"{message}\n  case{extra}: {_case(sim, same)}\n  expected {ref_value.item():.6f}, "
                    f"got {value.item():.6f}")
    return (f"{name} differs from the reference{extra}\n  case: {_case(sim, same)}\n  expected "
            f"{ref_value.item():.6f}, got {value.item():.6f}")


def _check(name, student_fn, reference_fn, mistakes_fn, seed: int, masked: bool, n_cases: int, title: str,
           hyper: str, values: tuple) -> None:
    """Random batches (B 2-24) against the reference; a failure is reported on the smallest batch (B 2-4)
    that shows it."""
    gen = torch.Generator().manual_seed(int(seed))
    for i in range(n_cases):
        sim, same = random_batch(gen, masked=masked)
        kwargs = {hyper: values[i % len(values)]}

        def message(sim, same, kwargs=kwargs):
            return _mismatch(name, _student(student_fn, sim, same, **kwargs), _reference(reference_fn, sim, same, **kwargs),
                             mistakes_fn(sim, same, *kwargs.values()), sim, same,
                             extra=f" ({hyper} = {kwargs[hyper]})")

        found = message(sim, same)
        if found is None:
            continue
        small_gen = torch.Generator().manual_seed(int(seed))
        for _ in range(200):
            small = random_batch(small_gen, max_b=4, masked=masked)
            small_found = message(*small)
            if small_found is not None:
                fail(small_found)
        fail(found)
    passed(title, n_cases)


# ------------------------------------------------------------------------------------------- NT-Xent
def _check_nt_xent(nt_xent, seed: int, masked: bool, n_cases: int, title: str) -> None:
    _check("nt_xent", nt_xent, L.nt_xent, _nt_xent_mistakes, seed, masked, n_cases, title, "tau", (0.07, 0.5, 1.0))


def _nt_xent_mistakes(sim, same, tau) -> list[tuple[str, torch.Tensor | None]]:
    b = sim.shape[0]
    eye = torch.eye(b, dtype=torch.bool)
    keep = (~same | eye) if same is not None else torch.ones_like(eye)
    logits = (sim / tau).masked_fill(~keep, float("-inf"))
    pos = logits.diagonal()
    a2t = (torch.logsumexp(logits, 1) - pos).mean()
    t2a = (torch.logsumexp(logits, 0) - pos).mean()
    one_way = "your NT-Xent is one-directional: add the audio-to-text term (softmax over each row) and the " \
              "text-to-audio term (softmax over each column)"
    out = [
        (one_way, a2t),
        (one_way, t2a),
        ("sum the two directions (Mei et al. eq. 7), do not average them", (a2t + t2a) / 2),
        ("divide the similarities by the temperature tau before the softmax",
         L.nt_xent(sim, tau=1.0, same_item=same) if tau != 1.0 else None),
        ("average over the batch (the 1/B in eq. 7), do not sum over anchors", b * (a2t + t2a) if b > 1 else None),
    ]
    if same is not None and bool((same & ~eye).any()):
        out.insert(0, ("your NT-Xent uses captions of the same clip as negatives: remove the pairs marked in "
                       "`same_item` from the softmax denominators (the diagonal, the positive, stays)",
                       L.nt_xent(sim, tau=tau)))
    return out


def visible_nt_xent(nt_xent) -> None:
    sim = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    value, _ = _student(nt_xent, sim, None, tau=1.0)
    expected = float(L.nt_xent(sim, tau=1.0))
    if not close(value, expected, atol=1e-6):
        rows = [float(torch.logsumexp(sim[i], 0) - sim[i, i]) for i in range(2)]
        cols = [float(torch.logsumexp(sim[:, i], 0) - sim[i, i]) for i in range(2)]
        fail(f"2x2 example, tau = 1: sim = {show(sim)}; the row terms {rows[0]:.4f}, {rows[1]:.4f} and the column "
             f"terms {cols[0]:.4f}, {cols[1]:.4f}, averaged over the batch and summed, give {expected:.6f}; got "
             f"{float(value):.6f}")
    passed("visible NT-Xent example", 1)


def visible_nt_xent_masked(nt_xent) -> None:
    sim = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    value, _ = _student(nt_xent, sim, torch.ones(2, 2, dtype=torch.bool), tau=0.07)
    if not close(value, 0.0, atol=1e-9):
        fail(f"when both captions belong to the same clip (same_item all True) no negative is left and the loss is 0, "
             f"got {float(value):.6f}: your NT-Xent uses captions of the same clip as negatives; remove the pairs "
             "marked in `same_item` from the softmax denominators (the diagonal, the positive, stays)")
    passed("visible NT-Xent example with the same-clip mask", 1)


def hidden_nt_xent(nt_xent, seed: int = 0) -> None:
    _check_nt_xent(nt_xent, seed, masked=False, n_cases=12, title="NT-Xent values and gradients, no mask")


def hidden_nt_xent_masked(nt_xent, seed: int = 0) -> None:
    _check_nt_xent(nt_xent, seed + 1, masked=True, n_cases=16, title="NT-Xent values and gradients, same-clip mask")
    sim = torch.tensor([[0.5]], dtype=torch.float64)
    value, _ = _student(nt_xent, sim, None, tau=0.07)
    if not close(value, 0.0, atol=1e-9):
        fail(f"a batch of one pair has no negative and NT-Xent = 0, got {float(value)}")


# ------------------------------------------------------------------------------------------- triplet-max
def _triplet_mistakes(sim, same, margin) -> list[tuple[str, torch.Tensor | None]]:
    b = sim.shape[0]
    eye = torch.eye(b, dtype=torch.bool)
    negatives = ~eye if same is None else (~eye & ~same)
    pos = sim.diagonal()
    cost_a2t = F.relu(margin + sim - pos[:, None]).masked_fill(~negatives, 0.0)
    cost_t2a = F.relu(margin + sim - pos[None, :]).masked_fill(~negatives, 0.0)
    n_neg = negatives.sum(1).clamp(min=1)
    a2t, t2a = cost_a2t.amax(1).sum() / b, cost_t2a.amax(0).sum() / b
    with_diag_a2t = F.relu(margin + sim - pos[:, None]) if same is None else \
        F.relu(margin + sim - pos[:, None]).masked_fill(same & ~eye, 0.0)
    with_diag_t2a = F.relu(margin + sim - pos[None, :]) if same is None else \
        F.relu(margin + sim - pos[None, :]).masked_fill(same & ~eye, 0.0)
    one_way = "your triplet-max is one-directional: add the audio-anchor term (hardest caption in each row) and " \
              "the caption-anchor term (hardest audio in each column)"
    out = [
        ("triplet-max uses only the hardest negative of each anchor (max over j), not the sum over all negatives "
         "(that is triplet-sum)", L.triplet_sum(sim, margin=margin, same_item=same)),
        ("triplet-max uses only the hardest negative of each anchor (max over j), not the mean over negatives",
         (cost_a2t.sum(1) / n_neg).sum() / b + (cost_t2a.sum(0) / n_neg).sum() / b),
        (one_way, a2t),
        (one_way, t2a),
        ("the positive pair (diagonal) is not a negative: exclude it before taking the hardest negative",
         with_diag_a2t.amax(1).sum() / b + with_diag_t2a.amax(0).sum() / b),
        ("average over the batch (1/B), do not sum over anchors", b * (a2t + t2a) if b > 1 else None),
    ]
    if same is not None and bool((same & ~eye).any()):
        out.insert(0, ("your triplet-max picks a caption of the same clip as the hardest negative: exclude the pairs "
                       "marked in `same_item` before taking the max", L.triplet_max(sim, margin=margin)))
    return out


def _check_triplet(triplet_max, seed: int, masked: bool, n_cases: int, title: str) -> None:
    _check("triplet_max", triplet_max, L.triplet_max, _triplet_mistakes, seed, masked, n_cases, title, "margin",
           (0.2, 0.5, 1.0))


def visible_triplet_max(triplet_max) -> None:
    sim = torch.tensor([[0.8, 0.7, 0.1], [0.0, 0.9, 0.2], [0.3, 0.4, 0.5]], dtype=torch.float64)
    value, grad = _student(triplet_max, sim, None, margin=0.2)
    expected, ref_grad = _reference(L.triplet_max, sim, None, margin=0.2)
    if not close(value, expected, atol=1e-6):
        fail(f"3x3 example, margin 0.2: sim = {show(sim)}; audio anchors: hardest captions 0.7, 0.2, 0.4 -> hinges "
             f"0.1, 0, 0.1; caption anchors: hardest audios 0.3, 0.7, 0.2 -> 0, 0, 0; loss (0.2 + 0) / 3 = "
             f"{float(expected):.6f}, got {float(value):.6f}")
    if not close(grad, ref_grad, atol=1e-6):
        fail(f"3x3 example: only the hardest negatives with a positive hinge get a gradient: expected "
             f"{show(ref_grad)}, got {show(grad)}")
    passed("visible triplet-max example", 2)


def hidden_triplet_max(triplet_max, seed: int = 0) -> None:
    _check_triplet(triplet_max, seed + 2, masked=False, n_cases=12, title="triplet-max values and gradients, no mask")


def hidden_triplet_max_masked(triplet_max, seed: int = 0) -> None:
    _check_triplet(triplet_max, seed + 3, masked=True, n_cases=16,
                   title="triplet-max values and gradients, same-clip mask")
    sim = torch.tensor([[0.5, 0.9], [0.9, 0.5]], dtype=torch.float64)
    value, _ = _student(triplet_max, sim, torch.ones(2, 2, dtype=torch.bool), margin=0.2)
    if not close(value, 0.0, atol=1e-9):
        fail(f"an anchor without any usable negative contributes 0 (sim = {show(sim)}, same_item all True), got "
             f"{float(value)}")


# ------------------------------------------------------------------------------------------- loop-free
def visible_loop_free(*fns) -> None:
    for fn in fns:
        loops = python_loops(fn)
        if loops is None:
            print(f"note: the source of {fn.__name__} is not available, so it was not checked for loops")
            continue
        if loops:
            fail(f"`{fn.__name__}` must be loop-free (tensor operations over the whole batch), but has a Python loop: "
                 + "; ".join(loops))
    passed("loop-free", len(fns))


def hidden_vmap(*fns, seed: int = 0) -> None:
    """Each loss runs unchanged under ``torch.func.vmap`` over a stack of batches (a loop-free function does)."""
    from torch.func import vmap

    gen = torch.Generator().manual_seed(int(seed) + 4)
    sims = torch.stack([random_batch(gen, max_b=6, min_b=6, masked=False)[0] for _ in range(5)])
    for fn in fns:
        expected = torch.stack([call(fn, s) for s in sims]).detach()
        try:
            with reference_blocked([fn], REFERENCES, "loss"):
                got = vmap(fn)(sims)
        except AnswerError:
            raise
        except Exception as exc:
            fail(f"`{fn.__name__}` does not run under torch.func.vmap ({type(exc).__name__}: {str(exc)[:160]}); "
                 "write it with whole-tensor operations only: no Python loops over rows, no .item(), no "
                 "data-dependent if")
        if not close(got.detach(), expected, atol=1e-6):
            fail(f"`{fn.__name__}` gives different values under torch.func.vmap: {show(got)} vs {show(expected)}")
    passed("losses vectorise under torch.func.vmap", len(fns))
