"""Checks of exercise 3: the transformer pooling's global token (masked mean + learned bias) with a padding mask.

The references are :func:`hybridlib.util.tensors.length_mask`, :func:`hybridlib.util.tensors.masked_mean` and
:class:`hybridlib.models.pooling.TransformerPooling`.
Students write

* ``valid_mask(lengths, steps) -> Bool[B, T]`` - True at the valid (not padded) frames;
* ``masked_mean(x, mask) -> [B, D]`` - mean over the valid frames of ``x [B, T, D]``, zeros for an empty row;
* ``global_token(x, lengths, bias) -> [B, D]`` - masked mean of the projected frames plus the learned bias;
* ``pool(pooling, frames, lengths) -> [B, d_model]`` - the forward pass of a ``TransformerPooling`` (its
  ``input_proj``, ``global_bias`` and ``layers``) with their own global token and padding mask.
"""

from __future__ import annotations

import torch

from hybridlib.assignments.checks.common import (
    as_tensor,
    call,
    close,
    fail,
    passed,
    reference_blocked,
    show,
)
from hybridlib.models import pooling as P
from hybridlib.util import tensors as U

REFERENCES = (
    "hybridlib.util.tensors.length_mask",
    "hybridlib.util.tensors.masked_mean",
    "hybridlib.util.tensors.masked_max",
    "hybridlib.util.tensors.masked_max_mean",
    "hybridlib.models.pooling.TransformerPooling.forward",
    "hybridlib.models.pooling.MeanPooling.forward",
)


def _student(fn, *args):
    with reference_blocked([fn], REFERENCES, "pooling"):
        return call(fn, *args)


def random_sequences(gen: torch.Generator, max_b: int = 6, max_t: int = 12, max_d: int = 8, dtype=torch.float64):
    """``(x [B, T, D], lengths [B])`` with lengths in ``[1, T]`` (at least one full-length row)."""
    b = int(torch.randint(1, max_b + 1, (1,), generator=gen))
    t = int(torch.randint(1, max_t + 1, (1,), generator=gen))
    d = int(torch.randint(1, max_d + 1, (1,), generator=gen))
    x = torch.randn(b, t, d, generator=gen, dtype=dtype)
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    lengths[int(torch.randint(0, b, (1,), generator=gen))] = t
    return x, lengths


def reference_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    return U.length_mask(lengths, steps)


def _perturb_padding(x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    noise = 100 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    return torch.where(mask.unsqueeze(-1), x, noise)


# ------------------------------------------------------------------------------------------- mask
def visible_valid_mask(valid_mask) -> None:
    got = as_tensor(_student(valid_mask, torch.tensor([2, 3]), 4), "valid_mask", (2, 4))
    expected = torch.tensor([[True, True, False, False], [True, True, True, False]])
    if got.dtype != torch.bool:
        fail(f"valid_mask must return a boolean tensor, got dtype {got.dtype}")
    if not torch.equal(got, expected):
        fail(f"valid_mask(lengths=[2, 3], steps=4) should be {show(expected)}, got {show(got)}")
    passed("visible mask example", 1)


def hidden_valid_mask(valid_mask, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(20):
        x, lengths = random_sequences(gen)
        steps = x.shape[1]
        expected = reference_mask(lengths, steps)
        got = as_tensor(_student(valid_mask, lengths, steps), "valid_mask", tuple(expected.shape))
        if got.dtype != torch.bool:
            fail(f"valid_mask must return a boolean tensor, got dtype {got.dtype}")
        if torch.equal(got, expected):
            continue
        case = f"lengths = {show(lengths)}, steps = {steps}"
        if torch.equal(got, ~expected):
            fail(f"your mask is inverted: here True marks the VALID frames (nn.MultiheadAttention's key_padding_mask "
                 f"is the opposite, True = ignore)\n  case: {case}")
        if torch.equal(got, reference_mask(torch.clamp(lengths + 1, max=steps), steps)) or torch.equal(
                got, reference_mask(lengths - 1, steps)):
            fail(f"your mask is off by one: a sequence of length n has valid frames 0 .. n-1\n  case: {case}")
        fail(f"valid_mask is wrong\n  case: {case}\n  expected {show(expected)}, got {show(got)}")
    passed("masks of random lengths", 20)


# ------------------------------------------------------------------------------------------- masked mean
def _mean_mistake(got, x, mask) -> str | None:
    got = got.detach()
    m = mask.unsqueeze(-1).to(x.dtype)
    if close(got, x.mean(1)):
        return "your mean counts padded frames: divide the sum over the VALID frames by their number, not by T"
    if close(got, (x * m).sum(1)):
        return "divide the sum over the valid frames by their number (you returned the sum)"
    if close(got, (x * m).sum(1) / x.shape[1]):
        return "your mean zeroes the padded frames but still divides by T: divide by the number of valid frames"
    return None


def visible_masked_mean(masked_mean) -> None:
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    got = as_tensor(_student(masked_mean, x, mask), "masked_mean", (1, 2))
    if not close(got, [[2.0, 3.0]]):
        hint = _mean_mistake(got, x, mask) or "masked_mean is wrong"
        fail(f"{hint}\n  case: masked_mean(x={show(x)}, mask={show(mask)}) should be [[2.0, 3.0]] (the padded frame "
             f"[100, 100] is ignored), got {show(got)}")
    passed("visible masked-mean example", 1)


def hidden_masked_mean(masked_mean, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed) + 1)
    n = 0
    for _ in range(16):
        x, lengths = random_sequences(gen)
        mask = reference_mask(lengths, x.shape[1])
        expected = U.masked_mean(x, mask)
        xg = x.clone().requires_grad_(True)
        got = as_tensor(_student(masked_mean, xg, mask), "masked_mean", tuple(expected.shape))
        n += 1
        if not close(got.detach(), expected, atol=1e-9, rtol=1e-9):
            hint = _mean_mistake(got, x, mask) or "masked_mean is wrong"
            fail(f"{hint}\n  case: x = {show(x, 2)}, mask = {show(mask)}\n  expected {show(expected)}, got {show(got)}")
        (grad,) = torch.autograd.grad(got.sum(), xg, allow_unused=True)
        if grad is None or bool((grad[~mask] != 0).any()):
            fail("padded frames must not influence the mean: their gradient must be exactly 0 (use the mask to "
                 "select or zero them, do not just subtract them)")
        perturbed = _perturb_padding(x, mask, gen)
        if not close(_student(masked_mean, perturbed, mask), expected, atol=1e-9):
            fail("the values of padded frames changed your result: only frames where mask is True may count")
    x = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[True, False, False], [False, False, False]])
    got = as_tensor(_student(masked_mean, x, mask), "masked_mean", (2, 4))
    if bool(torch.isnan(got).any()) or not close(got[1], torch.zeros(4)):
        fail(f"a row without any valid frame must give zeros, not NaN (clamp the count to at least 1); got {show(got[1])}")
    passed("masked mean: values, padding ignored, gradients, empty rows", n + 1)


