"""Evaluation: retrieval metrics of a model on a split, similarity matrices, ranks and retrieval examples.

Protocol (both papers): every clip of the split is an item, every caption a query; the caption's own clip
is its only relevant item (captions of other clips are assumed not to match, so the numbers are lower
bounds, hybrid paper IV-D). Metrics come from :mod:`hybridlib.metrics` in percent, flattened with a direction
prefix: ``t2a_mAP@10``, ``t2a_R@1/5/10``, ``a2t_mAP@10``, ``a2t_R@1/5/10``, ``R-sum`` (sum of the six
recalls) and ``t2a_R-sum`` (sum of the three text-to-audio recalls: the model-selection criterion of Mei et
al.'s released trainer).

Run folders (per-seed and aggregated metrics files) live in :mod:`hybridlib.runs`; the command
``hybridlib evaluate`` in :mod:`hybridlib.cli.evaluate`.
"""

from __future__ import annotations

import torch

from hybridlib.features.splits import EncodedSplit
from hybridlib.util.devices import to_device
from hybridlib.util.tensors import concat_along_batch

RECALL_KEYS = ("t2a_R@1", "t2a_R@5", "t2a_R@10", "a2t_R@1", "a2t_R@5", "a2t_R@10")
MAIN_KEYS = ("t2a_mAP@10", "t2a_R@1", "t2a_R@5", "t2a_R@10", "a2t_R@1", "a2t_R@5", "a2t_R@10")


@torch.no_grad()
def embed_split(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None):
    """``(items, queries)``: every clip and every caption of ``split`` embedded in chunks (eval mode)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        items = [model.embed_items(to_device(b, device)) for b in split.item_chunks(batch_size)]
        queries = [model.embed_queries(to_device(b, device)) for b in split.query_chunks(batch_size)]
    finally:
        model.train(was_training)
    return concat_along_batch(items), concat_along_batch(queries)


@torch.no_grad()
def similarity_matrix(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None) -> torch.Tensor:
    """``[Q, A]`` scores of every caption against every clip of ``split`` (on CPU)."""
    items, queries = embed_split(model, split, batch_size, device)
    return model.similarity(queries, items).float().cpu()


def metrics_from_similarity(sim: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Flat metric dict from ``sim [Q, A]`` and ``target [Q]`` (clip index of each caption)."""
    from hybridlib import metrics

    t2a = metrics.text_to_audio(sim, target)
    a2t = metrics.audio_to_text(sim.T.contiguous(), target)
    out = {f"t2a_{k}": float(v) for k, v in t2a.items()}
    out.update({f"a2t_{k}": float(v) for k, v in a2t.items()})
    out["R-sum"] = sum(out[k] for k in RECALL_KEYS if k in out)
    out["t2a_R-sum"] = sum(out[k] for k in RECALL_KEYS[:3] if k in out)
    return out


def evaluate_split(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None) -> dict[str, float]:
    """Text-to-audio mAP@10 and R@1/5/10, audio-to-text R@1/5/10 (and mAP@10), R-sum, on ``split``."""
    sim = similarity_matrix(model, split, batch_size, device)
    return metrics_from_similarity(sim, split.caption_clip)


def caption_ranks(sim: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1-based rank of each caption's own clip among all clips (ties count against the caption)."""
    target = torch.as_tensor(target, dtype=torch.long)
    own = sim.gather(1, target[:, None])
    return (sim >= own).sum(dim=1)


def chance_map_at_k(n_items: int, k: int = 10) -> float:
    """Expected text-to-audio mAP@k (percent) of a random ranking with one relevant item among ``n_items``:
    ``(1/n) * sum_{r<=k} 1/r``."""
    if n_items < 1:
        raise ValueError("n_items must be positive")
    return 100.0 * sum(1.0 / r for r in range(1, min(k, n_items) + 1)) / n_items


def retrieval_examples(sims: dict[str, torch.Tensor], split: EncodedSplit, by: str, n_good: int = 2, n_bad: int = 2,
                       top: int = 3):
    """Good and bad queries of model ``by`` (rank 1 / worst rank of the caption's own clip), as a DataFrame.

    ``sims``: ``{model label: [Q, A] similarity}`` on ``split``; every model's rank of the correct clip and
    its top retrieved clips are listed. Good queries are the first ``n_good`` captions (in caption order)
    ranked first; bad ones the ``n_bad`` worst ranked; each example is a different clip (two captions of one
    clip would show the same audio twice).
    """
    import pandas as pd

    target = split.caption_clip
    ranks = {label: caption_ranks(sim, target) for label, sim in sims.items()}
    r = ranks[by]

    def distinct_clips(candidates, n):
        chosen, clips = [], set()
        for q in candidates:
            if int(target[q]) not in clips and len(chosen) < n:
                chosen.append(int(q))
                clips.add(int(target[q]))
        return chosen

    good = distinct_clips(torch.nonzero(r == 1).flatten().tolist(), n_good)
    bad = distinct_clips(torch.argsort(-r, stable=True).tolist(), n_bad)
    rows = []
    for kind, queries in (("good", good), ("bad", bad)):
        for q in queries:
            clip = int(target[q])
            row = {"kind": kind, "caption": split.captions[q], "clip": split.clip_ids[clip],
                   "metadata": split.metadata_text[clip], "caption_index": q}
            for label, sim in sims.items():
                row[f"rank ({label})"] = int(ranks[label][q])
                top_idx = torch.topk(sim[q], min(top, sim.shape[1])).indices.tolist()
                row[f"top {top} ({label})"] = [split.clip_ids[i] for i in top_idx]
            rows.append(row)
    return pd.DataFrame(rows)
