"""On-disk feature cache for frozen encoders (safetensors files, never pickle).

With a frozen audio backbone the frame sequence of a clip never changes, so it is computed once and
reused across runs and notebooks; likewise the embedding of a text under a frozen text encoder.

Layout below ``root`` (default :func:`hybridlib.paths.cache_dir`)::

    audio/<backbone>-<fingerprint>/<dataset>/<clip>-<path hash>.safetensors   one file per clip
    text/<encoder>-<fingerprint>/shard-*.safetensors                          embeddings + text hashes

Invalidation: the *fingerprint* hashes the backbone's name, its frontend settings (``config()``) and
its weights (so another checkpoint gives another folder); each clip file records the audio file's stamp
(:func:`hybridlib.util.files.file_stamp`: path, size, modification and change time, so a rewrite whose
modification time was set back is caught too) and is recomputed when any of them changed. Writes are atomic
(temporary file + rename), so an interrupted run never leaves a truncated entry and concurrent runs do not clash.
Before encoding, the free space is checked against an estimate of the entries to write
(:func:`estimated_feature_bytes`); a disk that fills up anyway stops with :class:`~hybridlib.util.files.DiskFull`
naming the entry, with no half entry left.

Integrity: every entry stores a SHA-256 of its tensor's bytes (``sha256`` in the safetensors metadata; text
shards also hash their keys), checked on every read. A truncated, garbled or unreadable entry (including
``SafetensorError``) is recomputed, counted in ``stats["audio_damaged"]`` / ``stats["text_damaged"]``, and
named in one line on stderr, so a damaged cache never serves wrong numbers or crashes a run.

Memory: clips are encoded in batches whose padded audio stays under ``max_batch_seconds`` (default
``30 s x batch_size``), and a clip longer than ``chunk_seconds`` (default 60 s) is encoded alone, piece by
piece (:func:`hybridlib.models.audio.chunking.encode_long`: exact for sfx-cnn, approximate for backbones
whose frames depend on the whole clip), so peak memory is bounded by the batch's audio seconds, not by the
longest clip (``benchmarks/bench_long_clips.py`` measures it).

Text embeddings are computed by :meth:`hybridlib.models.text.TextEncoder.embed_batch_invariant` (texts
grouped by token count, never padded), so a cached embedding is byte-identical whatever else was encoded
with it and in whatever order the cache was filled.

CLI: ``python -m hybridlib extract --data DIR --backbone NAME`` fills the cache for a dataset.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hybridlib.util.files import atomic_path, check_free_space, file_stamp

CACHE_VERSION = 3  # bump when the meaning of cached features changes (3: per-entry checksums)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(text: str, limit: int = 80) -> str:
    return _SAFE.sub("_", text)[:limit] or "_"


def module_fingerprint(module, extra: dict | None = None) -> str:
    """Hex digest of ``extra`` (settings) and every tensor of ``module.state_dict()``.

    Memoised on the module and recomputed only when a tensor was modified in place (its version
    counter moves) or replaced.
    """
    import torch

    state = module.state_dict()
    signature = tuple((k, v.data_ptr(), v._version, tuple(v.shape)) for k, v in state.items())
    settings = json.dumps({"cache_version": CACHE_VERSION, **(extra or {})}, sort_keys=True, default=str)
    memo = getattr(module, "_hybridlib_fingerprint", None)
    if memo is not None and memo[0] == signature and memo[1] == settings:
        return memo[2]
    h = hashlib.sha1(settings.encode())
    for key, value in state.items():
        h.update(key.encode())
        h.update(str(value.dtype).encode())
        tensor = value.detach().to("cpu").contiguous()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        h.update(tensor.numpy().tobytes())
    digest = h.hexdigest()[:16]
    try:
        object.__setattr__(module, "_hybridlib_fingerprint", (signature, settings, digest))
    except AttributeError:  # pragma: no cover - exotic modules without __dict__
        pass
    return digest


def tensor_digest(tensor, extra: str = "") -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (plus ``extra``): the cache's per-entry checksum."""
    import torch

    t = tensor.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|{extra}".encode())
    h.update((t.view(torch.uint8) if t.numel() else t).numpy().tobytes())
    return h.hexdigest()


