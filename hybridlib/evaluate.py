"""Evaluation: retrieval metrics of a model on a split, multi-seed aggregation, CLI ``evaluate``.

Protocol (both papers): every clip of the split is an item, every caption a query; the caption's own clip
is its only relevant item (captions of other clips are assumed not to match, so the numbers are lower
bounds, hybrid paper IV-D). Metrics come from :mod:`hybridlib.metrics` in percent, flattened with a direction
prefix: ``t2a_mAP@10``, ``t2a_R@1/5/10``, ``a2t_mAP@10``, ``a2t_R@1/5/10``, and ``R-sum`` (sum of the six
recalls, Mei et al.'s model-selection criterion).

Several seeds aggregate to mean and *sample* standard deviation (``ddof=1``; the papers do not say which,
the sample estimate is the usual one for three runs; one seed gives std 0).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch

from hybridlib.batching import EncodedSplit

RECALL_KEYS = ("t2a_R@1", "t2a_R@5", "t2a_R@10", "a2t_R@1", "a2t_R@5", "a2t_R@10")
MAIN_KEYS = ("t2a_mAP@10", "t2a_R@1", "t2a_R@5", "t2a_R@10", "a2t_R@1", "a2t_R@5", "a2t_R@10")


def concat_embeddings(parts: list):
    """Concatenate embeddings computed in chunks (tensors or dataclasses of tensors) along dim 0."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    if torch.is_tensor(first):
        return torch.cat(parts, dim=0)
    if dataclasses.is_dataclass(first):
        values = {}
        for f in dataclasses.fields(first):
            vals = [getattr(p, f.name) for p in parts]
            values[f.name] = None if vals[0] is None else concat_embeddings(vals)
        return type(first)(**values)
    raise TypeError(f"cannot concatenate {type(first).__name__}")


