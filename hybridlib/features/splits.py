"""From a :class:`~hybridlib.data.ClipSet` and cached features to the batches the retrieval model consumes.

Two granularities:

* **caption level** (training): one example per (clip, caption) pair. An epoch visits every caption once
  in a seeded random order; a clip with five captions therefore appears five times per epoch, and two of its
  captions can land in the same batch. ``same_item[i, j]`` is True when examples ``i`` and ``j`` come from the
  same clip, so the loss treats such pairs as positives and never as negatives.
* **clip level** (evaluation): every clip once as a retrieval *item*, every caption once as a *query*;
  ``caption_clip[q]`` is the index of the clip caption ``q`` describes (the metrics' ``target``).

Training batches are a function of ``(seed, epoch, batch number, rank)`` only (:meth:`EncodedSplit.training_batch`),
so :class:`hybridlib.features.loader.TrainingLoader` can build them in DataLoader worker processes and deliver
exactly what :meth:`EncodedSplit.training_batches` yields in-process. Waveform crops are drawn per example from
``(seed, epoch, caption index)`` (:func:`crop_seed`); waveforms come through the
:class:`~hybridlib.features.waveform_cache.WaveformCache` when the split has one.

Batches follow the shared contract (see :mod:`hybridlib.models.retrieval`): ``clip_index``; audio as
``frames``/``frame_lengths`` (frozen backbone, cached) or ``waveform``/``lengths`` (trainable backbone);
metadata as ``metadata_emb``/``has_metadata`` (frozen text encoder, cached) or ``metadata_text``; queries
as ``caption_emb`` or ``captions``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hybridlib.features.waveform_cache import WaveformCache, read_waveform, readable_items
from hybridlib.util.tensors import pad_sequences


@dataclass
class EncodedSplit:
    """One split with everything a batch needs, indexed by clip (``A`` clips) and by caption (``Q``).

    ``frames`` / ``metadata_emb`` / ``caption_emb`` are None when the corresponding encoder is trainable
    (then batches carry waveforms or strings instead). With ``ModelConfig.text_tune_layers`` the texts come as
    the frozen lower layers' token states instead of embeddings: ``caption_hidden`` (``Q`` x ``[L_i, Dt]``) and
    ``metadata_hidden`` (``A`` entries, None for a clip without metadata).
    """

    name: str
    clip_ids: list[str]
    captions: list[str]                      # [Q]
    caption_clip: torch.Tensor               # [Q] long: clip index of each caption
    metadata_text: list[str | None]          # [A]
    has_metadata: torch.Tensor               # [A] bool
    frames: list[torch.Tensor] | None = None          # A x [T_i, Da]
    metadata_emb: torch.Tensor | None = None          # [A, Dt]
    caption_emb: torch.Tensor | None = None           # [Q, Dt]
    caption_hidden: list[torch.Tensor] | None = None           # Q x [L_i, Dt] (text_tune_layers)
    metadata_hidden: list[torch.Tensor | None] | None = None   # A x [L_i, Dt] or None
    audio_paths: list[Path | None] = field(default_factory=list)
    sample_rate: int | None = None                    # for the waveform path
    max_audio_seconds: float | None = None            # crop length of training waveforms (None: whole clip)
    waveform_cache: WaveformCache | None = None       # waveform path: read resampled arrays (None: decode)
    excluded: dict[str, str] = field(default_factory=dict)  # clip_id -> why its audio was left out
    _orders: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # caption_order memo

    def __post_init__(self) -> None:
        a, q = len(self.clip_ids), len(self.captions)
        if self.caption_clip.shape != (q,):
            raise ValueError(f"split {self.name!r}: caption_clip has shape {tuple(self.caption_clip.shape)}, "
                             f"expected ({q},)")
        if q and (int(self.caption_clip.min()) < 0 or int(self.caption_clip.max()) >= a):
            raise ValueError(f"split {self.name!r}: caption_clip indexes outside 0..{a - 1}")
        for name, value, n in (("metadata_emb", self.metadata_emb, a), ("caption_emb", self.caption_emb, q),
                               ("has_metadata", self.has_metadata, a)):
            if value is not None and len(value) != n:
                raise ValueError(f"split {self.name!r}: {name} has {len(value)} rows, expected {n}")
        for name, value, n in (("frames", self.frames, a), ("caption_hidden", self.caption_hidden, q),
                               ("metadata_hidden", self.metadata_hidden, a)):
            if value is not None and len(value) != n:
                raise ValueError(f"split {self.name!r}: {len(value)} {name} tensors, expected {n}")

    @property
    def n_clips(self) -> int:
        return len(self.clip_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    # ---------------------------------------------------------------- batches
    def item_batch(self, clip_indices: Sequence[int] | torch.Tensor, crop: bool = False,
                   crop_seeds: Sequence | None = None) -> dict:
        """Audio + metadata of the given clips (``clip_index`` = the indices).

        Waveforms are whole clips unless ``crop`` (then windows of ``max_audio_seconds``, offsets from
        ``crop_seeds``, one per clip; None: torch's global generator).
        """
        idx = torch.as_tensor(clip_indices, dtype=torch.long)
        batch: dict = {"clip_index": idx}
        if self.frames is not None:
            batch["frames"], batch["frame_lengths"] = pad_sequences([self.frames[i] for i in idx.tolist()])
        else:
            batch["waveform"], batch["lengths"] = self._waveforms(idx.tolist(), crop, crop_seeds)
        if self.metadata_emb is not None:
            batch["metadata_emb"] = self.metadata_emb[idx]
            batch["has_metadata"] = self.has_metadata[idx]
        elif self.metadata_hidden is not None:
            batch["metadata_hidden"], batch["metadata_hidden_lengths"] = self._hidden(
                [self.metadata_hidden[i] for i in idx.tolist()])
            batch["has_metadata"] = self.has_metadata[idx]
        else:
            batch["metadata_text"] = [self.metadata_text[i] for i in idx.tolist()]
            batch["has_metadata"] = self.has_metadata[idx]
        return batch

    def query_batch(self, caption_indices: Sequence[int] | torch.Tensor) -> dict:
        """The given captions as queries (``clip_index`` = the clip each describes)."""
        idx = torch.as_tensor(caption_indices, dtype=torch.long)
        batch: dict = {"clip_index": self.caption_clip[idx]}
        if self.caption_emb is not None:
            batch["caption_emb"] = self.caption_emb[idx]
        elif self.caption_hidden is not None:
            batch["caption_hidden"], batch["caption_hidden_lengths"] = self._hidden(
                [self.caption_hidden[i] for i in idx.tolist()])
        else:
            batch["captions"] = [self.captions[i] for i in idx.tolist()]
        return batch

    def _hidden(self, rows: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states padded to ``[B, L, Dt]`` with their lengths; a clip without metadata gets one zero
        token (the model ignores rows with ``has_metadata`` False)."""
        known = [r for r in rows if r is not None] or [r for r in self.caption_hidden or [] if r is not None]
        width = known[0].shape[1] if known else 1
        return pad_sequences([r if r is not None else torch.zeros(1, width) for r in rows])

    def pair_batch(self, caption_indices: Sequence[int] | torch.Tensor, crop_key: int | None = None) -> dict:
        """A training batch: example ``i`` = caption ``caption_indices[i]`` and its clip; with ``same_item``.

        ``crop_key`` (e.g. :func:`epoch_seed`) fixes the waveform crops: example ``i``'s window depends only
        on ``(crop_key, caption_indices[i])``; None draws them from torch's global generator.
        """
        idx = torch.as_tensor(caption_indices, dtype=torch.long)
        clips = self.caption_clip[idx]
        seeds = None if crop_key is None else [crop_seed(crop_key, q) for q in idx.tolist()]
        batch = self.item_batch(clips, crop=True, crop_seeds=seeds)
        batch.update(self.query_batch(idx))
        batch["clip_index"] = clips
        batch["same_item"] = same_item_mask(clips)
        return batch

    def _waveforms(self, clip_indices: list[int], crop: bool, crop_seeds: Sequence | None):
        if self.sample_rate is None:
            raise ValueError(f"split {self.name!r} has no cached frames and no sample_rate for waveforms")
        length = int(self.max_audio_seconds * self.sample_rate) if crop and self.max_audio_seconds else None
        waves = []
        for k, i in enumerate(clip_indices):
            path = self.audio_paths[i] if i < len(self.audio_paths) else None
            if path is None:
                raise ValueError(f"split {self.name!r}: clip {self.clip_ids[i]!r} has no audio file")
            seed = None if crop_seeds is None else crop_seeds[k]
            waves.append(read_waveform(path, self.sample_rate, self.waveform_cache, length, seed))
        return pad_sequences(waves)

    # ---------------------------------------------------------------- iteration
    def caption_order(self, seed: int, epoch: int, captions_per_clip: int | None = None) -> torch.Tensor:
        """The epoch's captions in random order; depends only on (seed, epoch), so a resumed run sees the same.

        ``captions_per_clip=None`` visits every caption (the papers' epoch); ``k`` visits ``k`` randomly chosen
        captions of each clip (fewer, cheaper epochs; a CPU option).
        """
        key = (seed, epoch, captions_per_clip)
        if key not in self._orders:
            if len(self._orders) > 4:
                self._orders.clear()
            self._orders[key] = self._caption_order(seed, epoch, captions_per_clip)
        return self._orders[key]

    def _caption_order(self, seed: int, epoch: int, captions_per_clip: int | None) -> torch.Tensor:
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        if captions_per_clip is None:
            return torch.randperm(self.n_captions, generator=g)
        if captions_per_clip < 1:
            raise ValueError(f"captions_per_clip must be >= 1 or None, got {captions_per_clip}")
        keys = torch.rand(self.n_captions, generator=g)  # random rank of each caption within its clip
        order = torch.argsort(self.caption_clip.double() * 2 + keys.double())  # grouped by clip, shuffled inside
        clip_sorted = self.caption_clip[order]
        first = torch.searchsorted(clip_sorted, clip_sorted, right=False)
        chosen = order[(torch.arange(len(order)) - first) < captions_per_clip]
        return chosen[torch.randperm(len(chosen), generator=g)]

    def n_epoch_captions(self, captions_per_clip: int | None = None) -> int:
        if captions_per_clip is None:
            return self.n_captions
        counts = torch.bincount(self.caption_clip, minlength=self.n_clips)
        return int(counts.clamp(max=captions_per_clip).sum())

    def training_batches(self, batch_size: int, seed: int, epoch: int, drop_last: bool = True,
                         rank: int = 0, world_size: int = 1, captions_per_clip: int | None = None
                         ) -> Iterator[dict]:
        """Caption-level batches of one epoch, built in this process (see :meth:`training_batch`).

        ``batch_size`` is the *global* batch: with ``world_size > 1`` each global batch (the one a single process
        gets with the same seed) is cut into ``world_size`` consecutive slices (:func:`slice_sizes`), one per rank;
        gathering the ranks' embeddings restores the global batch in order.
        """
        for b in range(self.n_training_batches(batch_size, drop_last, captions_per_clip)):
            batch = self.training_batch(b, batch_size, seed, epoch, rank, world_size, captions_per_clip)
            if batch is not None:
                yield batch

    def training_batch(self, b: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                       captions_per_clip: int | None = None) -> dict | None:
        """Rank ``rank``'s slice of global batch ``b`` of the epoch (None when the slice is empty: a global batch
        with fewer captions than ranks).

        A function of its arguments only: captions from :meth:`caption_order`, crops from
        ``(epoch_seed(seed, epoch), caption index)``; whoever builds it, whenever, gets the same batch.
        """
        chunk = self.caption_order(seed, epoch, captions_per_clip)[b * batch_size:(b + 1) * batch_size]
        sizes = slice_sizes(len(chunk), world_size)
        start = sum(sizes[:rank])
        local = chunk[start:start + sizes[rank]]
        if len(local) == 0:
            return None
        return self.pair_batch(local, crop_key=epoch_seed(seed, epoch))

    def n_training_batches(self, batch_size: int, drop_last: bool = True, captions_per_clip: int | None = None) -> int:
        """Global batches of an epoch (``drop_last``: a short last batch is left out, unless it is the only one)."""
        q = self.n_epoch_captions(captions_per_clip)
        return q // batch_size if drop_last and q >= batch_size else -(-q // batch_size)

    def with_frame_stride(self, stride: int) -> EncodedSplit:
        """A copy whose cached frames are averaged over ``stride`` consecutive steps (shorter sequences)."""
        if stride <= 1 or self.frames is None:
            return self
        import dataclasses

        return dataclasses.replace(self, frames=[pool_frames(f, stride) for f in self.frames])

    def without_metadata(self) -> EncodedSplit:
        """A copy in which no clip has metadata (``has_metadata`` all False, embeddings zero, texts None).

        A model then represents every item the way it represents a clip that came without metadata (its
        ``missing_metadata`` policy): what the audio alone retrieves, in the model's own terms.
        """
        import dataclasses

        return dataclasses.replace(
            self, metadata_text=[None] * self.n_clips, has_metadata=torch.zeros(self.n_clips, dtype=torch.bool),
            metadata_emb=None if self.metadata_emb is None else torch.zeros_like(self.metadata_emb),
            metadata_hidden=None if self.metadata_hidden is None else [None] * self.n_clips)

    def item_chunks(self, chunk_size: int) -> Iterator[dict]:
        for s in range(0, self.n_clips, chunk_size):
            yield self.item_batch(range(s, min(s + chunk_size, self.n_clips)))

    def query_chunks(self, chunk_size: int) -> Iterator[dict]:
        for s in range(0, self.n_captions, chunk_size):
            yield self.query_batch(range(s, min(s + chunk_size, self.n_captions)))

    def subset(self, clip_indices: Sequence[int], name: str | None = None) -> EncodedSplit:
        """The split restricted to some clips (with all their captions), re-indexed from 0."""
        keep = list(clip_indices)
        remap = {old: new for new, old in enumerate(keep)}
        q_keep = [q for q, c in enumerate(self.caption_clip.tolist()) if c in remap]
        return EncodedSplit(
            name=name or self.name,
            clip_ids=[self.clip_ids[i] for i in keep],
            captions=[self.captions[q] for q in q_keep],
            caption_clip=torch.tensor([remap[int(self.caption_clip[q])] for q in q_keep], dtype=torch.long),
            metadata_text=[self.metadata_text[i] for i in keep],
            has_metadata=self.has_metadata[keep],
            frames=None if self.frames is None else [self.frames[i] for i in keep],
            metadata_emb=None if self.metadata_emb is None else self.metadata_emb[keep],
            caption_emb=None if self.caption_emb is None else self.caption_emb[q_keep],
            caption_hidden=None if self.caption_hidden is None else [self.caption_hidden[q] for q in q_keep],
            metadata_hidden=None if self.metadata_hidden is None else [self.metadata_hidden[i] for i in keep],
            audio_paths=[self.audio_paths[i] for i in keep] if self.audio_paths else [],
            sample_rate=self.sample_rate, max_audio_seconds=self.max_audio_seconds,
            waveform_cache=self.waveform_cache, excluded=dict(self.excluded),
        )


def slice_sizes(n: int, world_size: int) -> list[int]:
    """How ``world_size`` ranks share a global batch of ``n`` captions: consecutive slices whose sizes differ by at
    most one, the larger ones first (``slice_sizes(11, 2) == [6, 5]``)."""
    return [n // world_size + (r < n % world_size) for r in range(world_size)]


def epoch_seed(seed: int, epoch: int) -> int:
    """A per-(seed, epoch) integer seed (large odd multiplier keeps seeds of neighbouring runs apart)."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919) % (2**63 - 1)


def crop_seed(key: int, caption_index: int) -> tuple[int, int, int]:
    """The seed of one training example's waveform crop (numpy ``SeedSequence`` entropy)."""
    return (CROP_STREAM, int(key), int(caption_index))


CROP_STREAM = 0x63726F70  # "crop": keeps crop seeds apart from other uses of the same (seed, epoch)


def pool_frames(frames: torch.Tensor, stride: int) -> torch.Tensor:
    """Average ``[T, D]`` frames over windows of ``stride`` steps (the last window may be shorter)."""
    if stride <= 1 or not len(frames):
        return frames
    # sums of `stride` rows divided by their count: the bits of avg_pool1d(ceil_mode=True) (a test checks),
    # ~7x faster than it on the transposed [1, D, T] view
    T, D = frames.shape
    n = -(-T // stride)
    pad = n * stride - T
    x = torch.nn.functional.pad(frames, (0, 0, 0, pad)) if pad else frames
    counts = torch.full((n, 1), float(stride), dtype=frames.dtype, device=frames.device)
    counts[-1] = stride - pad
    return x.reshape(n, stride, D).sum(dim=1) / counts


def same_item_mask(clip_index: torch.Tensor) -> torch.Tensor:
    """``[B, B]`` bool: True where examples ``i`` and ``j`` share a clip (diagonal included)."""
    clip_index = torch.as_tensor(clip_index)
    return clip_index[:, None] == clip_index[None, :]


def encode_split(items, name: str, *, metadata_kind: str | None, cache=None, backbone=None, text_encoder=None,
                 audio_cached: bool = True, text_cached: bool = True, text_layer: int | None = None,
                 sample_rate: int | None = None, max_audio_seconds: float | None = None, batch_size: int = 8,
                 progress: bool = True, waveform_cache: WaveformCache | None = None, num_workers: int = 0
                 ) -> EncodedSplit:
    """Flatten a ClipSet into an :class:`EncodedSplit`, filling cached features through ``cache``.

    ``metadata_kind`` in {"os", "cs", "fs"} or None (content-only: no metadata is embedded).
    With ``audio_cached`` the frozen ``backbone``'s frames come from :meth:`FeatureCache.audio_frames`;
    with ``text_cached`` captions and metadata are embedded once by the frozen ``text_encoder`` through
    :meth:`FeatureCache.text_embeddings` (identical strings are embedded once); with ``text_layer`` (for
    ``ModelConfig.text_tune_layers``) the texts' token states after that many frozen layers are cached and kept
    instead (:meth:`FeatureCache.text_hidden_states`).
    Without ``audio_cached`` (trainable backbone) batches carry waveforms at ``sample_rate``: the clips are
    checked first (:func:`~hybridlib.features.waveform_cache.readable_items`; with ``waveform_cache`` it is
    filled, ``num_workers`` processes decoding) and those whose audio cannot be read are left out and listed
    in the split's ``excluded``.
    """
    from hybridlib.data import metadata_text

    items = list(items)
    if not items:
        raise ValueError(f"split {name!r} has no clips")
    excluded: dict[str, str] = {}
    if not audio_cached and sample_rate is not None:
        items, excluded = readable_items(items, sample_rate, waveform_cache, num_workers, progress)
        if not items:
            raise ValueError(f"split {name!r}: no clip has readable audio ({next(iter(excluded.values()))})")
    clip_ids = [it.clip_id for it in items]
    captions, caption_clip = [], []
    for i, it in enumerate(items):
        if not it.captions:
            raise ValueError(f"split {name!r}: clip {it.clip_id!r} has no captions")
        captions.extend(it.captions)
        caption_clip.extend([i] * len(it.captions))
    meta = [metadata_text(it, metadata_kind) if metadata_kind else None for it in items]
    meta = [m if m else None for m in meta]  # an empty string carries no metadata
    has_meta = torch.tensor([m is not None for m in meta], dtype=torch.bool)

    frames = None
    if audio_cached:
        if cache is None or backbone is None:
            raise ValueError("encode_split with audio_cached=True needs a FeatureCache and a backbone")
        by_id = cache.audio_frames(items, backbone, batch_size=batch_size, progress=progress)
        missing = [c for c in clip_ids if c not in by_id]
        if missing:
            raise KeyError(f"split {name!r}: the feature cache returned no frames for {missing[:5]}")
        frames = [by_id[c].float() for c in clip_ids]

    caption_emb = metadata_emb = caption_hidden = metadata_hidden = None
    if text_cached and text_layer is not None:
        if cache is None or text_encoder is None:
            raise ValueError("encode_split with text_cached=True needs a FeatureCache and a text encoder")
        unique = list(dict.fromkeys(list(captions) + [m for m in meta if m is not None]))
        states = dict(zip(unique, cache.text_hidden_states(unique, text_encoder, text_layer, progress=progress)))
        caption_hidden = [states[t] for t in captions]
        metadata_hidden = [None if m is None else states[m] for m in meta]
    elif text_cached:
        if cache is None or text_encoder is None:
            raise ValueError("encode_split with text_cached=True needs a FeatureCache and a text encoder")
        texts = list(captions) + [m for m in meta if m is not None]
        unique = list(dict.fromkeys(texts))
        emb = cache.text_embeddings(unique, text_encoder, progress=progress).float()
        row = {t: k for k, t in enumerate(unique)}
        caption_emb = emb[[row[t] for t in captions]]
        metadata_emb = torch.zeros(len(items), emb.shape[1])
        present = [i for i, m in enumerate(meta) if m is not None]
        if present:
            metadata_emb[present] = emb[[row[meta[i]] for i in present]]
    return EncodedSplit(
        name=name, clip_ids=clip_ids, captions=captions, caption_clip=torch.tensor(caption_clip, dtype=torch.long),
        metadata_text=meta, has_metadata=has_meta, frames=frames, metadata_emb=metadata_emb,
        caption_emb=caption_emb, caption_hidden=caption_hidden, metadata_hidden=metadata_hidden,
        audio_paths=[it.audio_path for it in items], sample_rate=sample_rate,
        max_audio_seconds=max_audio_seconds, waveform_cache=None if audio_cached else waveform_cache,
        excluded=excluded,
    )


def concat_splits(splits: Sequence[EncodedSplit], name: str | None = None) -> EncodedSplit:
    """Join splits (e.g. ClothoV2 and AudioCaps training sets) into one; clip indices are offset."""
    if not splits:
        raise ValueError("concat_splits needs at least one split")
    if len(splits) == 1:
        return splits[0]
    for attr in ("frames", "metadata_emb", "caption_emb", "caption_hidden", "metadata_hidden"):
        if len({getattr(s, attr) is None for s in splits}) > 1:
            raise ValueError(f"cannot join splits where only some have {attr}")
    offsets, total = [], 0
    for s in splits:
        offsets.append(total)
        total += s.n_clips
    first = splits[0]
    return EncodedSplit(
        name=name or "+".join(s.name for s in splits),
        clip_ids=[c for s in splits for c in s.clip_ids],
        captions=[c for s in splits for c in s.captions],
        caption_clip=torch.cat([s.caption_clip + o for s, o in zip(splits, offsets)]),
        metadata_text=[m for s in splits for m in s.metadata_text],
        has_metadata=torch.cat([s.has_metadata for s in splits]),
        frames=None if first.frames is None else [f for s in splits for f in s.frames],
        metadata_emb=None if first.metadata_emb is None else torch.cat([s.metadata_emb for s in splits]),
        caption_emb=None if first.caption_emb is None else torch.cat([s.caption_emb for s in splits]),
        caption_hidden=None if first.caption_hidden is None else [h for s in splits for h in s.caption_hidden],
        metadata_hidden=None if first.metadata_hidden is None else [h for s in splits for h in s.metadata_hidden],
        audio_paths=[p for s in splits for p in s.audio_paths],
        sample_rate=first.sample_rate, max_audio_seconds=first.max_audio_seconds,
        waveform_cache=first.waveform_cache, excluded={k: v for s in splits for k, v in s.excluded.items()},
    )