def save_tensors(tensors: dict, path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically, with a ``sha256`` per tensor in its metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in tensors.items()}
    extra = metadata.get("keys", "")
    digests = {f"sha256:{k}": tensor_digest(v, extra) for k, v in tensors.items()}
    metadata = {**metadata, **digests}
    size = sum(v.numel() * v.element_size() for v in tensors.values()) + len(json.dumps(metadata)) + 200 * len(tensors)
    with atomic_path(path, size=size) as tmp:  # a full disk: DiskFull naming the entry, no half entry left
        save_file(tensors, str(tmp), metadata=metadata)


def estimated_feature_bytes(backbone, durations: Sequence[float]) -> int:
    """About what the cache entries of clips of ``durations`` (seconds) will take on disk: float32 frames of the
    backbone's width, as many as its ``frame_lengths`` gives, plus each entry's header (0 when not known)."""
    import torch

    frame_lengths, width = getattr(backbone, "frame_lengths", None), getattr(backbone, "embed_dim", None)
    if frame_lengths is None or not width or not durations:
        return 0
    samples = torch.tensor([max(1, int(d * backbone.sample_rate)) for d in durations])
    return int(frame_lengths(samples).clamp(min=1).sum()) * int(width) * 4 + 1000 * len(durations)


def read_verified(path: Path, name: str):
    """``(tensor, metadata)`` of a file written by :func:`save_tensors`, or ``(None, reason)`` when it is
    missing, unreadable, truncated or its checksum does not match."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensor = f.get_tensor(name)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        from hybridlib.util.errors import one_line

        return None, f"unreadable ({one_line(exc, 120)})"
    want = meta.get(f"sha256:{name}")
    if want is None:
        return None, "no checksum"
    if tensor_digest(tensor, meta.get("keys", "")) != want:
        return None, "checksum mismatch"
    return tensor, meta


def _report_damaged(kind: str, names: list[str]) -> None:
    import sys

    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        print(f"[cache] {len(names)} damaged {kind} cache entr{'y' if len(names) == 1 else 'ies'} "
              f"recomputed: {shown}", file=sys.stderr, flush=True)


class FeatureCache:
    """Cache of audio frames and text embeddings for frozen encoders (see the module docstring)."""

    def __init__(self, root: str | Path | None = None):
        if root is None:
            from hybridlib.paths import cache_dir

            root = cache_dir()
        self.root = Path(root)
        self.stats = {"audio_hits": 0, "audio_computed": 0, "audio_damaged": 0,
                      "text_hits": 0, "text_computed": 0, "text_damaged": 0}

    @property
    def audio_check_dir(self) -> Path:
        """Where :func:`hybridlib.data.audio_io.validate_items` remembers full checks (``memo_dir``)."""
        from hybridlib.data.audio_io import AUDIO_CHECK_MEMO

        return self.root / AUDIO_CHECK_MEMO

    # ---------------------------------------------------------------- audio
    def audio_fingerprint(self, backbone) -> str:
        config = backbone.config() if hasattr(backbone, "config") else {}
        return module_fingerprint(
            backbone, {"kind": "audio", "name": getattr(backbone, "name", ""), **config}
        )

    def audio_dir(self, backbone) -> Path:
        name = _safe_name(getattr(backbone, "name", type(backbone).__name__))
        return self.root / "audio" / f"{name}-{self.audio_fingerprint(backbone)}"

    def clip_path(self, item, backbone_dir: Path) -> Path:
        """Where ``item``'s frames live: per dataset, clip id plus a hash of the resolved audio path."""
        path_hash = hashlib.sha1(str(Path(item.audio_path).resolve()).encode()).hexdigest()[:10]
        dataset = _safe_name(getattr(item, "dataset", "") or "default")
        return backbone_dir / dataset / f"{_safe_name(item.clip_id, 120)}-{path_hash}.safetensors"

    def _read_clip(self, path: Path, stamp: dict[str, str]):
        """``(frames, None)`` for a valid entry; ``(None, None)`` when the audio changed since extraction;
        ``(None, reason)`` when the entry is damaged."""
        frames, meta = read_verified(path, "frames")
        if frames is None:
            return None, meta
        if any(meta.get(k) != v for k, v in stamp.items()):
            return None, None  # the audio file changed since extraction
        return frames, None

    def audio_frames(
        self, items: Sequence, backbone, batch_size: int = 8, progress: bool = True, num_workers: int = 1,
        max_batch_seconds: float | None = None, chunk_seconds: float | None = None,
    ) -> dict:
        """``{clip_id: frames [T, D] float32}`` for ``items``, computing (and storing) only what is missing.

        The backbone runs in eval mode under ``torch.inference_mode`` on its own device, on batches of
        clips of similar length (sorted by duration to limit padding) holding at most ``batch_size`` clips
        and ``max_batch_seconds`` of padded audio (default ``30 s x batch_size``); a clip longer than
        ``chunk_seconds`` (default :data:`~hybridlib.models.audio.chunking.DEFAULT_CHUNK_SECONDS`) is encoded
        alone in pieces. Audio of the next batch is decoded in ``num_workers`` background threads while the
        current one is encoded.

        Clips should have been screened (:func:`hybridlib.data.audio_io.screen_audio`); any that still cannot
        be read (no audio path, missing or undecodable file) are collected while the others are computed and
        then raised together in one :class:`~hybridlib.data.audio_io.BadAudioError` naming them all.
        Silent clips are encoded as they are (screening is where the silence rule applies).
        """
        import torch

        from hybridlib.data.audio_io import (
            AudioError,
            BadAudioError,
            audio_info,
            describe_bad_audio,
            load_audio,
        )
        from hybridlib.models.audio.chunking import DEFAULT_CHUNK_SECONDS, encode_long, is_exact
        from hybridlib.util.progress import progress_bar as tqdm
        from hybridlib.util.tensors import pad_sequences

        chunk_seconds = DEFAULT_CHUNK_SECONDS if chunk_seconds is None else float(chunk_seconds)
        max_batch_seconds = 30.0 * batch_size if max_batch_seconds is None else float(max_batch_seconds)
        backbone_dir = self.audio_dir(backbone)
        out: dict = {}
        todo, bad, damaged = [], {}, []
        for item in items:
            if item.audio_path is None:
                bad[item.clip_id] = f"{item.clip_id}: no audio file on disk"
                continue
            audio_path = Path(item.audio_path)
            if not audio_path.is_file():
                bad[item.clip_id] = f"{audio_path}: audio file not found"
                continue
            stamp = file_stamp(audio_path)
            path = self.clip_path(item, backbone_dir)
            frames, why = self._read_clip(path, stamp) if path.is_file() else (None, None)
            if frames is not None:
                out[item.clip_id] = frames
                self.stats["audio_hits"] += 1
                continue
            if why is not None:
                damaged.append(f"{path.name} ({why})")
            try:
                duration = audio_info(audio_path)["duration"]
            except AudioError as exc:
                bad[item.clip_id] = str(exc)
                continue
            todo.append((item, path, stamp, duration))
        self.stats["audio_damaged"] += len(damaged)
        _report_damaged("audio", damaged)

        todo.sort(key=lambda t: -t[3])
        needed = estimated_feature_bytes(backbone, [t[3] for t in todo])
        if needed:  # before the first batch: a full disk is named now, not after an hour of encoding
            check_free_space(backbone_dir, needed, f"the features of {len(todo)} clips")
        batches: list[list] = []
        for entry in todo:  # longest first: a batch's padded length is its first clip's
            if entry[3] > chunk_seconds:
                batches.append([entry])
            elif (batches and len(batches[-1]) < batch_size and batches[-1][0][3] <= chunk_seconds
                  and (len(batches[-1]) + 1) * batches[-1][0][3] <= max_batch_seconds):
                batches[-1].append(entry)
            else:
                batches.append([entry])
        sample_rate = backbone.sample_rate
        device = next(backbone.parameters()).device
        chunking = "exact" if is_exact(backbone) else "approximate"

        def load(batch):
            waves, failed = [], {}
            for item, *_ in batch:
                try:
                    waves.append(load_audio(item.audio_path, sample_rate, allow_silent=True))
                except AudioError as exc:
                    failed[item.clip_id] = str(exc)
                    waves.append(None)
            return waves, failed

        was_training = backbone.training
        backbone.eval()
        # channels-last convolution weights where a backbone runs faster so (its ``channels_last_inference``:
        # sfx-cnn 1.37x, EfficientAT 1.27x on this CPU; PANNs 5% slower, left as it is); frames equal to ~1e-6,
        # deterministic; the layout is restored below
        channels_last = bool(getattr(backbone, "channels_last_inference", False))
        if channels_last:
            backbone.to(memory_format=torch.channels_last)
        bar = tqdm(total=len(todo), desc=f"extract {getattr(backbone, 'name', '')}", disable=not progress)
        try:
            with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool, torch.inference_mode():
                pending = [pool.submit(load, b) for b in batches[: max(1, num_workers) + 1]]
                next_batch = len(pending)
                for batch in batches:
                    waves, failed = pending.pop(0).result()
                    if next_batch < len(batches):
                        pending.append(pool.submit(load, batches[next_batch]))
                        next_batch += 1
                    bad.update(failed)
                    kept = [(entry, w) for entry, w in zip(batch, waves) if w is not None]
                    if not kept:
                        bar.update(len(batch))
                        continue
                    extra = {}
                    if len(kept) == 1 and kept[0][0][3] > chunk_seconds:
                        clips = [encode_long(backbone, kept[0][1].to(device), chunk_seconds)]
                        extra = {"chunked": f"{chunking}, {chunk_seconds:g} s pieces"}
                    else:
                        waveform, lengths = pad_sequences([w for _, w in kept])
                        frames, n_frames = backbone(waveform.to(device), lengths.to(device))
                        frames = frames.float().cpu()
                        clips = [f[:n].clone() for f, n in zip(frames, n_frames.tolist())]
                    for ((item, path, stamp, _), _), clip in zip(kept, clips):
                        save_tensors(
                            {"frames": clip},
                            path,
                            {**stamp, "clip_id": item.clip_id, "backbone": getattr(backbone, "name", ""), **extra},
                        )
                        out[item.clip_id] = clip
                        self.stats["audio_computed"] += 1
                    bar.update(len(batch))
        finally:
            bar.close()
            if channels_last:
                backbone.to(memory_format=torch.contiguous_format)
            backbone.train(was_training)
        if bad:
            raise BadAudioError(describe_bad_audio(bad, limit=50) + " (screen clips with "
                                "hybridlib.data.audio_io.screen_audio first; the others were cached)")
        return out

    # ----------------------------------------------------------------- text
    def text_fingerprint(self, encoder) -> str:
        config = encoder.config() if hasattr(encoder, "config") else {}
        return module_fingerprint(encoder, {"kind": "text", **config})

    def text_dir(self, encoder) -> Path:
        name = _safe_name(getattr(encoder, "name", type(encoder).__name__))
        return self.root / "text" / f"{name}-{self.text_fingerprint(encoder)}"

    @staticmethod
    def _text_key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _load_text_index(self, folder: Path) -> dict:
        """``{text key: tensor}`` from every verified shard of ``folder``: rows of ``embeddings [N, D]``, or (the
        hidden-state shards of ``hidden-<layer>/``) slices of ``hidden [sum L_i, D]`` cut by ``lengths [N]``.
        Damaged shards are deleted, counted and reported (their texts are recomputed)."""
        index, damaged = {}, []
        sequences = folder.name.startswith("hidden-")
        for shard in sorted(folder.glob("shard-*.safetensors")):
            emb, meta = read_verified(shard, "hidden" if sequences else "embeddings")
            lengths = None
            if emb is not None and sequences:
                lengths, why = read_verified(shard, "lengths")
                if lengths is None:
                    emb, meta = None, why
            if emb is None:
                if shard.is_file():  # (else removed by a concurrent compaction: nothing to say)
                    damaged.append(f"{shard.name} ({meta})")
                    shard.unlink(missing_ok=True)  # a complete file was renamed in: this one is damaged for good
                continue
            try:
                keys = json.loads(meta.get("keys", "[]"))
            except ValueError:
                keys = []
            if lengths is not None and int(lengths.sum()) != emb.shape[0]:
                damaged.append(f"{shard.name} (lengths do not match the states)")
                continue
            rows = list(emb.split(lengths.tolist())) if lengths is not None else list(emb)
            if len(keys) != len(rows):
                damaged.append(f"{shard.name} (keys do not match rows)")
                continue
            index.update(zip(keys, rows))
        self.stats["text_damaged"] += len(damaged)
        _report_damaged("text", damaged)
        return index

    @staticmethod
    def _shard_tensors(rows: list) -> dict:
        """A shard's tensors: ``embeddings`` for one vector per text, ``hidden`` + ``lengths`` for sequences."""
        import torch

        if rows and rows[0].dim() == 2:
            return {"hidden": torch.cat(rows), "lengths": torch.tensor([r.shape[0] for r in rows], dtype=torch.long)}
        return {"embeddings": torch.stack(rows)}

    def _add_shard(self, folder: Path, keys: list[str], rows: list, encoder) -> None:
        shard = folder / f"shard-{time.time_ns()}-{uuid.uuid4().hex[:6]}.safetensors"
        save_tensors(self._shard_tensors(rows), shard, {"keys": json.dumps(keys), "encoder": encoder.name})
        self._compact(folder)

    def _cached_texts(self, texts: Sequence[str], encoder, folder: Path, compute, desc: str,
                      progress: bool) -> list:
        """One row per text from the shards of ``folder``; texts not cached yet go through ``compute(texts) ->
        rows`` (1024 at a time, ``encoder`` in eval mode under ``inference_mode``) into one new shard."""
        import torch

        from hybridlib.util.progress import progress_bar as tqdm

        if getattr(encoder, "trainable", False):
            raise ValueError(
                f"text encoder {getattr(encoder, 'name', '')!r} is trainable; only frozen encoders are cached"
            )
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"texts[{bad[0]}] is {type(texts[bad[0]]).__name__}, expected str")
        index = self._load_text_index(folder) if folder.is_dir() else {}
        keys = [self._text_key(t) for t in texts]
        missing = {k: t for k, t in zip(keys, texts) if k not in index}
        self.stats["text_hits"] += len(texts) - len(missing)
        if missing:
            order = sorted(missing)  # content order: the shard is the same whoever fills it
            was_training = encoder.training
            encoder.eval()
            rows = []
            try:
                with torch.inference_mode():
                    for i in tqdm(range(0, len(order), 1024), desc=desc, disable=not progress, leave=False):
                        rows += [r.float().cpu() for r in compute([missing[k] for k in order[i : i + 1024]])]
            finally:
                encoder.train(was_training)
            self._add_shard(folder, order, rows, encoder)
            index.update(zip(order, rows))
            self.stats["text_computed"] += len(order)
        return [index[k] for k in keys]

    def text_embeddings(self, texts: Sequence[str], encoder, progress: bool = True):
        """Embeddings ``[N, D]`` (float32, CPU) of ``texts`` under a frozen ``encoder``.

        Only texts not cached yet are encoded (grouped by token count, so nothing is padded and each
        embedding is independent of the others) and appended as a new shard; an encoder with
        ``trainable=True`` is refused since its embeddings change while training.
        """
        import torch

        embed = getattr(encoder, "embed_batch_invariant", None) or encoder  # plain callables are used as they are
        rows = self._cached_texts(texts, encoder, self.text_dir(encoder), lambda chunk: list(embed(chunk)),
                                  "embed texts", progress)
        return torch.stack(rows) if rows else torch.zeros(0, getattr(encoder, "embed_dim", 0))

    def text_hidden_states(self, texts: Sequence[str], encoder, layer: int, progress: bool = True) -> list:
        """Token states ``[L_i, D]`` (float32, CPU) of each text after the first ``layer`` layers of a frozen
        ``encoder`` (:meth:`~hybridlib.models.text.TextEncoder.hidden_states_batch_invariant`), for
        ``ModelConfig.text_tune_layers``, whose trainable top layers continue from there.

        Stored next to the encoder's embeddings, in ``hidden-<layer>/`` (same invalidation by the encoder's
        fingerprint, same shards and atomic writes); only texts not cached yet are computed.
        """
        return self._cached_texts(texts, encoder, self.text_dir(encoder) / f"hidden-{int(layer)}",
                                  lambda chunk: encoder.hidden_states_batch_invariant(chunk, layer),
                                  f"text states (layer {layer})", progress)

    def _compact(self, folder: Path, max_shards: int = 16) -> None:
        """Merge shards into one when there are more than ``max_shards`` (keeps loading fast)."""
        shards = sorted(folder.glob("shard-*.safetensors"))
        if len(shards) <= max_shards:
            return
        index = self._load_text_index(folder)
        keys = sorted(index)
        merged = folder / f"shard-{time.time_ns()}-{uuid.uuid4().hex[:6]}.safetensors"
        save_tensors(self._shard_tensors([index[k] for k in keys]), merged, {"keys": json.dumps(keys)})
        for shard in shards:
            shard.unlink(missing_ok=True)

    def clear(self) -> None:
        """Delete everything below ``root`` that this cache wrote."""
        import shutil

        for sub in ("audio", "text", self.audio_check_dir.name):
            shutil.rmtree(self.root / sub, ignore_errors=True)


