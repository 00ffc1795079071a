"""Data-parallel training helpers: process-group set-up from ``torchrun``'s environment, embedding gathering,
"rank 0 first" preparation.

**The batch rule.** ``batch_size`` is the *global* contrastive batch whatever the number of processes: each step
draws the same global batch a single process would draw with the same seed
(:meth:`~hybridlib.features.splits.EncodedSplit.training_batch`), and each of the N processes embeds one
consecutive slice of it (sizes differ by at most one: 11 captions on 2 processes are 6 + 5). Contrastive losses
compare every item with every caption *in the batch*: :class:`ContrastiveStep` gathers all slices (with autograd;
slices of different sizes are padded to the largest for the exchange and trimmed again, :func:`gather_rows`),
so each process computes the loss over the whole global batch, the loss a single process computes on it.
Gradients: every rank's loss is identical, the gather's backward sums the ranks' gradients for each slice, and
DDP averages over ranks, so parameters get the single-process gradient of the global batch (up to the order of
floating-point sums). BatchNorm layers (the trainable backbones are full of them) normalise with the global
batch's statistics too (:func:`global_batch_norm`; waveforms are padded to the global batch's longest clip, as
one process pads them). What stays per process: dropout and SpecAugment draw their random masks per process,
so with them active several processes match one process statistically, not number for number.

Every parameter DDP sees must take part in every step (DDP is built without ``find_unused_parameters``); the
backbones' AudioSet tagging heads, which the retrieval model never uses, are frozen for that reason
(:func:`hybridlib.models.audio.freeze_tagging_head`).

Launch: ``torchrun --nproc_per_node=N -m hybridlib train --config ...``. NCCL on GPUs, gloo on CPU. Only rank 0
prepares the data (the others wait, then read the filled caches: :func:`rank0_first`), prints and writes files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from hybridlib.util.errors import ReportedElsewhere
from hybridlib.util.tensors import map_tensors

T = TypeVar("T")
# how long the other processes wait for rank 0 to prepare the data (extracting a dataset's features can take
# hours; the process group's own timeout, minutes, is meant for collectives that should be quick)
PREPARE_TIMEOUT = timedelta(hours=24)


class FailedOnRankZero(ReportedElsewhere):
    """Rank 0 failed while the other processes waited for it; rank 0 reports the error (the command line of the
    other ranks exits with its code, silently)."""


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")


def init_from_env(device: str = "auto") -> DistContext:
    """Join the process group described by ``torchrun``'s variables (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``).

    Without them (or ``WORLD_SIZE=1``) this is a single-process context. An already initialised group
    (e.g. by a test that spawned the processes) is reused.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not dist.is_initialized() and world <= 1:
        return DistContext()
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    if use_cuda and dist.get_backend() == "nccl":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev)


def world_size() -> int:
    """Processes training together: the initialised group's size, else ``torchrun``'s ``WORLD_SIZE`` (1 alone)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this process prints and writes (rank 0, or the only process)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def barrier(ctx: DistContext) -> None:
    if ctx.world_size > 1 and dist.is_initialized():
        dist.barrier()


def _failure(exc: BaseException) -> tuple[str, int]:
    """What the other ranks learn of rank 0's failure: a message and the exit code of the command line."""
    return f"rank 0 failed: {type(exc).__name__}: {exc}", getattr(exc, "exit_code", 1)


def _run_on_rank0(fn: Callable[[], T], group=None) -> T:
    """``fn()`` on rank 0, its result (or its failure) broadcast to every rank over ``group``: rank 0 re-raises
    its own exception, the others raise :class:`FailedOnRankZero`."""
    box, error = [None, None], None
    if dist.get_rank() == 0:
        try:
            box = [fn(), None]
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the others
            error = exc
            box = [None, _failure(exc)]
    dist.broadcast_object_list(box, src=0, group=group)
    if error is not None:
        raise error
    if box[1] is not None:
        raise FailedOnRankZero(*box[1])
    return box[0]


def from_rank0(fn: Callable[[], T]) -> T:
    """``fn()`` run on rank 0 only (e.g. writing a file) and its result handed to every rank; with one process
    simply ``fn()``. When ``fn`` fails on rank 0 it raises there and the others raise :class:`FailedOnRankZero`."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return fn()
    return _run_on_rank0(fn)


def rank0_first(ctx: DistContext, work: Callable[[bool], T]) -> T:
    """``work(True)`` on rank 0 while the other ranks wait; then ``work(False)`` on them (e.g. reading the caches
    rank 0 filled). With one process: ``work(True)``.

    The wait is a broadcast of rank 0's outcome over a gloo group with a long timeout (:data:`PREPARE_TIMEOUT`),
    so no rank hangs: when ``work`` fails on rank 0 it raises there and the others raise
    :class:`FailedOnRankZero` instead of calling ``work``.
    """
    if ctx.world_size <= 1:
        return work(True)
    group = dist.new_group(backend="gloo", timeout=PREPARE_TIMEOUT)  # collective: every rank creates it
    try:
        result = _run_on_rank0(lambda: work(True), group)
    finally:
        dist.destroy_process_group(group)
    return result if ctx.rank == 0 else work(False)


def all_sizes(n: int, device: torch.device) -> list[int]:
    """Every rank's ``n`` (e.g. its slice's batch size), in rank order."""
    mine = torch.tensor([n], dtype=torch.long, device=device)
    parts = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, mine)
    return [int(p.item()) for p in parts]


def gather_rows(t: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Concatenate ``t`` (``sizes[rank]`` rows here) from every rank along dim 0, in rank order.

    Slices of different sizes are padded with zeros to the largest (collectives need equal shapes), gathered
    and trimmed again. Tensors that require a gradient are gathered with autograd
    (``torch.distributed.nn.functional.all_gather``: the backward sums every rank's gradient of this rank's
    slice), others without.
    """
    if t.shape[0] != sizes[dist.get_rank()]:
        raise ValueError(f"this rank has {t.shape[0]} rows, sizes say {sizes[dist.get_rank()]}")
    longest = max(sizes)
    padded = t if t.shape[0] == longest else torch.cat([t, t.new_zeros((longest - t.shape[0], *t.shape[1:]))])
    padded = padded.contiguous()
    if t.requires_grad:
        from torch.distributed.nn.functional import all_gather

        parts = all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)], dim=0)


