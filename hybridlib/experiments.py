"""Experiments: several seeds of a config, sweeps over configs, and running independent trainings in parallel.

Independent training runs (seeds, sweep points, a loss grid) share nothing but the feature cache, so they
run in worker processes, one per core (:func:`run_trainings`). Each worker prepares its data from the
(already filled) cache through :func:`hybridlib.training.data.training_data` and trains with the config's
thread count (``num_threads``; one thread when it is unset); training is deterministic, so with ``num_threads`` set (the teaching configs set 1) the results are
identical to running the same jobs one after another in this process (a test checks it).

Results of several seeds go to ``<out>/seed-<n>/`` and are aggregated into ``<out>/metrics-<split>.json``
(:func:`hybridlib.runs.write_run_metrics`), counting only seed folders trained with the same config. Under
``torchrun`` the seeds run one after another, each trained by all processes together; rank 0 writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hybridlib import runs
from hybridlib.config import TrainConfig
from hybridlib.util.errors import HybridlibError, UserError
from hybridlib.util.workers import default_workers, spawn_pool

KNOBS = ("remove_metadata", "drop_tags", "add_distractors", "swap_synonyms")


@dataclass(frozen=True)
class TrainingJob:
    """One seed of one config, trained into ``out_dir``."""

    cfg: TrainConfig
    out_dir: Path
    resume: bool = False


@dataclass
class JobOutcome:
    """What a :class:`TrainingJob` produced (``error``: one line, when it failed)."""

    job: TrainingJob
    finished: bool = False
    test_metrics: dict | None = None
    best_epoch: int = 0
    seconds: float = 0.0
    error: str | None = None
    extra: dict = field(default_factory=dict)


def run_job(job: TrainingJob, data=None, progress: bool = False) -> JobOutcome:
    """Train one job in this process on ``data`` (prepared for its config) or on the data
    :func:`hybridlib.training.data.training_data` prepares and keeps for the next jobs. A failure of the work
    itself (e.g. divergence) becomes ``error``, so the other jobs go on. Bad input (a :class:`~hybridlib.util.errors.UserError`: a damaged checkpoint, a config
    that changed since the checkpoint, bad audio under ``bad_audio: error``) is raised as it is: the command
    line then names it in one line with exit code 2."""
    from hybridlib.training import train

    try:
        result = train(job.cfg, job.out_dir, data=data, resume=job.resume, progress=progress, keep_data=True)
    except UserError:
        raise
    except HybridlibError as exc:
        return JobOutcome(job, error=f"{type(exc).__name__}: {exc}")
    return JobOutcome(job, result.finished, result.test_metrics, result.best_epoch, result.seconds)


def run_trainings(jobs: Sequence[TrainingJob], workers: int | None = None, data=None,
                  progress: bool = True) -> list[JobOutcome]:
    """Run ``jobs`` (in their order) on ``workers`` processes (default :func:`default_workers`; 1: in this
    process). ``data``: prepared for the jobs' config (all jobs then share its data settings, e.g. the seeds of
    one config). Under ``torchrun`` the processes already train each job together: jobs run one after another
    in this process. Returns one outcome per job, in job order."""
    from hybridlib.training.data import forget_data, training_data
    from hybridlib.training.distributed import world_size
    from hybridlib.util.progress import progress_bar as tqdm

    jobs = list(jobs)
    if not jobs:
        return []
    workers = default_workers(len(jobs)) if workers is None else max(1, min(int(workers), len(jobs)))
    if workers == 1 or world_size() > 1 or any(j.cfg.device not in ("cpu", "auto") for j in jobs):
        return [run_job(j, data, progress=progress and len(jobs) == 1)
                for j in tqdm(jobs, desc="trainings", disable=not progress or len(jobs) == 1)]
    from concurrent.futures import as_completed

    from hybridlib.features.prepare import audio_fingerprint

    # Fill the feature cache's audio here, once per distinct audio input, so workers do not extract the same
    # clips side by side; texts (seconds on the teaching set) are left to the workers (the cache takes
    # concurrent writers), so configs that differ only in metadata are not prepared here one after another.
    filled = {audio_fingerprint(jobs[0].cfg)} if data is not None else set()  # given data: its caches are full
    for j in jobs:
        if audio_fingerprint(j.cfg) not in filled:
            filled.add(audio_fingerprint(j.cfg))
            training_data(j.cfg, progress=False)
    forget_data()  # the workers prepare their own from the filled caches
    from concurrent.futures.process import BrokenProcessPool

    try:
        futures = {worker_pool(workers).submit(run_job, j): i for i, j in enumerate(jobs)}
    except BrokenProcessPool:  # a worker of an earlier call died: start afresh
        _POOLS.pop(workers, None)
        futures = {worker_pool(workers).submit(run_job, j): i for i, j in enumerate(jobs)}
    outcomes: list[JobOutcome | None] = [None] * len(jobs)
    for future in tqdm(as_completed(futures), total=len(jobs), desc=f"trainings ({workers} workers)",
                       disable=not progress):
        outcomes[futures[future]] = future.result()
    return outcomes  # type: ignore[return-value]


_POOLS: dict = {}


def one_thread_per_worker() -> None:
    """Training-worker start-up: one torch thread per process (a config's ``num_threads`` still applies in
    training)."""
    import torch

    torch.set_num_threads(1)


def worker_pool(workers: int):
    """A process pool of ``workers`` spawned processes, kept for the next call (starting one costs seconds:
    importing torch and building the encoders); shut down when the interpreter exits."""
    import atexit

    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = spawn_pool(workers, initializer=one_thread_per_worker)
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


def seed_jobs(cfg: TrainConfig, out_dir: str | Path, seeds: Sequence[int] | None = None,
              resume: bool = False) -> list[TrainingJob]:
    seeds = list(cfg.seeds if seeds is None else seeds)
    return [TrainingJob(cfg.replace(seed=s), runs.seed_dir(out_dir, s), resume) for s in seeds]


def summarize(cfg: TrainConfig, out_dir: str | Path, outcomes: Sequence[JobOutcome]) -> dict:
    """Aggregate the seeds of ``cfg`` in ``out_dir``; ``{}`` while a seed is unfinished; raise on a failure."""
    failed = [o for o in outcomes if o.error]
    if failed:
        raise HybridlibError("; ".join(f"seed {o.job.cfg.seed}: {o.error}" for o in failed))
    if not all(o.finished for o in outcomes):
        return {}
    from hybridlib.training.distributed import from_rank0

    split = cfg.splits()[2]
    return from_rank0(lambda: runs.write_run_metrics(out_dir, split, cfg=cfg))  # torchrun: rank 0 writes


def train_seeds(cfg: TrainConfig, out_dir: str | Path, seeds: Sequence[int] | None = None, data=None,
                resume: bool = False, progress: bool = True, workers: int | None = 1) -> dict:
    """Train ``seeds`` (default ``cfg.seeds``) into ``out_dir/seed-<n>`` and aggregate them.

    Returns the aggregate written to ``out_dir/metrics-<evaluation split>.json`` (``{}`` when a seed stopped
    early, e.g. ``stop_after_epoch``). ``out_dir`` is locked meanwhile (a second writer is refused). ``workers``: processes to train seeds in parallel (None: one per core).
    """
    from contextlib import ExitStack

    from hybridlib.training.distributed import is_main_process
    from hybridlib.util.locks import folder_lock

    with ExitStack() as lock:
        if is_main_process():  # torchrun: rank 0 writes (and locks); the seeds' own locks also refuse the others
            lock.enter_context(folder_lock(out_dir))
        outcomes = run_trainings(seed_jobs(cfg, out_dir, seeds, resume), workers=workers, data=data,
                                 progress=progress)
        return summarize(cfg, out_dir, outcomes)


def train_many(experiments: Sequence[tuple[TrainConfig, str | Path]], seeds: Sequence[int] | None = None,
               workers: int | None = None, progress: bool = True) -> list[dict]:
    """Several configs x seeds in one pool of workers; one aggregate per ``(cfg, out_dir)`` (as :func:`train_seeds`)."""
    groups = [seed_jobs(cfg, out, seeds) for cfg, out in experiments]
    outcomes = run_trainings([j for g in groups for j in g], workers=workers, progress=progress)
    summaries, start = [], 0
    for (cfg, out), group in zip(experiments, groups):
        summaries.append(summarize(cfg, out, outcomes[start:start + len(group)]))
        start += len(group)
    return summaries


def sweep_configs(cfg: TrainConfig, knob: str, values, policies=None) -> list[tuple[str, float, TrainConfig]]:
    """``(policy, value, config)`` for every point of a metadata-degradation sweep."""
    if knob not in KNOBS:
        raise ValueError(f"knob must be one of {KNOBS}, got {knob!r}")
    policies = list(policies or [cfg.model.get("missing_metadata", "learned")])
    return [(policy, float(value), cfg.replace(model={**cfg.model, "missing_metadata": policy},
                                               metadata_degradation={**cfg.metadata_degradation, knob: float(value)}))
            for policy in policies for value in values]


def metadata_sweep(cfg: TrainConfig, knob: str, values, out_dir: str | Path, seeds: list[int] | None = None,
                   policies=None, progress: bool = False, workers: int | None = None) -> list[dict]:
    """Train ``cfg`` once per value of a :func:`hybridlib.data.degrade_metadata` knob and collect test metrics.

    The knob (``remove_metadata``, ``drop_tags``, ``add_distractors`` or ``swap_synonyms``) acts on every
    split, as if the whole collection had noisier metadata (the hybrid paper's future work). ``policies``:
    ``missing_metadata`` settings to compare (default: the config's). Each point trains ``seeds`` into
    ``out_dir/<policy>/<knob>-<value>/``. Returns one row per (policy, value) with the mean, std and per-seed
    text-to-audio mAP@10 and R@1; a point that did not finish (``stop_after_epoch``) has ``finished`` False
    and no metrics.
    """
    points = sweep_configs(cfg, knob, values, policies)
    experiments = [(point, Path(out_dir) / policy / f"{knob}-{value:g}") for policy, value, point in points]
    summaries = train_many(experiments, seeds=seeds, workers=workers, progress=progress)
    rows = []
    for (policy, value, _), summary in zip(points, summaries):
        row = {"knob": knob, "value": value, "missing_metadata": policy, "finished": bool(summary)}
        if summary:
            agg = summary["aggregate"]
            row.update({f"{k}_{stat}": agg[k][stat] for k in ("t2a_mAP@10", "t2a_R@1") for stat in ("mean", "std")})
            row["t2a_mAP@10_per_seed"] = agg["t2a_mAP@10"]["values"]
        rows.append(row)
    return rows
