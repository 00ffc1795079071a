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
from hybridlib.util.modules import module_mode
from hybridlib.util.tensors import concat_along_batch

RECALL_KEYS = ("t2a_R@1", "t2a_R@5", "t2a_R@10", "a2t_R@1", "a2t_R@5", "a2t_R@10")
MAIN_KEYS = ("t2a_mAP@10", "t2a_R@1", "t2a_R@5", "t2a_R@10", "a2t_R@1", "a2t_R@5", "a2t_R@10")


def _model_device(model: torch.nn.Module, device) -> torch.device:
    return torch.device(device) if device is not None else next(model.parameters()).device


def _autocast(device: torch.device, dtype):
    """Mixed precision for embedding (``dtype``: torch.float16/bfloat16, as in training), or nothing (None)."""
    return torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def _float(embeddings):
    """Embeddings computed under autocast, back in float32 (scores and metrics are computed in float32)."""
    from hybridlib.util.tensors import map_tensors

    return map_tensors(embeddings, lambda t: t.float() if t.is_floating_point() else t)


@torch.no_grad()
def embed_items(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None,
                autocast_dtype=None):
    """Every clip of ``split`` embedded as a retrieval item, in chunks of ``batch_size`` clips (eval mode; on
    the model's device; under autocast with ``autocast_dtype``, as training does with ``amp``)."""
    device = _model_device(model, device)
    with module_mode(model), _autocast(device, autocast_dtype):
        return _float(concat_along_batch([model.embed_items(to_device(b, device))
                                          for b in split.item_chunks(batch_size)]))


@torch.no_grad()
def embed_queries(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None,
                  autocast_dtype=None):
    """Every caption of ``split`` embedded as a query, in chunks (eval mode; on the model's device; under
    autocast with ``autocast_dtype``)."""
    device = _model_device(model, device)
    with module_mode(model), _autocast(device, autocast_dtype):
        return _float(concat_along_batch([model.embed_queries(to_device(b, device))
                                          for b in split.query_chunks(batch_size)]))


def embed_split(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None,
                autocast_dtype=None):
    """``(items, queries)``: every clip and every caption of ``split`` embedded in chunks (eval mode)."""
    return (embed_items(model, split, batch_size, device, autocast_dtype),
            embed_queries(model, split, batch_size, device, autocast_dtype))


@torch.no_grad()
def similarity_matrix(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None,
                      autocast_dtype=None) -> torch.Tensor:
    """``[Q, A]`` scores of every caption against every clip of ``split`` (on CPU; in float32, the embeddings
    under autocast with ``autocast_dtype``)."""
    items, queries = embed_split(model, split, batch_size, device, autocast_dtype)
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


def evaluate_split(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None,
                   autocast_dtype=None) -> dict[str, float]:
    """Text-to-audio mAP@10 and R@1/5/10, audio-to-text R@1/5/10 (and mAP@10), R-sum, on ``split``
    (``autocast_dtype``: embed under mixed precision, see :func:`embed_items`)."""
    sim = similarity_matrix(model, split, batch_size, device, autocast_dtype)
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


def caption_metadata_match(split: EncodedSplit) -> dict[str, float]:
    """How well the split's captions match their own clip's metadata under the frozen text encoder alone: the
    caption-metadata similarity the hybrid paper blames for Table II (WavCaps' captions were generated from the
    very keywords the hybrid model gets as metadata).

    Returns the mean cosine between each caption and its clip's metadata embedding, and metadata-only
    text-to-audio mAP@10 / R@1 over the split (no training: each clip's metadata is the item). Needs cached
    embeddings (a frozen text encoder); clips without metadata rank last.
    """
    from hybridlib import metrics
    from hybridlib.data.metadata_retrieval import cosine_matrix

    if split.caption_emb is None or split.metadata_emb is None:
        raise ValueError(f"split {split.name!r} holds no cached text embeddings (a frozen text encoder is needed)")
    sim = cosine_matrix(split.caption_emb, split.metadata_emb)
    sim[:, ~split.has_metadata] = -2.0
    own = sim.gather(1, split.caption_clip[:, None])[:, 0][split.has_metadata[split.caption_clip]]
    t2a = metrics.text_to_audio(sim, split.caption_clip)
    return {"mean_cosine": float(own.mean()), "t2a_mAP@10": t2a["mAP@10"], "t2a_R@1": t2a["R@1"]}


def metadata_reliance(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256) -> dict[str, float]:
    """How much a trained model leans on metadata: text-to-audio mAP@10 on ``split`` as it is and with the
    metadata removed (:meth:`EncodedSplit.without_metadata`: every clip through the model's missing-metadata path,
    what the audio alone retrieves), their difference, and for mid fusion the mean weight its queries give the
    metadata score."""
    full = evaluate_split(model, split, batch_size)["t2a_mAP@10"]
    alone = evaluate_split(model, split.without_metadata(), batch_size)["t2a_mAP@10"]
    out = {"t2a_mAP@10": full, "t2a_mAP@10_audio_alone": alone, "metadata_gain": full - alone}
    if getattr(getattr(model, "cfg", None), "fusion", None) == "mid":
        out["metadata_weight"] = float(embed_queries(model, split, batch_size).weights[:, 1].mean())
    return out


def metadata_reliance_of_run(run_dir, split: EncodedSplit, batch_size: int = 256) -> dict:
    """:func:`metadata_reliance` of every trained seed of a run folder: ``{"seeds": {seed: values}, "aggregate":
    {name: {"mean", "std", "n", "values"}}}`` (sample std over seeds, as :func:`hybridlib.runs.aggregate`)."""
    from hybridlib import runs

    per_seed = {}
    for d in runs.seed_dirs(run_dir):
        if (d / runs.BEST).is_dir():
            model, _ = runs.load_trained(d)
            per_seed[d.name[5:]] = metadata_reliance(model, split, batch_size)
    if not per_seed:
        raise FileNotFoundError(f"no trained seed-*/{runs.BEST}/ in {run_dir}")
    return {"seeds": per_seed, "aggregate": runs.aggregate(list(per_seed.values()))}
