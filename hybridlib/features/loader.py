"""The training input pipeline: a ``torch.utils.data.DataLoader`` over an epoch's caption-level batches.

:class:`TrainingLoader` delivers, epoch after epoch, exactly the batches of
:meth:`EncodedSplit.training_batches <hybridlib.features.splits.EncodedSplit.training_batches>`: its dataset
maps the key ``(epoch, b)`` to :meth:`~hybridlib.features.splits.EncodedSplit.training_batch` (captions from
the seeded epoch order, the rank's slice of the global batch ``batch_size``, waveform crops seeded per example), and the DataLoader keeps the
order of the keys. So the batches - and a training run - are identical for any ``num_workers`` and after a
resume; workers only change *where* a batch is built (waveforms read from the
:class:`~hybridlib.features.waveform_cache.WaveformCache` or decoded there) and that the next batches are
ready while the model trains on the current one.

* ``num_workers=0``: batches are built in the training process when asked for (no extra processes).
* ``num_workers=k``: ``k`` worker processes build up to ``2 * k`` batches ahead (``prefetch_factor``); they
  start with the first epoch and stay for the next ones (``persistent_workers``: no start-up per epoch, each
  keeps its open files). Each worker uses one torch thread. The epoch travels in each batch's key, so a
  persistent worker builds the right epoch's batch.
* Splits with cached frames (frozen backbone) are always read in-process: their batches are slices of
  tensors already in memory, and worker processes would only add copying.
* ``pin_memory=True`` (the training loop sets it on CUDA) returns page-locked tensors, so the copy to the
  GPU can overlap the step (``non_blocking``).

``stats`` counts the waveform-cache hits and computed entries of the delivered batches, in whichever
process they were read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hybridlib.data.audio_io import AudioError
from hybridlib.features.splits import EncodedSplit
from hybridlib.features.waveform_cache import as_is


class EpochBatches(Dataset):
    """Map-style dataset: key ``(epoch, b)`` -> ``(batch b of that epoch, waveform-cache counts)``."""

    def __init__(self, split: EncodedSplit, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 captions_per_clip: int | None = None):
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self.rank, self.world_size, self.captions_per_clip = rank, world_size, captions_per_clip

    def __getitem__(self, key: tuple[int, int]):
        epoch, b = key
        cache = self.split.waveform_cache
        before = Counter(cache.stats) if cache is not None else Counter()
        batch = self.split.training_batch(b, self.batch_size, self.seed, epoch, self.rank, self.world_size,
                                          self.captions_per_clip)
        counts = Counter(cache.stats) - before if cache is not None else Counter()
        return batch, dict(counts)


class EpochSampler(Sampler):
    """The keys ``(epoch, 0) .. (epoch, n - 1)`` of the epoch set by :class:`TrainingLoader` (in order)."""

    def __init__(self, n_batches: int):
        self.n_batches, self.epoch = n_batches, 1

    def __iter__(self):
        return iter([(self.epoch, b) for b in range(self.n_batches)])

    def __len__(self) -> int:
        return self.n_batches


class TrainingLoader:
    """Caption-level training batches of ``split``, epoch by epoch (see the module docstring)."""

    def __init__(self, split: EncodedSplit, batch_size: int, seed: int, *, drop_last: bool = True, rank: int = 0,
                 world_size: int = 1, captions_per_clip: int | None = None, num_workers: int = 0,
                 pin_memory: bool = False, prefetch_factor: int = 2):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        self.split = split
        self.num_workers = 0 if split.frames is not None else num_workers
        self.n_batches = split.n_training_batches(batch_size, drop_last, captions_per_clip)
        self.sampler = EpochSampler(self.n_batches)
        self.stats: Counter = Counter()
        self.loader = DataLoader(
            EpochBatches(split, batch_size, seed, rank, world_size, captions_per_clip), batch_size=None,
            sampler=self.sampler, num_workers=self.num_workers, collate_fn=as_is, pin_memory=pin_memory,
            prefetch_factor=prefetch_factor if self.num_workers else None,
            persistent_workers=self.num_workers > 0,
            # the loader's own generator: iterating never draws from the global RNG the training step uses
            generator=torch.Generator().manual_seed(int(seed)),
        )

    def __len__(self) -> int:
        return self.n_batches

    def epoch(self, epoch: int) -> Iterator[dict]:
        """The batches of ``epoch`` (1-based, as in the training loop), in order."""
        self.sampler.epoch = int(epoch)
        try:
            for batch, counts in self.loader:
                self.stats.update(counts)
                if batch is not None:  # a rank's empty slice of a short last batch
                    yield batch
        except AudioError as exc:  # from a worker: the message carries the worker's traceback
            lines = str(exc).strip().splitlines()
            if len(lines) > 1 and lines[0].startswith("Caught "):
                raise AudioError(lines[-1].split(": ", 1)[-1]) from None
            raise
