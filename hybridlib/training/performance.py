"""Measuring training: the input pipeline, the model step, precision, memory, a profile, several processes.

Notebook 09 (GPU training) and ``benchmarks/gpu_check.py`` share these functions, so the figures a student sees
at miniature scale on a CPU and the ones a researcher measures on a GPU come from the same code:

* :func:`input_pipeline_rate` - clips per second the :class:`~hybridlib.features.loader.TrainingLoader` delivers
  (reading the waveform cache, cropping, padding; ``num_workers`` processes), without any model;
* :func:`measure_steps` - training steps as :func:`hybridlib.training.train` runs them (autocast, gradient
  scaling for fp16, Adam), timed one by one with the device synchronised, the wait for each batch timed apart;
  the losses stay on the device until the end (no host synchronisation inside the loop);
* :class:`PeakMemory` - the peak memory of a block: ``torch.cuda.max_memory_allocated`` on a GPU, the peak
  resident memory of the process above its level at the start on a CPU (sampled);
* :func:`precision` - the autocast dtype and whether a gradient scaler runs, for a name (``float32``,
  ``float16``, ``bfloat16``) on a device; :func:`compare_precisions` trains the same model from the same seed
  under each and compares speed, memory and numbers;
* :func:`profile_step` - one training step under ``torch.profiler`` as a table of operators;
* :func:`local_vs_global_loss` - what gathering embeddings across processes changes in a contrastive loss;
  :func:`train_command` / :func:`run_training` - ``hybridlib train`` in one process or under ``torchrun``;
* :func:`paper_encoders` - the papers' encoders (EfficientAT mn40, BERT) when their weights are on this machine;
* :func:`finetune_verdict` - the fine-tuned-versus-frozen comparison as a sentence made from the numbers.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hybridlib.util.errors import UserError

PRECISIONS = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Precision:
    """How a training step runs: autocast ``dtype`` (None: plain fp32) and whether a gradient scaler runs."""

    name: str
    dtype: torch.dtype | None
    scaler: bool

    def autocast(self, device: torch.device):
        return torch.autocast(device_type=device.type, dtype=self.dtype or torch.float32,
                              enabled=self.dtype is not None)

    def grad_scaler(self, device: torch.device):
        return torch.amp.GradScaler(device.type, enabled=self.scaler)


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bfloat16 autocast runs on ``device`` (every CPU; a GPU from the Ampere generation on)."""
    device = torch.device(device)
    return device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())


