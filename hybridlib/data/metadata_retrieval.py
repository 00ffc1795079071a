"""Metadata-only retrieval with a frozen text encoder: how well does metadata alone match the queries?

This is the "pure metadata-based" system of the hybrid paper's Fig. 1: the query (caption) and each clip's
metadata text are embedded by the same text encoder and ranked by cosine similarity; no audio, no
training. Clips without metadata get similarity ``missing_score`` (default -2, below any cosine) minus a
seeded random jitter in [0, 0.5): they rank after every clip that has metadata, in random order among
themselves (the system knows nothing about them), so a set without any metadata scores like random ranking
instead of depending on how the metric breaks ties.
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
                        embed: Callable[[list[str]], torch.Tensor], missing_score: float = -2.0,
                        seed: int = 0) -> torch.Tensor:
    """Similarity ``[Q, A]`` between embedded queries and the items' metadata of ``kind``.

    ``embed(texts) -> [N, D]`` embeds metadata texts (e.g. ``lambda t: cache.text_embeddings(t, encoder)``).
    """
    texts = [metadata_text(it, kind) for it in items]
    present = [i for i, t in enumerate(texts) if t is not None]
    generator = torch.Generator().manual_seed(seed)
    sim = float(missing_score) - 0.5 * torch.rand(query_emb.shape[0], len(items), generator=generator)
    if present:
        emb = embed([texts[i] for i in present])
        sim[:, present] = cosine_matrix(query_emb, emb)
    return sim


def random_baseline(target, n_items: int, metric_fn, repeats: int = 20, seed: int = 0) -> dict[str, float]:
    """Metrics of random rankings averaged over ``repeats`` seeded draws (one draw is noisy on small sets).

    ``metric_fn(sim [Q, A], target) -> dict`` is e.g. :func:`hybridlib.metrics.text_to_audio`.
    """
    target = torch.as_tensor(target)
    totals: dict[str, float] = {}
    for r in range(repeats):
        generator = torch.Generator().manual_seed(seed * 1000 + r)
        for key, value in metric_fn(torch.rand(len(target), n_items, generator=generator), target).items():
            totals[key] = totals.get(key, 0.0) + float(value) / repeats
    return totals