@torch.no_grad()
def embed_split(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None):
    """``(items, queries)``: every clip and every caption of ``split`` embedded in chunks (eval mode)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        from hybridlib.train import to_device

        items = [model.embed_items(to_device(b, device)) for b in split.item_chunks(batch_size)]
        queries = [model.embed_queries(to_device(b, device)) for b in split.query_chunks(batch_size)]
    finally:
        model.train(was_training)
    return concat_embeddings(items), concat_embeddings(queries)


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
    return out


def evaluate_split(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None) -> dict[str, float]:
    """Text-to-audio mAP@10 and R@1/5/10, audio-to-text R@1/5/10 (and mAP@10), R-sum, on ``split``."""
    sim = similarity_matrix(model, split, batch_size, device)
    return metrics_from_similarity(sim, split.caption_clip)


def evaluate(model: torch.nn.Module, split: EncodedSplit, batch_size: int = 256, device=None) -> dict[str, float]:
    """Alias of :func:`evaluate_split` (the issue's ``evaluate(model, split)``)."""
    return evaluate_split(model, split, batch_size, device)


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
    ranked first; bad ones the ``n_bad`` worst ranked.
    """
    import pandas as pd

    target = split.caption_clip
    ranks = {label: caption_ranks(sim, target) for label, sim in sims.items()}
    r = ranks[by]
    good = [int(q) for q in torch.nonzero(r == 1).flatten()[:n_good]]
    bad = [int(q) for q in torch.argsort(-r, stable=True)[:n_bad]]
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


def aggregate(per_seed: list[dict]) -> dict[str, dict]:
    """``{metric: {"mean", "std", "n", "values"}}`` over seeds (sample std, 0 for a single seed)."""
    if not per_seed:
        raise ValueError("no results to aggregate")
    keys = [k for k in per_seed[0] if all(k in r for r in per_seed)]
    out = {}
    for k in keys:
        vals = [float(r[k]) for r in per_seed]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        out[k] = {"mean": mean, "std": std, "n": len(vals), "values": vals}
    return out


def format_aggregate(agg: dict[str, dict], keys) -> str:
    """``"t2a_mAP@10 52.83±1.15, ..."`` for the ``keys`` present; a single seed shows no spread."""
    def one(k):
        v = agg[k]
        return f"{k} {v['mean']:.2f}±{v['std']:.2f}" if v.get("n", 1) > 1 else f"{k} {v['mean']:.2f}"

    return ", ".join(one(k) for k in keys if k in agg)


def seed_dirs(run_dir: str | Path) -> list[Path]:
    """``seed-<n>`` folders of a run, by seed."""
    dirs = [p for p in Path(run_dir).glob("seed-*") if p.is_dir() and p.name[5:].lstrip("-").isdigit()]
    return sorted(dirs, key=lambda p: int(p.name[5:]))


def write_run_metrics(run_dir: str | Path) -> dict:
    """Aggregate ``seed-*/metrics.json`` into ``run_dir/metrics.json`` (per seed and mean/std)."""
    run_dir = Path(run_dir)
    per_seed, info = {}, {}
    for d in seed_dirs(run_dir):
        path = d / "metrics.json"
        if path.is_file():
            payload = json.loads(path.read_text())
            per_seed[str(payload["seed"])] = payload["metrics"]
            info = info or payload
    if not per_seed:
        raise FileNotFoundError(f"no seed-*/metrics.json in {run_dir}")
    summary = {"name": info.get("name"), "paper_row": info.get("paper_row"), "split": info.get("split"),
               "select_metric": info.get("select_metric"), "seeds_run": [int(s) for s in per_seed],
               "seeds": per_seed, "aggregate": aggregate(list(per_seed.values()))}
    from hybridlib.train import _atomic_write_text

    _atomic_write_text(run_dir / "metrics.json", json.dumps(summary, indent=2))
    return summary


def read_run_metrics(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.json in {run_dir}")
    return json.loads(path.read_text())


def load_trained(run_seed_dir: str | Path, device="cpu"):
    """``(model, TrainConfig)`` from a seed folder's ``best/`` (safetensors + JSON configs)."""
    from hybridlib.models.retrieval import ModelConfig, RetrievalModel
    from hybridlib.train import TrainConfig, load_model_weights

    best = Path(run_seed_dir) / "best"
    for name in ("model_config.json", "train_config.json"):
        if not (best / name).is_file():
            raise FileNotFoundError(f"{best / name} missing: not a finished training run")
    cfg = TrainConfig.from_dict(json.loads((best / "train_config.json").read_text()), source=str(best))
    model = RetrievalModel(ModelConfig.from_dict(json.loads((best / "model_config.json").read_text())))
    load_model_weights(model, best)
    return model.to(device).eval(), cfg


# ---------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `train` (with seed-*/ folders)")
    parser.add_argument("--split", default=None, help="split to evaluate (default: the config's eval_split)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from hybridlib.train import prepare_data, resolve_device, write_seed_metrics

    run_dir = Path(args.run)
    dirs = seed_dirs(run_dir) or ([run_dir] if (run_dir / "best").is_dir() else [])
    if not dirs:
        print(f"error: {run_dir} holds no trained seed (seed-*/best/)")
        return 2
    device = resolve_device(args.device)
    data = None
    for d in dirs:
        model, cfg = load_trained(d, device)
        if args.split:
            cfg = cfg.replace(eval_split=args.split)
        if data is None:
            data = prepare_data(cfg, progress=not args.no_progress)
        result = evaluate_split(model, data.test, batch_size=cfg.eval_batch_size, device=device)
        old = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").is_file() else {}
        write_seed_metrics(d, cfg, result, old.get("best_epoch", -1), old.get("best_val_score", float("nan")),
                           data.test.name, old.get("seconds", 0.0))
        print(f"[evaluate] {d.name}: " + ", ".join(f"{k} {result[k]:.2f}" for k in MAIN_KEYS if k in result))
    if dirs[0] != run_dir:
        summary = write_run_metrics(run_dir)
        agg = summary["aggregate"]
        print("[evaluate] mean ± std over seeds: " + format_aggregate(agg, MAIN_KEYS))
    return 0