# ------------------------------------------------------------------------------------------- global token
def _token_mistake(got, x, lengths, bias) -> str | None:
    got = got.detach()
    mask = reference_mask(lengths, x.shape[1])
    if close(got, U.masked_mean(x, mask)):
        return "add the learned bias to the masked mean (the global token is mean + bias)"
    if close(got, x.mean(1) + bias):
        return "your global token averages padded frames too: use the mask of `lengths`"
    return None


def visible_global_token(global_token) -> None:
    x = torch.tensor([[[1.0, 1.0], [3.0, 5.0]], [[2.0, 0.0], [9.0, 9.0]]], dtype=torch.float64)
    bias = torch.tensor([0.5, -1.0], dtype=torch.float64)
    got = as_tensor(_student(global_token, x, torch.tensor([2, 1]), bias), "global_token", (2, 2))
    expected = torch.tensor([[2.5, 2.0], [2.5, -1.0]], dtype=torch.float64)
    if not close(got, expected):
        hint = _token_mistake(got, x, torch.tensor([2, 1]), bias) or "global_token is wrong"
        fail(f"{hint}\n  case: global_token(x={show(x)}, lengths=[2, 1], bias={show(bias)}) should be {show(expected)} "
             f"(row 1 has one valid frame), got {show(got)}")
    passed("visible global-token example", 1)


def hidden_global_token(global_token, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed) + 2)
    for _ in range(16):
        x, lengths = random_sequences(gen)
        bias = torch.randn(x.shape[-1], generator=gen, dtype=torch.float64)
        mask = reference_mask(lengths, x.shape[1])
        expected = U.masked_mean(x, mask) + bias
        bias_g = bias.clone().requires_grad_(True)
        got = as_tensor(_student(global_token, x, lengths, bias_g), "global_token", tuple(expected.shape))
        case = f"x = {show(x, 2)}, lengths = {show(lengths)}, bias = {show(bias, 2)}"
        if not close(got.detach(), expected, atol=1e-9):
            hint = _token_mistake(got, x, lengths, bias) or "global_token is wrong"
            fail(f"{hint}\n  case: {case}\n  expected {show(expected)}, got {show(got)}")
        (grad,) = torch.autograd.grad(got.sum(), bias_g, allow_unused=True)
        if grad is None or not close(grad, torch.full_like(bias, x.shape[0])):
            fail("the bias must receive a gradient like a plain addition: d(sum of tokens)/d(bias) = B for every "
                 "channel; do not detach or copy it")
    passed("global token: values and bias gradient", 16)


# ------------------------------------------------------------------------------------------- pool
def make_pooling(gen: torch.Generator, in_dim: int, d_model: int, num_layers: int, num_heads: int):
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    pooling = P.TransformerPooling(in_dim, d_model, num_layers=num_layers, num_heads=num_heads, dropout=0.0)
    with torch.no_grad():
        pooling.global_bias.normal_()  # a non-zero bias, so forgetting it shows
    return pooling.double().eval()


def _variant(pooling, frames, lengths, token_from_encoded=False, token_pe=False, mask_mode="ignore",
             mean_all=False):
    """A pooling forward with one of the mistakes the checks recognise."""
    valid = reference_mask(lengths, frames.shape[1])
    x = pooling.input_proj(frames)
    pe = P.sinusoidal_encoding(frames.shape[1], pooling.d_model, dtype=x.dtype)[None]
    base = x + pe if token_from_encoded else x
    token = (base.mean(1) if mean_all else U.masked_mean(base, valid)) + pooling.global_bias
    seq = torch.cat([(token + pe[:, 0] if token_pe else token)[:, None], x + pe], dim=1)
    keep = torch.cat([torch.ones(len(lengths), 1, dtype=torch.bool), valid], dim=1)
    padding = {"ignore": ~keep, "valid": keep, "none": torch.zeros_like(keep)}[mask_mode]
    for layer in pooling.layers:
        seq, _ = layer(seq, padding)
    return seq[:, 0]


MISTAKES = (
    ("nn.MultiheadAttention's key_padding_mask is True where a position must be IGNORED: pass ~valid (and False "
     "for the global token), not the valid mask", dict(mask_mode="valid")),
    ("padded frames are attended to: pass the padding mask (True = padded) to every layer", dict(mask_mode="none")),
    ("the global token is the masked mean of the projected frames BEFORE the positional encoding is added",
     dict(token_from_encoded=True)),
    ("the global token gets no positional encoding (it is not a time step); only the frames do",
     dict(token_pe=True)),
    ("your global token averages padded frames: use the masked mean", dict(mean_all=True)),
)


def _check_pool(pool, pooling, frames, lengths, gen) -> None:
    # everything under no_grad: nn.MultiheadAttention takes another (fused) code path with and without autograd
    with torch.no_grad():
        expected = pooling(frames, lengths).pooled
        got = _student(pool, pooling, frames, lengths)
    got = as_tensor(got, "pool", tuple(expected.shape))
    case = f"B = {frames.shape[0]}, T = {frames.shape[1]}, lengths = {show(lengths)}, " \
           f"{len(pooling.layers)} layer(s), d_model = {pooling.d_model}"
    if not close(got.detach(), expected, atol=1e-6, rtol=1e-5):
        with torch.no_grad():
            for message, kwargs in MISTAKES:
                if close(got.detach(), _variant(pooling, frames, lengths, **kwargs), atol=1e-6, rtol=1e-5):
                    fail(f"{message}\n  case: {case}")
        fail(f"pool differs from TransformerPooling.forward\n  case: {case}\n  expected {show(expected, 3)}, "
             f"got {show(got, 3)}")
    valid = reference_mask(lengths, frames.shape[1])
    perturbed = _perturb_padding(frames, valid, gen)
    with torch.no_grad():
        again = as_tensor(_student(pool, pooling, perturbed, lengths), "pool")
    if not close(again.detach(), expected, atol=1e-6, rtol=1e-5):
        fail(f"the values of padded frames changed your pooled output: mask them in the global token and in "
             f"attention\n  case: {case}")


def visible_pool(pool) -> None:
    gen = torch.Generator().manual_seed(0)
    pooling = make_pooling(gen, in_dim=6, d_model=8, num_layers=1, num_heads=2)
    frames = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64)
    _check_pool(pool, pooling, frames, torch.tensor([5, 3]), gen)
    passed("visible pooling example (equals TransformerPooling on 2 clips)", 2)


def hidden_pool(pool, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(int(seed) + 3)
    for i in range(8):
        heads = (1, 2, 4)[i % 3]
        pooling = make_pooling(gen, in_dim=int(torch.randint(2, 10, (1,), generator=gen)), d_model=4 * heads,
                               num_layers=1 + i % 2, num_heads=heads)
        frames, lengths = random_sequences(gen, max_b=5, max_t=10, max_d=1)
        frames = torch.randn(frames.shape[0], frames.shape[1], pooling.in_dim, generator=gen, dtype=torch.float64)
        _check_pool(pool, pooling, frames, lengths, gen)
    passed("pooling equals TransformerPooling on random clips, lengths and layers; padding ignored", 16)
