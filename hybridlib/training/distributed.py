"""Data-parallel training helpers: process-group set-up from ``torchrun``'s environment, embedding gathering.

Contrastive losses compare every item with every caption *in the batch*. With DistributedDataParallel each
process embeds its own slice of a global batch; :class:`ContrastiveStep` gathers all slices (with autograd,
``torch.distributed.nn.functional.all_gather``) so each process computes the loss over the whole global batch,
exactly the loss a single process would compute on it. Gradients: every rank's loss is identical, the
gather's backward sums the ranks' gradients for each slice, and DDP averages over ranks, so parameters get
the single-process gradient of the global batch.

Launch: ``torchrun --nproc_per_node=N -m hybridlib train --config ...``. NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from hybridlib.util.tensors import map_tensors


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


def barrier(ctx: DistContext) -> None:
    if ctx.world_size > 1 and dist.is_initialized():
        dist.barrier()


def all_gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` from every rank along dim 0, keeping the autograd graph (same shape on all ranks)."""
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t.contiguous()), dim=0)


def all_gather_no_grad(t: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


def gather_embeddings(emb):
    """Gather an embeddings object (e.g. ``ItemEmbeddings``) across ranks: every tensor field along dim 0."""
    return map_tensors(emb, lambda t: all_gather_with_grad(t) if t.dim() > 0 else t)


class ContrastiveStep(torch.nn.Module):
    """``forward(batch) -> (sim [B, B] rows items / cols captions, clip_index [B])`` for the loss.

    Single process: ``model(batch)`` (the model's documented loss input). With ``gather=True``: embed the
    local slice, gather items and queries from all ranks, then ``model.similarity(queries, items).T``.
    Wrapping this module (not the bare model) in DDP keeps every parameter use inside DDP's forward.
    """

    def __init__(self, model: torch.nn.Module, gather: bool = False):
        super().__init__()
        self.model = model
        self.gather = gather

    def forward(self, batch: dict):
        if not self.gather:
            return self.model(batch), batch["clip_index"]
        items = gather_embeddings(self.model.embed_items(batch))
        queries = gather_embeddings(self.model.embed_queries(batch))
        clip_index = all_gather_no_grad(batch["clip_index"])
        return self.model.similarity(queries, items).transpose(0, 1), clip_index


def wrap_ddp(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` when running with several processes, else ``module``."""
    if ctx.world_size <= 1:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    return DDP(module, device_ids=ids)
