"""Fusion blocks: gated embedding units, query weights, score mixing, missing metadata, late/mid fusion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hybridlib.models.fusion import (
    GatedEmbeddingUnit,
    LateFusion,
    MidFusion,
    MissingMetadata,
    QueryWeights,
    effective_weights,
    l2_normalize,
    make_projection,
    mix_scores,
)
from hybridlib.util.tensors import masked_max_mean


def test_gated_embedding_unit_matches_miech_equations():
    geu = GatedEmbeddingUnit(6, 4)
    x = torch.randn(3, 6)
    z = x @ geu.linear.weight.T + geu.linear.bias
    y = z * torch.sigmoid(z @ geu.gate.weight.T + geu.gate.bias)
    expected = y / y.norm(dim=1, keepdim=True)
    out = geu(x)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_gated_embedding_unit_options():
    geu = GatedEmbeddingUnit(5, 3, batch_norm=True, normalize=False)
    assert isinstance(geu.gate_norm, nn.BatchNorm1d)
    out = geu(torch.randn(4, 5) * 10)
    assert not torch.allclose(out.norm(dim=1), torch.ones(4))


def test_query_weights_are_a_softmax_of_a_linear_map():
    qw = QueryWeights(8, 2)
    q = torch.randn(5, 8)
    w = qw(q)
    assert w.shape == (5, 2)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(5))
    torch.testing.assert_close(w, torch.softmax(q @ qw.linear.weight.T + qw.linear.bias, dim=1))
    assert bool((w > 0).all())


def test_effective_weights_zero_missing_modalities_and_renormalise():
    weights = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    available = torch.tensor([[True, True], [True, False]])
    w = effective_weights(weights, available, 2)
    assert w.shape == (2, 2, 2)
    torch.testing.assert_close(w[:, 0], weights)  # item 0 has both modalities
    torch.testing.assert_close(w[:, 1], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2))
    torch.testing.assert_close(effective_weights(weights, None, 3)[:, 2], weights)


def test_effective_weights_rejects_items_without_any_modality():
    with pytest.raises(ValueError, match="at least one"):
        effective_weights(torch.tensor([[0.5, 0.5]]), torch.tensor([[False, False]]), 1)
    with pytest.raises(ValueError, match="shape"):
        effective_weights(torch.tensor([[0.5, 0.5]]), torch.tensor([[True, True]]), 2)


def test_mix_scores_is_the_weighted_sum():
    s_a = torch.tensor([[0.5, -0.2, 0.1]])
    s_m = torch.tensor([[0.9, 0.4, -1.0]])
    w = torch.tensor([[0.25, 0.75]])
    torch.testing.assert_close(mix_scores([s_a, s_m], w), 0.25 * s_a + 0.75 * s_m)
    avail = torch.tensor([[True, True], [True, False], [True, True]])
    mixed = mix_scores([s_a, s_m], w, avail)
    torch.testing.assert_close(mixed, torch.tensor([[0.25 * 0.5 + 0.75 * 0.9, -0.2, 0.25 * 0.1 - 0.75]]))


def test_mei_clip_pooling_ignores_padding():
    frames = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [100.0, 100.0]],
                           [[0.0, 1.0], [2.0, 5.0], [4.0, -3.0]]])
    out = masked_max_mean(frames, torch.tensor([2, 3]))
    expected = torch.tensor([[3.0 + 2.0, 0.0 - 1.0], [4.0 + 2.0, 5.0 + 1.0]])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(masked_max_mean(frames[1:]), expected[1:])


def test_make_projection_shapes_follow_mei():
    mlp = make_projection("mlp", 512, 64, hidden_mult=2)
    layers = list(mlp)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (512, 128, 64)
    assert isinstance(make_projection("linear", 4, 2), nn.Linear)
    with pytest.raises(ValueError, match="projection"):
        make_projection("conv", 4, 2)


def test_missing_metadata_learned_and_audio_only():
    meta = torch.randn(3, 4)
    has = torch.tensor([True, False, True])
    learned = MissingMetadata(4, "learned")
    filled, present = learned(meta, has)
    torch.testing.assert_close(filled[[0, 2]], meta[[0, 2]])
    torch.testing.assert_close(filled[1], learned.embedding.detach())
    assert present.tolist() == [True, True, True]
    fallback = MissingMetadata(4, "audio-only")
    assert list(fallback.parameters()) == []
    filled, present = fallback(meta, has)
    assert present.tolist() == [True, False, True]
    assert filled[1].abs().sum() == 0
    with pytest.raises(ValueError, match="missing_metadata"):
        MissingMetadata(4, "zeros")


def test_late_fusion_sums_and_drops_absent_metadata():
    late = LateFusion(4, 4)
    audio, meta = torch.randn(2, 4), torch.randn(2, 4)
    out = late(audio, meta, torch.tensor([True, False]))
    torch.testing.assert_close(out[0], audio[0] + meta[0])
    torch.testing.assert_close(out[1], audio[1])
    wide = LateFusion(6, 4)
    assert isinstance(wide.metadata_proj, nn.Linear)
    assert wide(torch.randn(2, 6), meta, torch.tensor([True, True])).shape == (2, 6)


class _TokenEcho(nn.Module):
    """Minimal pooling double for MidFusion: pooled = mean of frames, extra tokens returned unchanged."""

    def forward(self, frames, lengths=None, extra_tokens=None, extra_mask=None, return_attention=False):
        from collections import namedtuple

        out = namedtuple("PooledOutput", "pooled extra attention")
        return out(frames.mean(dim=1), extra_tokens, None)


def test_mid_fusion_scores_mix_two_cosines_with_query_weights():
    mid = MidFusion(_TokenEcho(), text_dim=5, d_model=5, retrieval_dim=3)
    frames, meta = torch.randn(4, 7, 5), torch.randn(4, 5)
    present = torch.tensor([True, True, False, True])
    audio, metav, _ = mid.embed_items(frames, None, meta, present)
    assert audio.shape == metav.shape == (4, 3)
    torch.testing.assert_close(audio, l2_normalize(mid.audio_out(frames.mean(1))))
    torch.testing.assert_close(metav, l2_normalize(mid.metadata_out(mid.token_proj(meta))))
    qa, qm, w = mid.embed_queries(torch.randn(2, 5))
    assert qa.shape == qm.shape == (2, 3) and w.shape == (2, 2)
    scores = MidFusion.score(qa, qm, w, audio, metav, present)
    manual = w[:, :1] * (qa @ audio.T) + w[:, 1:] * (qm @ metav.T)
    manual[:, 2] = (qa @ audio.T)[:, 2]  # item 2 lacks metadata: its score is the audio cosine alone
    torch.testing.assert_close(scores, manual)


def test_mid_fusion_rejects_pooling_without_extra_tokens():
    class NoExtra(_TokenEcho):
        def forward(self, frames, lengths=None, extra_tokens=None, extra_mask=None, return_attention=False):
            out = super().forward(frames, lengths)
            return out._replace(extra=None)

    mid = MidFusion(NoExtra(), 4, 4, 2)
    with pytest.raises(TypeError, match="transformer"):
        mid.embed_items(torch.randn(1, 3, 4), None, torch.randn(1, 4), torch.tensor([True]))


def test_token_attention_shares_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    from hybridlib.viz.fusion import plot_query_weights, plot_token_attention, token_attention_shares

    # 2 items, 3 frames (+ global + metadata token): hand-made rows
    w = torch.zeros(2, 5, 5)
    w[:, 0] = torch.tensor([0.1, 0.2, 0.2, 0.2, 0.3])   # global token: 0.6 on frames, 0.3 on metadata
    w[:, -1] = torch.tensor([0.5, 0.1, 0.1, 0.1, 0.2])  # metadata token
    shares = token_attention_shares([w, w], n_frames=3)
    assert list(shares) == [1, 2]
    g = shares[1]["global token"]
    assert g == pytest.approx({"global token": 0.1, "frames": 0.6, "metadata token": 0.3})
    assert shares[2]["metadata token"]["global token"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="layer 1"):
        token_attention_shares([w], n_frames=4)
    fig = plot_token_attention([w], n_frames=3)
    assert len(fig.axes[0].patches) == 2 * 3  # two bars (global, metadata) x three stacked parts
    fig = plot_query_weights(["a", "b"], torch.tensor([[0.3, 0.7], [0.9, 0.1]]))
    assert len(fig.axes[0].patches) == 4
    with pytest.raises(ValueError, match="weights"):
        plot_query_weights(["a"], torch.tensor([[0.3, 0.7], [0.9, 0.1]]))
    import matplotlib.pyplot as plt

    plt.close("all")
