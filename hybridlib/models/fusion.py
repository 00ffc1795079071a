"""Fusion blocks of the hybrid retrieval model (Primus & Widmer, Figs. 2 and 3) and Mei et al.'s heads.

* :class:`GatedEmbeddingUnit` - Miech et al. (2018), eqs. (1)-(2): a linear layer followed by context
  gating, ``Z = W1 x + b1``, ``Y = Z * sigmoid(W2 Z + b2)``, then L2-normalised.
* :class:`QueryWeights` - Miech et al. eq. (3) / Gabeur et al. (MMT): one softmax weight per item
  modality computed from the query, ``w(q) = softmax(W q + b)``.
* :func:`effective_weights` / :func:`mix_scores` - the query weights restricted to the modalities an item
  actually has (MMT: a missing modality gets weight 0, the rest are renormalised to sum to 1).
* :class:`MissingMetadata` - what stands in for an item without metadata: a learned embedding
  (``"learned"``) or nothing at all (``"audio-only"``: the metadata term is dropped).
* :class:`LateFusion` - audio embedding + metadata embedding, summed (hybrid paper, Fig. 2).
* :class:`MidFusion` - the MMT-style mid-level fusion (hybrid paper, Fig. 3): the metadata embedding becomes an
  extra token of the transformer pooling, the transformed global audio token and metadata token are each
  projected into the retrieval space, two gated embedding units turn the query into an audio-query and a
  metadata-query vector, and the two cosine scores are mixed with the query's softmax weights.
* :func:`make_projection` - the item/query projections, including Mei et al.'s two-layer MLP heads (their
  clip-level max+mean pooling is :func:`hybridlib.util.tensors.masked_max_mean`).

All retrieval-space vectors are L2-normalised, so every score is a cosine similarity (both papers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hybridlib.models.config import MISSING_METADATA_MODES, PROJECTIONS


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit-length rows (a zero row stays zero), so dot products are cosine similarities."""
    return F.normalize(x, p=2.0, dim=-1, eps=eps)


def make_projection(kind: str, in_dim: int, out_dim: int, hidden_mult: int = 2) -> nn.Module:
    """A projection into the retrieval space.

    ``"linear"``: one ``nn.Linear`` (the hybrid paper: "projected into the shared retrieval space").
    ``"mlp"``: Mei et al.'s head, ``Linear(in, hidden_mult * out) -> ReLU -> Linear(hidden_mult * out, out)``;
    their code uses a hidden width of twice the joint embedding size (``hidden_mult=2``) on both sides.
    """
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        hidden = hidden_mult * out_dim
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
    raise ValueError(f"projection must be one of {PROJECTIONS}, got {kind!r}")


class GatedEmbeddingUnit(nn.Module):
    """Miech et al.'s gated embedding unit: linear layer, context gating, L2 normalisation.

    ``Z = W1 x + b1`` (eq. 1), ``Y = Z * sigmoid(W2 Z + b2)`` (eq. 2, context gating), ``Y / ||Y||``.
    Their code can batch-normalise ``W2 Z`` before the sigmoid; it is off by default here (``batch_norm``)
    because it makes a query's embedding depend on the rest of its batch during training.
    """

    def __init__(self, in_dim: int, out_dim: int, batch_norm: bool = False, normalize: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.gate = nn.Linear(out_dim, out_dim)
        self.gate_norm = nn.BatchNorm1d(out_dim) if batch_norm else nn.Identity()
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        y = z * torch.sigmoid(self.gate_norm(self.gate(z)))
        return l2_normalize(y) if self.normalize else y


class QueryWeights(nn.Module):
    """Softmax weights over the item modalities derived from the query: ``softmax(W q + b)`` -> ``[Q, M]``."""

    def __init__(self, in_dim: int, num_modalities: int = 2):
        super().__init__()
        self.linear = nn.Linear(in_dim, num_modalities)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(query), dim=-1)


def effective_weights(weights: torch.Tensor, available: torch.Tensor | None, num_items: int) -> torch.Tensor:
    """Per query-item weights ``[Q, A, M]``: a modality an item lacks gets 0, the others are renormalised.

    ``weights`` ``[Q, M]`` (rows sum to 1); ``available`` Bool ``[A, M]`` or None (all present). Each
    item must have at least one modality.
    """
    q, m = weights.shape
    w = weights[:, None, :].expand(q, num_items, m)
    if available is None:
        return w
    if available.shape != (num_items, m):
        raise ValueError(f"available must have shape [{num_items}, {m}], got {tuple(available.shape)}")
    if not bool(available.any(dim=1).all()):
        raise ValueError("every item needs at least one available modality")
    w = w * available[None, :, :].to(w.dtype)
    return w / w.sum(dim=-1, keepdim=True)


def mix_scores(scores: list[torch.Tensor], weights: torch.Tensor, available: torch.Tensor | None = None):
    """Weighted sum of per-modality score matrices ``[Q, A]`` with :func:`effective_weights`."""
    stacked = torch.stack(scores, dim=-1)  # [Q, A, M]
    if stacked.shape[-1] != weights.shape[-1] or stacked.shape[0] != weights.shape[0]:
        raise ValueError(f"{len(scores)} score matrices of shape {tuple(scores[0].shape)} do not match "
                         f"weights of shape {tuple(weights.shape)}")
    w = effective_weights(weights, available, stacked.shape[1])
    return (w * stacked).sum(dim=-1)


class MissingMetadata(nn.Module):
    """Stand-in for items without metadata.

    ``"learned"``: a learned vector (same space as the metadata embeddings) replaces the missing rows, and
    every item takes part in fusion as if it had metadata. ``"audio-only"``: missing rows are zeroed and
    reported absent, so the fusion uses the audio alone for them (late: the metadata term is dropped; mid:
    the metadata token is masked and its score weight set to 0).
    """

    def __init__(self, dim: int, mode: str = "learned", init_std: float = 0.02):
        super().__init__()
        if mode not in MISSING_METADATA_MODES:
            raise ValueError(f"missing_metadata must be one of {MISSING_METADATA_MODES}, got {mode!r}")
        self.mode = mode
        # small random init (BERT-style std) so the stand-in differs from every real embedding from step 0
        self.embedding = nn.Parameter(torch.randn(dim) * init_std) if mode == "learned" else None

    def forward(self, metadata: torch.Tensor, has_metadata: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(filled [B, D], present Bool[B])``."""
        has = has_metadata.to(device=metadata.device, dtype=torch.bool)
        if self.mode == "learned":
            filled = torch.where(has[:, None], metadata, self.embedding.to(metadata.dtype)[None, :])
            return filled, torch.ones_like(has)
        return metadata * has[:, None].to(metadata.dtype), has


class LateFusion(nn.Module):
    """Late fusion (hybrid paper, Fig. 2): ``fused = audio + metadata`` (the metadata term only where present).

    The paper sums the outputs of the two embedding models, which live in the same width when the pooling
    width equals the text width (``d_model = text_dim``, the default). If the widths differ, a linear map
    brings the metadata embedding to the audio width first (``metadata_proj``; identity otherwise).
    """

    def __init__(self, audio_dim: int, metadata_dim: int):
        super().__init__()
        self.metadata_proj = nn.Identity() if audio_dim == metadata_dim else nn.Linear(metadata_dim, audio_dim)

    def forward(self, audio: torch.Tensor, metadata: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        meta = self.metadata_proj(metadata) * present[:, None].to(audio.dtype)
        return audio + meta


class MidFusion(nn.Module):
    """MMT-style mid-level fusion (hybrid paper, Fig. 3; Gabeur et al.; Miech et al.).

    Item side: the metadata embedding ``[B, Dt]`` is projected to the pooling width (``token_proj``) and
    appended as one extra token to the transformer pooling's sequence (after the frames; the pooling adds
    positional encodings to the frames only). The transformed global audio token and the transformed
    metadata token are each projected into the retrieval space (``audio_out``, ``metadata_out``) and
    L2-normalised. Query side: two gated embedding units map the query embedding to an audio-query and a
    metadata-query vector; a linear layer + softmax on the query gives the two score weights.
    Score: ``s(q, i) = w_a(q) cos(q_a, i_a) + w_m(q) cos(q_m, i_m)``; for items whose metadata is absent
    (``missing_metadata="audio-only"``) the metadata token is masked out of attention, ``w_m = 0`` and the
    weights are renormalised (so ``s = cos(q_a, i_a)``).
    """

    def __init__(self, pooling: nn.Module, text_dim: int, d_model: int, retrieval_dim: int,
                 gate_batch_norm: bool = False, normalize: bool = True):
        super().__init__()
        self.pooling = pooling
        self.normalize = normalize
        self.token_proj = nn.Linear(text_dim, d_model)
        self.audio_out = nn.Linear(d_model, retrieval_dim)
        self.metadata_out = nn.Linear(d_model, retrieval_dim)
        self.query_audio = GatedEmbeddingUnit(text_dim, retrieval_dim, gate_batch_norm, normalize)
        self.query_metadata = GatedEmbeddingUnit(text_dim, retrieval_dim, gate_batch_norm, normalize)
        self.query_weights = QueryWeights(text_dim, 2)

    def embed_items(self, frames, lengths, metadata, present, return_attention: bool = False):
        """Return ``(audio [B, R], metadata [B, R], pooled_output)`` (unit length when ``normalize``)."""
        token = self.token_proj(metadata)[:, None, :]  # [B, 1, d_model]
        out = self.pooling(frames, lengths, extra_tokens=token, extra_mask=present[:, None],
                           return_attention=return_attention)
        if out.extra is None:
            raise TypeError(f"{type(self.pooling).__name__} ignores extra tokens; mid fusion needs "
                            "pooling='transformer'")
        audio, meta = self.audio_out(out.pooled), self.metadata_out(out.extra[:, 0])
        if self.normalize:
            audio, meta = l2_normalize(audio), l2_normalize(meta)
        return audio, meta, out

    def embed_queries(self, query: torch.Tensor):
        """Return ``(audio_query [Q, R], metadata_query [Q, R], weights [Q, 2])``."""
        return self.query_audio(query), self.query_metadata(query), self.query_weights(query)

    @staticmethod
    def score(audio_query, metadata_query, weights, audio_items, metadata_items, metadata_present=None):
        """Mixed cosine scores ``[Q, A]`` (``metadata_present`` Bool[A] or None = all present)."""
        available = None
        if metadata_present is not None:
            present = metadata_present.to(torch.bool)
            available = torch.stack([torch.ones_like(present), present], dim=-1)
        return mix_scores([audio_query @ audio_items.T, metadata_query @ metadata_items.T], weights, available)
