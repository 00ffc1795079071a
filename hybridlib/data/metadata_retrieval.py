"""Metadata-only retrieval with a frozen text encoder: how well does metadata alone match the queries?

This is the "pure metadata-based" system of the hybrid paper's Fig. 1: the query (caption) and each clip's
metadata text are embedded by the same text encoder and ranked by cosine similarity; no audio, no
training. Clips without metadata get similarity ``missing_score`` (default -2, below any cosine), so they
rank after every clip that has metadata (ties among them are broken by the metric's ordering).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from hybridlib.data.items import Item
from hybridlib.data.metadata import metadata_text


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[Q, D] x [A, D] -> [Q, A]`` cosine similarities."""
    a = torch.nn.functional.normalize(a.float(), dim=-1)
    b = torch.nn.functional.normalize(b.float(), dim=-1)
    return a @ b.T


def metadata_similarity(query_emb: torch.Tensor, items: Sequence[Item], kind: str,
                        embed: Callable[[list[str]], torch.Tensor], missing_score: float = -2.0) -> torch.Tensor:
    """Similarity ``[Q, A]`` between embedded queries and the items' metadata of ``kind``.

    ``embed(texts) -> [N, D]`` embeds metadata texts (e.g. ``lambda t: cache.text_embeddings(t, encoder)``).
    """
    texts = [metadata_text(it, kind) for it in items]
    present = [i for i, t in enumerate(texts) if t is not None]
    sim = torch.full((query_emb.shape[0], len(items)), float(missing_score))
    if present:
        emb = embed([texts[i] for i in present])
        sim[:, present] = cosine_matrix(query_emb, emb)
    return sim
