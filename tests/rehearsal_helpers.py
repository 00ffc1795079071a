"""Running paper configs on the rehearsal in parallel lanes (used by tests/test_rehearsal.py).

A lane is one spawned process that takes its rows in turn, each the way a user resumes an interrupted table:
``reproduce(..., overrides=["stop_after_epoch=1"])`` (one optimisation step, validation, checkpoint, then the
invocation ends), then ``reproduce(...)`` again (resumes from the checkpoint, second step, test evaluation,
metrics files, checkpoints removed). What each row left behind is summarised and its run folder deleted
(a bert-large row's checkpoint is ~5 GB), so the disk holds at most one row per lane.
"""

from __future__ import annotations

import json
import resource
import shutil
import time
from pathlib import Path

# rough CPU cost of one row (a bert-base hybrid row = 1), to balance the lanes
COSTS = {"bert-large": 1.4, "finetune": 1.0, "frozen": 0.35}


def row_cost(cfg) -> float:
    m = cfg.model_config()
    if "large" in m.text_encoder:
        return COSTS["bert-large"]
    return COSTS["finetune"] if (m.audio_trainable or m.text_trainable) else COSTS["frozen"]


def plan_lanes(entries, configs, lanes: int = 2) -> list[list[str]]:
    """Rows per lane, balanced by :func:`row_cost`; every bert-large row goes to lane 0 (each needs ~10 GB, two at
    once would not fit next to the other tests) and lane 0 runs them first."""
    plan = [[] for _ in range(lanes)]
    load = [0.0] * lanes
    heavy = [e for e in entries if row_cost(configs[e.name]) == COSTS["bert-large"]]
    for e in heavy:
        plan[0].append(e.name)
        load[0] += COSTS["bert-large"]
    rest = sorted((e for e in entries if e not in heavy), key=lambda e: -row_cost(configs[e.name]))
    for e in rest:
        i = min(range(lanes), key=load.__getitem__)
        plan[i].append(e.name)
        load[i] += row_cost(configs[e.name])
    return plan


def run_lane(rows: list[str], rehearsal: str, out: str) -> dict:
    """Each row interrupted after epoch 1 and resumed (module docstring); ``{row: summary}``."""
    import torch

    from hybridlib import runs
    from hybridlib.util.errors import HybridlibError

    torch.set_num_threads(1)
    results = {}
    for name in rows:
        try:
            results[name] = _row(name, rehearsal, out, runs)
        except HybridlibError as exc:  # reported with the others; the lane goes on
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        shutil.rmtree(Path(out) / name, ignore_errors=True)
    return results


def _row(name: str, rehearsal: str, out: str, runs) -> dict:
    from hybridlib.reproduce import reproduce

    wall, cpu = time.perf_counter(), time.process_time()
    first = reproduce("all", seeds=[0], out=out, rows=[name], rehearsal=rehearsal,
                      overrides=["stop_after_epoch=1"], progress=False, show=False)
    status = first["rows"][0]
    seed_dir = runs.seed_dir(Path(out) / status.name, 0)
    interrupted = {"state": status.seeds[0], "checkpoint": (seed_dir / runs.CHECKPOINT).is_file(),
                   "epochs_logged": len(runs.read_log(seed_dir)) if (seed_dir / runs.LOG).is_file() else 0,
                   "metrics": sorted(p.name for p in seed_dir.glob("metrics-*.json"))}
    second = reproduce("all", seeds=[0], out=out, rows=[name], rehearsal=rehearsal, progress=False, show=False)
    final = second["rows"][0]
    log = runs.read_log(seed_dir)
    return {
        "row": final.row, "interrupted": interrupted, "state": final.seeds[0], "problems": final.problems,
        "epochs_logged": len(log), "train_loss_finite": bool(log["train_loss"].notna().all()),
        "seed_metrics": sorted(p.name for p in seed_dir.glob("metrics-*.json")),
        "row_metrics": sorted(p.name for p in (Path(out) / final.name).glob("metrics-*.json")),
        "best": (seed_dir / runs.BEST / "model.safetensors").is_file(),
        "checkpoints_left": sorted(p.name for p in seed_dir.glob("checkpoint*.pt")),
        "ingredients": json.loads((seed_dir / runs.INGREDIENTS).read_text()),
        "config": runs.read_config(seed_dir).to_dict(),
        "wall_seconds": round(time.perf_counter() - wall, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }
