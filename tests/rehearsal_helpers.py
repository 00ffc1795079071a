"""Running paper configs on the rehearsal, one test per config, in two xdist groups (used by tests/test_rehearsal.py).

A row runs the way a user resumes an interrupted table: ``reproduce(..., overrides=["stop_after_epoch=1"])``
(one optimisation step, validation, checkpoint, then the invocation ends), then ``reproduce(...)`` again
(resumes from the checkpoint, second step, test evaluation, metrics files, checkpoints removed); or, for the
rows whose kind of checkpoint another row already resumes (:func:`resumed_rows`), in one invocation (both
steps, the same files). What the row
left behind is summarised and its run folder deleted (a bert-large row's checkpoint is ~5 GB). A row runs in a
child process (forked from a server that has imported torch and hybridlib once): the worker keeps none of the
row's memory (glibc keeps GBs of a finished row's freed tensors), so the worker stays small for the tests that
follow.

The rows are split into two lanes (:func:`plan_lanes`), each an ``xdist_group``: under ``pytest -n 2 --dist
loadgroup`` (``make test``) the two lanes run in the two worker processes side by side, a lane's rows one after
the other. Every bert-large row is in lane 0 (each peaks at ~11 GB resident; two at once would not fit next
to the other tests), so at most one runs at any time; every row also holds its share of the session's memory
budget (``conftest.memory_budget``, :func:`row_memory`), as the other multi-GB tests (torchrun pairs, notebook
09) do: a bert-large row never meets a torchrun pair in the other worker.
"""

from __future__ import annotations

import ctypes
import gc
import json
import multiprocessing
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def mirror_file(source, target) -> None:
    """``source`` at ``target`` for a mirror of a dataset (a ``shutil.copytree`` copy function): audio as a hard link
    (tests delete or replace a mirrored clip, never write into it; a copy across file systems), every other file
    copied, since tests edit tables in place. Not a per-file symbolic link: readers refuse a link out of the audio
    folder (hybridlib.util.filenames)."""
    import os

    if Path(source).suffix.lower() in (".wav", ".flac", ".ogg"):
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)


# rough CPU cost of one row on the rehearsal (a bert-base hybrid row = 1; measured), to balance the lanes
COSTS = {"bert-large": 2.0, "finetune": 1.0, "frozen": 0.25}
LANES = 2
# the other (ungrouped) tests of tests/test_rehearsal.py that take long, in the same units: given to a lane too,
# so the two lanes stay even and nothing long is left for the end
EXTRA_COSTS = {"frozen_as_upstream": 1.0, "reproduce_command": 3.0, "missing_clotho_clip": 0.5}


def row_cost(cfg) -> float:
    m = cfg.model_config()
    if "large" in m.text_encoder:
        return COSTS["bert-large"]
    return COSTS["finetune"] if (m.audio_trainable or m.text_trainable) else COSTS["frozen"]


def row_memory(cfg) -> str:
    """The row's kind in ``conftest.MEMORY_GB`` (its peak resident memory)."""
    cost = row_cost(cfg)
    return {COSTS["bert-large"]: "bert-large row", COSTS["finetune"]: "fine-tune row"}.get(cost, "frozen row")


def plan_lanes(entries, configs, lanes: int = LANES, extra: dict | None = None) -> tuple[list[list[str]], dict]:
    """``(rows per lane, {extra test: lane})``, balanced by :func:`row_cost` (``extra``: more work in the same
    units). Lane 0 takes every bert-large row, first; the rest go, dearest first, to the lane with least work; the
other lanes then run their rows cheapest (and lightest in memory) first, while lane 0 runs its bert-large rows."""
    plan = [[] for _ in range(lanes)]
    load = [0.0] * lanes
    heavy = [e for e in entries if row_cost(configs[e.name]) == COSTS["bert-large"]]
    for e in heavy:
        plan[0].append(e.name)
        load[0] += COSTS["bert-large"]
    work = [(row_cost(configs[e.name]), e.name, True) for e in entries if e not in heavy]
    work += [(cost, name, False) for name, cost in (extra or {}).items()]
    placed = {}
    configs_cost = {name: cost for cost, name, _ in work}
    for cost, name, is_row in sorted(work, key=lambda w: -w[0]):
        i = min(range(lanes), key=load.__getitem__)
        if is_row:
            plan[i].append(name)
        else:
            placed[name] = i
        load[i] += cost
    for lane in plan[1:]:  # light rows first: they overlap lane 0's bert-large rows (memory)
        lane.sort(key=lambda name: configs_cost[name])
    return plan, placed