def fill_cache(items: Sequence, backbone, text_encoder=None, cache: FeatureCache | None = None,
               batch_size: int = 8, num_workers: int = 1, progress: bool = True,
               max_batch_seconds: float | None = None, chunk_seconds: float | None = None) -> dict:
    """Compute (or find) the frames of every item (screened first: see
    :func:`hybridlib.data.audio_io.screen_audio`) and, with ``text_encoder``, the embeddings of their captions
    and OS/CS metadata texts. Returns figures for a report (clips, computed, damaged entries, seconds, ...)."""
    from hybridlib.data.metadata import metadata_text

    cache = cache or FeatureCache()
    items = list(items)
    start = time.perf_counter()
    frames = cache.audio_frames(items, backbone, batch_size=batch_size, progress=progress, num_workers=num_workers,
                                max_batch_seconds=max_batch_seconds, chunk_seconds=chunk_seconds)
    report = {"clips": len(frames), "audio_computed": cache.stats["audio_computed"],
              "audio_cached": cache.stats["audio_hits"], "audio_damaged": cache.stats["audio_damaged"],
              "frames": sum(f.shape[0] for f in frames.values()),
              "audio_seconds": time.perf_counter() - start, "audio_dir": str(cache.audio_dir(backbone))}
    if text_encoder is not None:
        texts = [c for it in items for c in it.captions]
        for kind in ("os", "cs"):
            texts += [t for t in (metadata_text(it, kind) for it in items) if t]
        texts = list(dict.fromkeys(texts))
        start = time.perf_counter()
        cache.text_embeddings(texts, text_encoder, progress=progress)
        report.update(texts=len(texts), text_computed=cache.stats["text_computed"],
                      text_damaged=cache.stats["text_damaged"],
                      text_seconds=time.perf_counter() - start, text_dir=str(cache.text_dir(text_encoder)))
    return report
