"""Data preparation for a training config: load the datasets, apply the metadata protocol, encode the splits.

:func:`prepare_data` returns :class:`TrainingData` (train / validation / evaluation :class:`EncodedSplit`)
with a *fingerprint* of the config fields that produced it (:func:`data_fingerprint`). Training refuses
data whose fingerprint differs from its own config's, so a model is never trained or evaluated on data
prepared for another config (say, a content-only baseline on FS data, which lacks the caption moved into
the description).

Frozen encoders (``model.audio_trainable`` / ``model.text_trainable`` false) are run once per clip/text
through :class:`hybridlib.features.cache.FeatureCache`; later runs read the cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from hybridlib.config import TrainConfig
from hybridlib.features.splits import EncodedSplit, concat_splits, encode_split

ROLES = ("train", "val", "test")


@dataclass
class TrainingData:
    """The encoded splits of a run; a role not prepared (see ``prepare_data(roles=...)``) is None."""

    train: EncodedSplit | None
    val: EncodedSplit | None
    test: EncodedSplit | None
    fingerprint: str = ""
    info: dict = field(default_factory=dict)


def metadata_kind_for(cfg: TrainConfig, dataset: str) -> str | None:
    """The metadata kind fed for ``dataset`` (None: content-only models never see metadata)."""
    model = cfg.model_config()
    if model.fusion in ("none", "mei"):
        return None
    return cfg.metadata_by_dataset.get(dataset, model.metadata_kind)


def data_settings(cfg: TrainConfig) -> dict:
    """Every setting that changes the prepared data, with defaults resolved (the fingerprint's input)."""
    model = cfg.model_config()
    return {
        "datasets": cfg.datasets, "benchmark": cfg.benchmark,
        "data_root": str(Path(cfg.data_root).resolve()) if cfg.data_root else None, "smoke": cfg.smoke,
        "train": cfg.train_splits(), "splits": list(cfg.splits()),
        "metadata": {d: metadata_kind_for(cfg, d) for d in cfg.datasets},
        "fs_seed": cfg.fs_seed, "metadata_degradation": cfg.metadata_degradation,
        "max_audio_seconds": cfg.max_audio_seconds, "frame_stride": cfg.frame_stride,
        "audio": {"backbone": model.audio_backbone, "cached": not model.audio_trainable},
        "text": {"encoder": model.text_encoder, "max_tokens": model.text_max_tokens,
                 "pooling": model.text_pooling, "cached": not model.text_trainable},
    }


def data_fingerprint(cfg: TrainConfig) -> str:
    """A short hash of :func:`data_settings` (equal for configs whose prepared data are interchangeable)."""
    blob = json.dumps(data_settings(cfg), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def dataset_root(cfg: TrainConfig, dataset: str, progress: bool = True) -> Path:
    """The folder ``dataset`` is read from (the teaching set is generated there when missing)."""
    from hybridlib import paths
    from hybridlib.data import ensure_teaching_set

    if dataset == "teaching":
        root = Path(cfg.data_root) if cfg.data_root else None
        return Path(ensure_teaching_set(root=root, smoke=cfg.smoke, progress=progress))
    return Path(cfg.data_root or paths.data_dir())


def load_items(cfg: TrainConfig, dataset: str, split: str, progress: bool = True):
    """One split of ``dataset`` as a ClipSet, with the config's metadata protocol applied (FS, degradation)."""
    from hybridlib import data as D
    from hybridlib.data.loaders import load_split

    items = load_split(dataset, dataset_root(cfg, dataset, progress), split)
    kind = metadata_kind_for(cfg, dataset)
    if kind == "fs":
        items = D.with_fs_descriptions(items, seed=cfg.fs_seed)
    if kind is not None and cfg.metadata_degradation:
        items = D.degrade_metadata(items, kind, **cfg.metadata_degradation)
    return items


def prepare_data(cfg: TrainConfig, progress: bool = True, cache=None, roles=ROLES) -> TrainingData:
    """Load and encode the splits of ``cfg`` that play ``roles`` (default all three; see the module docstring)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"roles must be among {ROLES}, got {sorted(unknown)}")
    mcfg = cfg.model_config()
    audio_cached, text_cached = not mcfg.audio_trainable, not mcfg.text_trainable

    # built even for a trainable backbone: the waveform path needs its sample rate
    from hybridlib.models.audio import build_audio_backbone

    backbone = build_audio_backbone(mcfg.audio_backbone).eval()
    text_encoder = None
    if text_cached:
        from hybridlib.models.text import build_text_encoder

        text_encoder = build_text_encoder(mcfg.text_encoder, max_tokens=mcfg.text_max_tokens,
                                          pooling=mcfg.text_pooling).eval()
    if cache is None and (audio_cached or text_cached):
        from hybridlib.features.cache import FeatureCache

        cache = FeatureCache(cfg.cache_dir)
    waveform_cache = None
    if not audio_cached and cfg.waveform_cache:
        from hybridlib.features.waveform_cache import WaveformCache

        waveform_cache = WaveformCache(cfg.cache_dir)

    reports, excluded = [], {}

    def encoded(dataset: str, split: str) -> EncodedSplit:
        items = load_items(cfg, dataset, split, progress)
        out = encode_split(items, split, metadata_kind=metadata_kind_for(cfg, dataset), cache=cache,
                           backbone=backbone, text_encoder=text_encoder, audio_cached=audio_cached,
                           text_cached=text_cached, sample_rate=getattr(backbone, "sample_rate", None),
                           max_audio_seconds=cfg.max_audio_seconds, progress=progress,
                           waveform_cache=waveform_cache, num_workers=cfg.num_workers)
        report = items.report.as_dict()
        if out.excluded:  # unreadable audio (trainable backbone): left out and counted
            report["excluded"] += len(out.excluded)
            report["notes"] = [*report["notes"], f"{len(out.excluded)} clips excluded, audio unreadable: "
                               + "; ".join(list(out.excluded.values())[:3])]
            excluded[f"{dataset}/{split}"] = dict(out.excluded)
            if progress:
                print(f"[data] {dataset}/{split}: {report['notes'][-1]}", flush=True)
        reports.append(report)
        return out.with_frame_stride(cfg.frame_stride)

    _, val_name, test_name = cfg.splits()
    train = concat_splits([encoded(d, s) for d, s in cfg.train_splits()]) if "train" in roles else None
    val = encoded(cfg.benchmark, val_name) if "val" in roles else None
    test = encoded(cfg.benchmark, test_name) if "test" in roles else None
    splits = {"train": train, "val": val, "test": test}
    info = {"datasets": cfg.datasets, "benchmark": cfg.benchmark, "train": cfg.train_splits(),
            "splits": dict(zip(ROLES, cfg.splits())), "roles": list(roles),
            "clips": {k: v.n_clips for k, v in splits.items() if v is not None},
            "captions": {k: v.n_captions for k, v in splits.items() if v is not None},
            "load_reports": reports, "excluded_audio": excluded, "settings": data_settings(cfg)}
    return TrainingData(train, val, test, data_fingerprint(cfg), info)