def pad_to_global_length(waveform: torch.Tensor) -> torch.Tensor:
    """``waveform [b, N]`` zero-padded to the longest slice's length ``N`` over all ranks: one process pads
    the whole global batch to its longest clip, and a backbone's BatchNorm statistics count those zeros."""
    longest = torch.tensor([waveform.shape[-1]], device=waveform.device)
    dist.all_reduce(longest, op=dist.ReduceOp.MAX)
    extra = int(longest.item()) - waveform.shape[-1]
    return torch.nn.functional.pad(waveform, (0, extra)) if extra else waveform


def gather_embeddings(emb, sizes: list[int]):
    """Gather an embeddings object (e.g. ``ItemEmbeddings``) across ranks: every tensor field along dim 0."""
    return map_tensors(emb, lambda t: gather_rows(t, sizes) if t.dim() > 0 else t)


def _global_batch_norm(self, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm whose training-mode statistics are those of the global batch (every rank's slice)."""
    if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return super(type(self), self).forward(x)  # torch's BatchNorm
    from torch.distributed.nn.functional import all_reduce

    self._check_input_dim(x)
    c, dims = x.shape[1], [0, *range(2, x.dim())]
    shape = [1, c] + [1] * (x.dim() - 2)
    # two passes over the global batch (mean, then squared deviations), as PyTorch's own BatchNorm
    sums = all_reduce(torch.cat([x.sum(dims), x.new_tensor([x.numel() // c])]))
    n = sums[-1]
    mean = sums[:c] / n
    var = all_reduce(((x - mean.view(shape)) ** 2).sum(dims)) / n
    if self.track_running_stats:
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
            unbiased = var.detach() * (n / (n - 1).clamp(min=1))
            self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
    y = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
    if self.affine:
        y = y * self.weight.view(shape) + self.bias.view(shape)
    return y


class GlobalBatchNorm1d(torch.nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` with the global batch's statistics under several processes (any backend)."""

    forward = _global_batch_norm


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` with the global batch's statistics under several processes (any backend)."""

    forward = _global_batch_norm


GLOBAL_BATCH_NORM = {torch.nn.BatchNorm1d: GlobalBatchNorm1d, torch.nn.BatchNorm2d: GlobalBatchNorm2d}


def global_batch_norm(model: torch.nn.Module) -> torch.nn.Module:
    """Make every BatchNorm layer of ``model`` (trainable backbones, gated units) normalise, in training, with
    the statistics of the global batch instead of its process's slice; returns ``model``.

    PyTorch's ``SyncBatchNorm`` does that on GPUs only; these layers do it on any backend (gloo on the CPU
    too), two ``all_reduce`` per layer and step. The layers keep their parameters, buffers and state-dict
    keys (only their class changes), and behave as plain BatchNorm in eval mode or in a single process.
    A trainable backbone therefore sees the statistics of the batch one process would see - the padding of
    the waveforms included, which :class:`ContrastiveStep` makes global too.
    """
    for module in model.modules():
        swap = GLOBAL_BATCH_NORM.get(type(module))
        if swap is not None:
            module.__class__ = swap
    return model


class ContrastiveStep(torch.nn.Module):
    """``forward(batch) -> (sim [B, B] rows items / cols captions, clip_index [B])`` for the loss.

    Single process: ``model(batch)`` (the model's documented loss input). With ``gather=True``: embed the
    local slice, gather items and queries from all ranks (slices may differ in size), then
    ``model.similarity(queries, items).T``.
    Wrapping this module (not the bare model) in DDP keeps every parameter use inside DDP's forward.
    """

    def __init__(self, model: torch.nn.Module, gather: bool = False):
        super().__init__()
        self.model = model
        self.gather = gather

    def forward(self, batch: dict):
        if not self.gather:
            return self.model(batch), batch["clip_index"]
        clip_index = batch["clip_index"]
        sizes = all_sizes(len(clip_index), clip_index.device)
        if "waveform" in batch:  # pad to the global batch's longest clip, as one process would
            batch = {**batch, "waveform": pad_to_global_length(batch["waveform"])}
        items = gather_embeddings(self.model.embed_items(batch), sizes)
        queries = gather_embeddings(self.model.embed_queries(batch), sizes)
        clip_index = gather_rows(clip_index, sizes)
        return self.model.similarity(queries, items).transpose(0, 1), clip_index


def wrap_ddp(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` when running with several processes, else ``module``; its
    BatchNorm layers then use the global batch's statistics (:func:`global_batch_norm`)."""
    if ctx.world_size <= 1:
        return module
    global_batch_norm(module)
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    return DDP(module, device_ids=ids)