def precision(name: str, device: torch.device | str) -> Precision:
    """The :class:`Precision` called ``name`` on ``device``: float16 autocast with a gradient scaler (fp16's
    narrow range underflows small gradients; the scaler multiplies the loss and skips steps that overflow),
    bfloat16 autocast without one (fp32's range), or float32. A name the device cannot run is a UserError."""
    if name not in PRECISIONS:
        raise UserError(f"precision {name!r}: choose from {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if name == "bfloat16" and not bf16_supported(device):
        raise UserError(f"precision bfloat16: {device} does not support it (a GPU older than Ampere): use float16")
    dtype = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    return Precision(name, dtype, name == "float16")


def device_precisions(device: torch.device | str) -> list[str]:
    """The precisions training runs on ``device``: on a GPU float32, float16 with gradient scaling and bfloat16
    where supported; on a CPU float32 and bfloat16 (:func:`hybridlib.training.train` runs float16 on CUDA only:
    PyTorch accepts it on a CPU, without the hardware that makes it fast, and sfx-cnn's log-mel overflows it)."""
    if torch.device(device).type != "cuda":
        return ["float32", "bfloat16"]
    return [p for p in PRECISIONS if p != "bfloat16" or bf16_supported(device)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.bytes``: the block's peak memory.

    ``bytes``: the peak above the level when the block started; ``peak``: the absolute peak. CUDA:
    ``torch.cuda.max_memory_allocated`` after resetting the peak statistics (tensors only, what the estimate of
    :func:`hybridlib.gpu_plan.training_memory_gb` counts). CPU: the resident memory of this process (the
    allocator's caches and the libraries' buffers count too). On Linux the kernel's own high-water mark
    (``VmHWM``, reset through ``/proc/self/clear_refs``) gives the exact peak; elsewhere a thread samples the
    resident memory every ``interval`` seconds, and a short peak between two samples may be missed.
    """

    def __init__(self, device: torch.device | str, interval: float = 0.02):
        self.device, self.interval = torch.device(device), interval
        self.bytes = self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        import psutil

        self._process = psutil.Process()
        self._base = self._peak = self._process.memory_info().rss
        self._kernel_peak = _reset_peak_rss()
        self._thread = None
        if not self._kernel_peak:  # the kernel's mark alone is exact: sample only where it cannot be reset
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            self.bytes = self.peak - self._base
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        kernel = _peak_rss() if self._kernel_peak else 0
        self.peak = max(self._peak, self._process.memory_info().rss, kernel)
        self.bytes = self.peak - self._base


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-memory high-water mark of this process (Linux 4.0+); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _peak_rss() > 0
    except OSError:
        return False


def _peak_rss() -> int:
    """This process's peak resident memory since the last reset (``VmHWM`` of ``/proc/self/status``), in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def input_pipeline_rate(split, batch_size: int, num_workers: int, n_batches: int, seed: int = 0,
                        captions_per_clip: int | None = None) -> dict:
    """Clips per second the training loader delivers with ``num_workers`` processes, no model attached.

    The first batch (worker start-up, first reads) is timed apart as ``first_batch_seconds``; the rate counts
    the next ``n_batches`` (``persistent_workers``: epochs follow each other without restarting the workers).
    """
    from hybridlib.features.loader import TrainingLoader

    loader = TrainingLoader(split, batch_size, seed, num_workers=num_workers, captions_per_clip=captions_per_clip)
    start = time.perf_counter()
    first, count, clips, epoch = None, 0, 0, 0
    while count < n_batches + 1 and epoch < 1000:
        epoch += 1
        for batch in loader.epoch(epoch):
            if first is None:
                first = time.perf_counter()
            else:
                count += 1
                clips += len(batch["clip_index"])
            if count >= n_batches:
                break
        if count >= n_batches:
            break
    seconds = time.perf_counter() - (first or start)
    return {"num_workers": loader.num_workers, "batch_size": batch_size, "batches": count, "clips": clips,
            "first_batch_seconds": (first or start) - start, "seconds": seconds,
            "clips_per_second": clips / seconds if seconds > 0 else float("nan")}


@dataclass
class StepTimes:
    """What :func:`measure_steps` measured (seconds per step; ``wait``: time to get each batch)."""

    precision: str
    device: str
    batch_size: int
    steps: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    peak_bytes: int = 0

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def step_seconds(self) -> float:
        return self.median(self.steps)

    @property
    def steps_per_second(self) -> float:
        return 1.0 / self.step_seconds

    @property
    def clips_per_second(self) -> float:
        return self.batch_size / self.step_seconds

    @property
    def wait_seconds(self) -> float:
        return self.median(self.waits)

    @property
    def tflops(self) -> float:
        return self.median(self.flops) / self.step_seconds / 1e12 if self.flops else float("nan")

    def summary(self) -> dict:
        return {"precision": self.precision, "device": self.device, "batch_size": self.batch_size,
                "timed_steps": len(self.steps), "step_seconds": self.step_seconds,
                "steps_per_second": self.steps_per_second, "clips_per_second": self.clips_per_second,
                "wait_seconds": self.wait_seconds, "peak_memory_mb": self.peak_bytes / 2**20,
                "first_loss": self.losses[0] if self.losses else None,
                "last_loss": self.losses[-1] if self.losses else None}


def training_step(model, batch: dict, loss_fn, optimizer, scaler, prec: Precision, device: torch.device,
                  grad_clip: float | None = None) -> torch.Tensor:
    """One optimisation step as :func:`hybridlib.training.train` runs it (one process); the loss, on the device."""
    from hybridlib.training.optim import optimizer_step

    with prec.autocast(device):
        sim = model(batch)
        loss = loss_fn(sim.float(), same_item=batch["same_item"])
    optimizer_step(loss, model, optimizer, scaler, grad_clip)
    return loss.detach()


def measure_steps(model, batches: Iterable[dict], loss_fn, optimizer, device: torch.device | str, steps: int,
                  prec: Precision | str = "float32", warmup: int = 1, grad_clip: float | None = None,
                  flops: Callable[[dict], float] | None = None, memory: bool = True) -> StepTimes:
    """Run ``warmup + steps`` training steps on ``batches`` (cycled while needed) and time the last ``steps``.

    Each step is timed from the batch on the device to the optimiser's update with the device synchronised
    before and after; the wait for the batch (the input pipeline) is timed apart. ``peak_bytes``: the absolute
    peak memory during the timed steps (:class:`PeakMemory`; ``memory=False``: not measured, 0, for a caller
    measuring a larger block itself: CUDA's peak statistics cannot be nested). Losses are collected on the device and read once at the end. ``flops(batch)``: counted
    FLOPs of a step, for the sustained TFLOP/s (:func:`hybridlib.gpu_plan.step_flops`).
    """
    from hybridlib.util.devices import to_device

    device = torch.device(device)
    prec = precision(prec, device) if isinstance(prec, str) else prec
    scaler = prec.grad_scaler(device)
    model.to(device).train()
    source = iter(batches)
    first_batch: list[dict] = []
    out = StepTimes(prec.name, str(device), 0)
    losses = []

    def next_batch():
        nonlocal source
        try:
            batch = next(source)
        except StopIteration:
            if not first_batch:
                raise ValueError("no batches to train on") from None
            source = iter(batches)
            batch = next(source)
        if not first_batch:
            first_batch.append(batch)
        return batch

    for _ in range(warmup):
        batch = to_device(next_batch(), device)
        training_step(model, batch, loss_fn, optimizer, scaler, prec, device, grad_clip)
    synchronize(device)
    import contextlib

    with PeakMemory(device) if memory else contextlib.nullcontext() as peak:
        for _ in range(steps):
            t_wait = time.perf_counter()
            batch = to_device(next_batch(), device)
            synchronize(device)
            start = time.perf_counter()
            losses.append(training_step(model, batch, loss_fn, optimizer, scaler, prec, device, grad_clip))
            synchronize(device)
            out.steps.append(time.perf_counter() - start)
            out.waits.append(start - t_wait)
            out.batch_size = len(batch["clip_index"])
            if flops is not None:
                out.flops.append(flops(batch))
    out.peak_bytes = peak.peak if memory else 0
    out.losses = torch.stack(losses).float().cpu().tolist() if losses else []
    return out


def compare_precisions(build: Callable[[], torch.nn.Module], make_optimizer, loss_fn, batches: list[dict],
                       device: torch.device | str, names: Iterable[str], steps: int, seed: int = 0,
                       warmup: int = 1) -> list[dict]:
    """Train a fresh model (``build()``, seeded with ``seed``) for ``warmup`` untimed and ``steps`` timed steps
    under each precision on the same ``batches``; per precision the :meth:`StepTimes.summary` plus ``max_abs_diff``: the largest difference
    of the first batch's similarity matrix (initial weights, eval mode) from float32's."""
    device = torch.device(device)
    from hybridlib.util.devices import to_device

    rows, reference = [], None
    probe = to_device(batches[0], device)
    for name in names:
        prec = precision(name, device)
        torch.manual_seed(seed)
        model = build().to(device)
        model.eval()
        with torch.no_grad(), prec.autocast(device):
            sim = model(probe).float()
        reference = sim if reference is None and prec.dtype is None else reference
        optimizer = make_optimizer(model)
        torch.manual_seed(seed)
        timed = measure_steps(model, batches, loss_fn, optimizer, device, steps, prec, warmup=warmup)
        row = timed.summary()
        row["max_abs_diff"] = float((sim - reference).abs().max()) if reference is not None else float("nan")
        row["similarity_dtype"] = str(prec.dtype or torch.float32).replace("torch.", "")
        rows.append(row)
        del model, optimizer
    return rows


def profile_step(step: Callable[[], object], device: torch.device | str, rows: int = 12, warmup: bool = True):
    """Run ``step()`` once to warm up (unless ``warmup=False``: already warm), then once under ``torch.profiler``;
    a table (pandas) of the operators that took the most time of their own: calls, self time and total time in
    ms (CPU; CUDA kernels on a GPU) and their share of the step."""
    import pandas as pd
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    if warmup:
        step()
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    # without a GPU the profiler's CUDA probe prints a C++ error line on the process's stderr: silenced there
    with _quiet_stderr(device.type != "cuda"), profile(activities=activities) as prof:
        step()
        synchronize(device)
    events = prof.key_averages()
    gpu = device.type == "cuda"

    def self_time(e):
        return (getattr(e, "self_device_time_total", 0) if gpu else e.self_cpu_time_total)

    total = sum(self_time(e) for e in events) or 1.0
    top = sorted(events, key=self_time, reverse=True)[:rows]
    where = "GPU" if gpu else "CPU"
    return pd.DataFrame([{"operator": e.key, "calls": e.count, f"self {where} ms": self_time(e) / 1e3,
                          f"total {where} ms": (getattr(e, "device_time_total", 0) if gpu else e.cpu_time_total) / 1e3,
                          "share of step": self_time(e) / total} for e in top])


class _quiet_stderr:
    """Redirect file descriptor 2 (C++ libraries' stderr) to /dev/null inside the block when ``active``."""

    def __init__(self, active: bool):
        self.active = active

    def __enter__(self):
        if self.active:
            import os
            import sys

            sys.stderr.flush()
            self._saved = os.dup(2)
            self._null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(self._null, 2)
        return self

    def __exit__(self, *exc):
        if self.active:
            import os

            os.dup2(self._saved, 2)
            os.close(self._saved)
            os.close(self._null)


def local_vs_global_loss(sim: torch.Tensor, world_size: int, loss_fn, clip_index: torch.Tensor | None = None) -> dict:
    """A contrastive loss over one global batch of ``B`` pairs as data-parallel training would compute it
    without and with gathering. ``sim``: the model's ``[B, B]`` loss input (``model(batch)``) for the global
    batch. Without gathering, each of ``world_size`` processes scores only its own slice (its captions against
    its clips: the diagonal block, fewer negatives); with gathering every process scores the whole matrix (what
    :class:`~hybridlib.training.distributed.ContrastiveStep` computes)."""
    from hybridlib.features.splits import same_item_mask, slice_sizes

    b = len(sim)
    clip_index = torch.arange(b) if clip_index is None else clip_index
    full = float(loss_fn(sim, same_item=same_item_mask(clip_index)))
    parts, start = [], 0
    sizes = slice_sizes(b, world_size)
    for n in sizes:
        s = slice(start, start + n)
        parts.append(float(loss_fn(sim[s, s], same_item=same_item_mask(clip_index[s]))))
        start += n
    return {"global_batch": b, "per_process": sizes, "gathered_loss": full, "local_losses": parts,
            "mean_local_loss": sum(parts) / len(parts),
            "negatives_per_caption": {"gathered": b - 1, "local": [n - 1 for n in sizes]}}


def train_command(config: str | Path, out: str | Path, processes: int = 1, seed: int = 0,
                  sets: Iterable[str] = (), smoke: bool = False, overwrite: bool = False) -> list[str]:
    """The command line of ``hybridlib train``: the current Python for one process, ``torchrun --standalone
    --nproc_per_node=N`` (a free port; gloo on CPU, NCCL on GPUs) for several. ``overwrite``: replace a run
    already in ``out`` (``--overwrite``; a notebook rerun replaces its own runs, as ``train`` refuses otherwise)."""
    import sys

    if processes < 1:
        raise UserError(f"processes must be at least 1, got {processes}")
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return [*launcher, "-m", "hybridlib", "train", "--config", str(config), "--out", str(out), "--seed", str(seed),
            "--no-progress", *(["--smoke"] if smoke else []), *(["--overwrite"] if overwrite else []),
            *[a for s in sets for a in ("--set", s)]]


def run_training(command: list[str], timeout: float = 1800) -> dict:
    """Run a :func:`train_command` in a subprocess (this project on its ``PYTHONPATH``); ``{"seconds",
    "stdout"}``, or a UserError with the end of its output when it fails."""
    import os
    import subprocess

    from hybridlib.paths import project_root

    path = os.pathsep.join(p for p in (str(project_root()), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HYBRIDLIB_PROGRESS": "off", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    # a session of its own: on a timeout the whole group goes (torchrun's workers too, not only the launcher)
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            import signal

            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise UserError(f"{' '.join(command[:6])} ... did not finish within {timeout:.0f} s and was stopped:\n"
                            f"{(stdout[-1500:] + stderr[-2500:]).strip()}") from None
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (stdout[-1500:] + stderr[-2500:]).strip()
        raise UserError(f"{' '.join(command[:6])} ... failed (exit {proc.returncode}):\n{tail}")
    return {"seconds": seconds, "stdout": stdout}


def bert_available(name: str = "bert-base-uncased") -> bool:
    """Whether ``name``'s tokenizer and weights are on this machine (no download is tried)."""
    try:
        from transformers.utils import cached_file

        def cached(f):
            return cached_file(name, f, local_files_only=True, _raise_exceptions_for_missing_entries=False)

        return bool(cached("config.json")) and any(cached(f) for f in ("model.safetensors", "pytorch_model.bin"))
    except Exception:  # noqa: BLE001 - offline, not cached, no such model: not available
        return False


def paper_encoders(device: torch.device | str) -> dict:
    """The model-section changes that swap the bundled encoders for the papers' (EfficientAT mn40 frames, BERT
    base) where this makes sense: on a GPU, for each encoder whose weights are on this machine. On a CPU, or
    without the weights, nothing changes (the bundled sfx-cnn and MiniLM)."""
    if torch.device(device).type != "cuda":
        return {}
    from hybridlib.models.audio.weights import weights_path

    section = {}
    if weights_path("efficientat-mn40").is_file():
        section.update(audio_backbone="efficientat-mn40", audio_dim=3840)
    if bert_available():
        section.update(text_encoder="bert-base-uncased", text_dim=768)
    return section


def finetune_verdict(frozen: dict, tuned: dict, metric: str = "t2a_mAP@10", tolerance: float = 1.0) -> str:
    """One sentence comparing a fine-tuned run's test metrics with a frozen run's, made from the numbers:
    which is higher by how many points, or that they are within ``tolerance`` points (one seed)."""
    a, b = float(frozen[metric]), float(tuned[metric])
    gap = b - a
    if abs(gap) < tolerance:
        return (f"Fine-tuning did not change {metric} measurably here: {b:.2f} fine-tuned against {a:.2f} frozen "
                f"({gap:+.2f} points, within {tolerance:g} point of each other, one seed).")
    better = "paid" if gap > 0 else "did not pay"
    return (f"Fine-tuning {better} here: {metric} {b:.2f} fine-tuned against {a:.2f} frozen ({gap:+.2f} points, "
            "one seed).")


# ----------------------------------------------------------------------------------------- notebook 09's scale
TEACHING_SCALE = {"train_clips": None, "val_clips": None, "eval_clips": None, "batch_size": None,
                  "crop_seconds": None, "epochs": None, "timed_steps": 20}
MINIATURE_SCALE = {"train_clips": 32, "val_clips": 8, "eval_clips": 16, "batch_size": 8, "crop_seconds": 1.0,
                   "epochs": 2, "timed_steps": 2}
MINIATURE_SMOKE = {"train_clips": 8, "val_clips": 4, "eval_clips": 8, "batch_size": 4, "crop_seconds": 0.5,
                   "epochs": 1, "timed_steps": 2}


def scale_settings(device: torch.device | str, smoke: bool = False, scale: str | None = None, **given) -> dict:
    """Notebook 09's sizes: ``scale="teaching"`` (the whole teaching set and the configs' values; the default
    on a GPU) or ``"miniature"`` (a few clips, short crops, small batches; the default on a CPU, smaller still
    with ``smoke``). Keyword values that are not None (the notebook's parameters) replace the scale's."""
    if scale is None:
        scale = "teaching" if torch.device(device).type == "cuda" else "miniature"
    if scale not in ("teaching", "miniature"):
        raise UserError(f"scale {scale!r}: choose teaching or miniature")
    base = TEACHING_SCALE if scale == "teaching" else (MINIATURE_SMOKE if smoke else MINIATURE_SCALE)
    out = {"scale": scale, **base}
    out.update({k: v for k, v in given.items() if v is not None})
    return out


def subset_data(data, train: int | None = None, val: int | None = None, test: int | None = None, like=None):
    """``data`` (a :class:`~hybridlib.features.prepare.TrainingData`) with the first ``train``/``val``/``test``
    clips of its splits (None: all), or, with ``like``, the clips ``like``'s splits hold (two configs compared
    on the same clips). The fingerprint stays: :func:`hybridlib.training.train` accepts it for its config."""
    from hybridlib.features.prepare import TrainingData

    def pick(split, n, other):
        if other is not None:
            index = {c: i for i, c in enumerate(split.clip_ids)}
            missing = [c for c in other.clip_ids if c not in index]
            if missing:
                raise UserError(f"split {split.name!r} lacks {len(missing)} clips of the other data "
                                f"(e.g. {missing[0]}): they were prepared from different clips")
            return split.subset([index[c] for c in other.clip_ids])
        return split if n is None or n >= split.n_clips else split.subset(range(n))

    return TrainingData(pick(data.train, train, like and like.train), pick(data.val, val, like and like.val),
                        pick(data.test, test, like and like.test), data.fingerprint, data.info)


def pipeline_verdict(pipeline: list[dict], step_clips_per_second: float) -> str:
    """Which limits training, from the measurements: the model (its clips per second below what the input
    pipeline delivers) or the input pipeline, for each worker count measured."""
    parts = []
    for row in pipeline:
        feed = row["clips_per_second"]
        who = "the model limits" if feed >= step_clips_per_second else "the input pipeline limits"
        parts.append(f"{row['num_workers']} workers: {feed:.0f} clips/s delivered, {who} "
                     f"({feed / step_clips_per_second:.1f}x what the model consumes)")
    return (f"The model trains {step_clips_per_second:.1f} clips/s; " + "; ".join(parts) + ".")


def precision_verdict(rows: list[dict]) -> str:
    """The precision comparison in one sentence per precision, relative to float32 (speed, memory, numbers); a
    sentence saying there is nothing to compare when float32 or every other precision is missing (a notebook's
    ``PRECISIONS`` may name any of them)."""
    ref = next((r for r in rows if r["precision"] == "float32"), None)
    names = ", ".join(r["precision"] for r in rows) or "no precision"
    if ref is None:
        return f"Measured: {names}. Without float32 there is no reference to compare with: add it to PRECISIONS."
    if len(rows) == 1:
        return "Only float32 was measured: nothing to compare (PRECISIONS names the others)."
    out = []
    for r in rows:
        if r is ref:
            continue
        if not all(math.isfinite(x) for x in (r["first_loss"], r["last_loss"]) if x is not None):
            out.append(f"{r['precision']}: the loss was not finite (an overflow in {r['precision']}): this model cannot "
                       "train in it here")
            continue
        speed = ref["step_seconds"] / r["step_seconds"]
        out.append(f"{r['precision']}: {speed:.2f}x the speed of float32 "
                   f"({'faster' if speed > 1 else 'slower'}), peak memory {r['peak_memory_mb']:.0f} MB against "
                   f"{ref['peak_memory_mb']:.0f} MB, similarities differ by up to {r['max_abs_diff']:.2g}")
    return "; ".join(out) + "."