def release_memory() -> None:
    """Hand freed memory back to the system: glibc keeps a finished row's freed tensors (GBs) in its heap."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def run_row(name: str, rehearsal, out, interrupt: bool = True) -> dict:
    """Row ``name`` interrupted after epoch 1 and resumed (or, without ``interrupt``, in one invocation; module
    docstring), in a child process; a summary of what it left."""
    ctx = multiprocessing.get_context("forkserver")
    # what every row imports, once in the server (pandas alone took 2-16 s per row)
    ctx.set_forkserver_preload(["torch", "transformers", "transformers.models.bert.modeling_bert", "pandas",
                                "safetensors.torch", "torch.utils.tensorboard", "hybridlib.reproduce",
                                "hybridlib.training.loop", "hybridlib.paper", "rehearsal_helpers"])
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(_run_row_here, name, str(rehearsal), str(out), interrupt).result()


def resumed_rows(configs: dict) -> set[str]:
    """The rows run interrupted and resumed: the first (by name) of each paper and kind of row (bert-large,
    fine-tuning, frozen: what a checkpoint holds differs between them); the others run in one invocation."""
    first = {}
    for name in sorted(configs):
        first.setdefault((name.split("-")[0], row_memory(configs[name])), name)
    return set(first.values())


def _run_row_here(name: str, rehearsal: str, out: str, interrupt: bool = True) -> dict:
    import torch

    from hybridlib import runs

    torch.set_num_threads(1)  # as in the worker (one process per core)
    from hybridlib.reproduce import reproduce

    out = Path(out)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        interrupted = None
        if interrupt:
            first = reproduce("all", seeds=[0], out=out, rows=[name], rehearsal=rehearsal,
                              overrides=["stop_after_epoch=1"], progress=False, show=False)
            status = first["rows"][0]
            seed_dir = runs.seed_dir(out / status.name, 0)
            interrupted = {"state": status.seeds[0], "checkpoint": (seed_dir / runs.CHECKPOINT).is_file(),
                           "epochs_logged": len(runs.read_log(seed_dir)) if (seed_dir / runs.LOG).is_file() else 0,
                           "metrics": sorted(p.name for p in seed_dir.glob("metrics-*.json"))}
        second = reproduce("all", seeds=[0], out=out, rows=[name], rehearsal=rehearsal, progress=False, show=False)
        final = second["rows"][0]
        seed_dir = runs.seed_dir(out / final.name, 0)
        log = runs.read_log(seed_dir)
        return {
            "row": final.row, "interrupted": interrupted, "state": final.seeds[0], "problems": final.problems,
            "epochs_logged": len(log), "train_loss_finite": bool(log["train_loss"].notna().all()),
            "seed_metrics": sorted(p.name for p in seed_dir.glob("metrics-*.json")),
            "row_metrics": sorted(p.name for p in (out / final.name).glob("metrics-*.json")),
            "best": (seed_dir / runs.BEST / "model.safetensors").is_file(),
            "checkpoints_left": sorted(p.name for p in seed_dir.glob("checkpoint*.pt")),
            "ingredients": json.loads((seed_dir / runs.INGREDIENTS).read_text()),
            "data_report": json.loads((seed_dir / runs.DATA_REPORT).read_text()),
            "wall_seconds": round(time.perf_counter() - wall, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)
        release_memory()
