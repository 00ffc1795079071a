"""Pooling: transformer pooling with global token, masks, extra tokens, attention; mean and max+mean."""

from __future__ import annotations

import math

import pytest
import torch

from hybridlib.models.pooling import (
    EncoderLayer,
    MaxMeanPooling,
    MeanPooling,
    PooledOutput,
    TransformerPooling,
    sinusoidal_encoding,
)


def test_sinusoidal_encoding_values():
    pe = sinusoidal_encoding(50, 16)
    assert pe.shape == (50, 16)
    pos, i = 7, 3
    assert pe[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert torch.equal(pe[0, 0::2], torch.zeros(8)) and torch.equal(pe[0, 1::2], torch.ones(8))


def test_encoder_layer_equals_pytorch_default_layer():
    ours = EncoderLayer(32, 4, 64, dropout=0.0).eval()
    ref = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 9, 32)
    pad = torch.zeros(3, 9, dtype=torch.bool)
    pad[1, 6:] = True
    out, _ = ours(x, pad)
    expected = ref(x, src_key_padding_mask=pad)
    torch.testing.assert_close(out[0], expected[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1, :6], expected[1, :6], atol=1e-5, rtol=1e-5)


def test_global_token_starts_as_masked_mean_plus_bias():
    pool = TransformerPooling(12, 8, num_layers=0, num_heads=2).eval()
    with torch.no_grad():
        pool.global_bias.copy_(torch.arange(8.0))
    frames = torch.randn(2, 5, 12)
    lengths = torch.tensor([5, 3])
    out = pool(frames, lengths)
    proj = pool.input_proj(frames)
    torch.testing.assert_close(out.pooled[0], proj[0].mean(0) + torch.arange(8.0))
    torch.testing.assert_close(out.pooled[1], proj[1, :3].mean(0) + torch.arange(8.0))


def test_padding_is_ignored_and_batch_equals_one_by_one():
    torch.manual_seed(1)
    pool = TransformerPooling(20, 16, num_layers=2, num_heads=4).eval()
    frames = torch.randn(3, 7, 20)
    lengths = torch.tensor([7, 4, 1])
    out = pool(frames, lengths).pooled
    garbage = frames.clone()
    garbage[1, 4:] = 1e3
    garbage[2, 1:] = -50.0
    torch.testing.assert_close(pool(garbage, lengths).pooled, out)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(pool(frames[i : i + 1, :n]).pooled[0], out[i], atol=1e-5, rtol=1e-5)
    # the positional encoding makes order matter
    assert not torch.allclose(pool(frames[:1].flip(1)).pooled, out[:1], atol=1e-4)


def test_extra_tokens_returned_and_masked_tokens_are_invisible():
    pool = TransformerPooling(10, 8, num_layers=2, num_heads=2).eval()
    frames = torch.randn(2, 6, 10)
    lengths = torch.tensor([6, 3])
    token = torch.randn(2, 1, 8)
    base = pool(frames, lengths)
    assert isinstance(base, PooledOutput) and base.extra is None and base.attention is None
    with_tok = pool(frames, lengths, extra_tokens=token)
    assert with_tok.extra.shape == (2, 1, 8)
    assert not torch.allclose(with_tok.pooled, base.pooled, atol=1e-4)  # the audio token attends to it
    masked = pool(frames, lengths, extra_tokens=token, extra_mask=torch.tensor([[True], [False]]))
    torch.testing.assert_close(masked.pooled[1], base.pooled[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked.pooled[0], with_tok.pooled[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="extra_tokens"):
        pool(frames, lengths, extra_tokens=torch.randn(2, 1, 5))


def test_attention_weights_shape_and_masking():
    pool = TransformerPooling(10, 8, num_layers=3, num_heads=2).eval()
    frames = torch.randn(2, 5, 10)
    out = pool(frames, torch.tensor([5, 2]), extra_tokens=torch.randn(2, 1, 8), return_attention=True)
    assert len(out.attention) == 3
    for weights in out.attention:
        assert weights.shape == (2, 7, 7)  # global + 5 frames + 1 extra
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 7))
        assert weights[1, :, 3:6].abs().max() == 0  # padded frames of clip 1 get no attention


@pytest.mark.parametrize("num_layers,n_extra", [(1, 0), (2, 0), (1, 1), (3, 2)])
def test_last_layer_computing_only_the_read_tokens_equals_the_full_layer(num_layers, n_extra):
    """Without ``return_attention`` the last layer computes only the global and extra tokens' outputs: the
    same outputs and the same gradients as the full layer (which ``return_attention`` still runs)."""
    torch.manual_seed(3)
    pool = TransformerPooling(10, 8, num_layers=num_layers, num_heads=2, dropout=0.0).train()
    frames, lengths = torch.randn(3, 9, 10), torch.tensor([9, 4, 1])
    extra = torch.randn(3, n_extra, 8) if n_extra else None
    outs, grads = [], []
    for full in (False, True):
        pool.zero_grad()
        out = pool(frames, lengths, extra_tokens=extra, return_attention=full)
        loss = out.pooled.pow(2).sum() + (out.extra.sum() if n_extra else 0)
        loss.backward()
        outs.append(out)
        grads.append({n: p.grad.clone() for n, p in pool.named_parameters() if p.grad is not None})
    fast, full = outs
    torch.testing.assert_close(fast.pooled, full.pooled, atol=1e-6, rtol=1e-5)
    if n_extra:
        assert fast.extra.shape == full.extra.shape == (3, n_extra, 8)
        torch.testing.assert_close(fast.extra, full.extra, atol=1e-6, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_gradients_reach_projection_and_global_bias():
    pool = TransformerPooling(10, 8, num_layers=1, num_heads=2).train()
    pool(torch.randn(4, 6, 10), torch.tensor([6, 5, 2, 1])).pooled.pow(2).sum().backward()
    assert pool.global_bias.grad.abs().sum() > 0 and pool.input_proj.weight.grad.abs().sum() > 0


def test_mean_and_max_mean_pooling():
    frames = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]]])
    lengths = torch.tensor([2])
    mean = MeanPooling(2, 2)
    with torch.no_grad():
        mean.proj.weight.copy_(torch.eye(2))
        mean.proj.bias.zero_()
    out = mean(frames, lengths, extra_tokens=torch.zeros(1, 1, 2))
    assert out.pooled.tolist() == [[2.0, 1.0]] and out.extra is None
    mm = MaxMeanPooling(2, 2)
    with torch.no_grad():
        mm.proj.weight.copy_(torch.eye(2))
        mm.proj.bias.zero_()
    assert mm(frames, lengths).pooled.tolist() == [[5.0, 5.0]]  # max (3, 4) + mean (2, 1)
    torch.testing.assert_close(mm(frames).pooled, torch.tensor([[100.0 + 104.0 / 3, 100.0 + 102.0 / 3]]))
