"""Data preparation for a training config: load the datasets, apply the metadata protocol, encode the splits.

:func:`prepare_data` returns :class:`TrainingData` (train / validation / evaluation :class:`EncodedSplit`)
with a *fingerprint* of the config fields that produced it (:func:`data_fingerprint`). Training refuses
data whose fingerprint differs from its own config's, so a model is never trained or evaluated on data
prepared for another config (say, a content-only baseline on FS data, which lacks the caption moved into
the description).

Frozen encoders (``model.audio_trainable`` / ``model.text_trainable`` false, ``model.frozen_mode`` "eval")
are run once per clip/text through :class:`hybridlib.features.cache.FeatureCache`; later runs read the cache.

Audio is screened before anything is encoded or built (:func:`hybridlib.data.audio_io.screen_audio`, check
``cfg.audio_check``): clips whose audio is missing, unreadable, empty, non-finite or silent are excluded and
listed in ``info["excluded"]`` (and in each load report's ``bad_audio``), which training saves as the run's
``data_report.json`` and :func:`data_report_line` summarises in one printed line; with
``cfg.bad_audio == "error"`` they stop preparation instead, all of them named at once.

Metadata: AudioCaps' closed-set tags are joined from AudioSet's label files (``cfg.audioset_labels``, see
:func:`audioset_labels_dir`). A row that fuses metadata stops with a :class:`MetadataMissing` error when a
split ends up with (almost) no metadata (below ``cfg.min_metadata_coverage`` of its usable clips, measured
after the FS protocol and before any deliberate ``metadata_degradation``): such a run would train the
content-only baseline plus a learned constant and report it as the hybrid model.
``info["metadata"]`` holds each loaded split's ``metadata_kind`` and ``metadata_coverage``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from hybridlib.config import ConfigError, TrainConfig
from hybridlib.features.splits import EncodedSplit, concat_splits, encode_split
from hybridlib.util.errors import UserError

ROLES = ("train", "val", "test")


class MetadataMissing(UserError):
    """A row that fuses metadata would train on (almost) none; the message says how to provide it."""


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
        "train_captions": [cfg.train_captions, cfg.train_captions_seed],
        "max_audio_seconds": cfg.max_audio_seconds, "frame_stride": cfg.frame_stride,
        "audio_check": cfg.audio_check, "audioset_labels": _audioset_setting(cfg),
        "audio": {"backbone": model.audio_backbone, "cached": model.audio_cached,
                  "checkpoint": model.audio_checkpoint},
        "text": {"encoder": model.text_encoder, "max_tokens": model.text_max_tokens,
                 "pooling": model.text_pooling, "cached": model.text_cached, "mode": model.text_mode,
                 "tune_layers": model.text_tune_layers},
    }


def _audioset_setting(cfg: TrainConfig) -> str | None:
    if "audiocaps" not in [*cfg.datasets, cfg.benchmark] or metadata_kind_for(cfg, "audiocaps") != "cs":
        return None
    folder = audioset_labels_dir(cfg)
    return None if folder is None else str(folder.resolve())


def data_fingerprint(cfg: TrainConfig) -> str:
    """A short hash of :func:`data_settings` (equal for configs whose prepared data are interchangeable)."""
    blob = json.dumps(data_settings(cfg), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


AUDIO_SETTINGS = ("datasets", "benchmark", "data_root", "smoke", "train", "splits", "max_audio_seconds",
                  "audio_check", "audio")


def audio_fingerprint(cfg: TrainConfig) -> str:
    """A short hash of the :func:`data_settings` that decide which clips' audio features the cache must hold
    (equal for configs that differ only in metadata, captions, texts or frame stride)."""
    settings = data_settings(cfg)
    blob = json.dumps({k: settings[k] for k in AUDIO_SETTINGS}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def dataset_root(cfg: TrainConfig, dataset: str, progress: bool = True) -> Path:
    """The folder ``dataset`` is read from (the teaching set is generated there when missing).

    A teaching set at a ``data_root`` named explicitly is used as it is (whatever seed, size or bank made it,
    :func:`hybridlib.data.teaching.use_teaching_set`); only the default root is generated and checked against the
    default settings. A ``data_root`` holding another dataset (Clotho, AudioCaps) names the ``dataset=`` to set.
    A ``data_root`` that does not exist is a :class:`~hybridlib.data.DatasetError` (a typo must not make
    the teaching set generate hundreds of megabytes somewhere), except the teaching set's own default folder.
    """
    from hybridlib import paths
    from hybridlib.data import DatasetError, ensure_teaching_set

    if cfg.data_root:
        root = Path(cfg.data_root)
        default = paths.teaching_dir(cfg.smoke)
        if not root.exists() and not (dataset == "teaching" and root.resolve() == default.resolve()):
            hint = (f"leave data_root unset to use (and generate) the teaching set in {default}"
                    if dataset == "teaching" else "point it at the dataset's folder")
            raise DatasetError(f"data_root {root} does not exist; {hint}")
    named = named_teaching_set(cfg) if dataset == "teaching" else None
    if named is not None:
        return named  # named explicitly: used as it is (any seed, size or bank)
    if dataset == "teaching":
        root = Path(cfg.data_root) if cfg.data_root else None
        return Path(ensure_teaching_set(root=root, smoke=cfg.smoke, progress=progress))
    return Path(cfg.data_root or paths.data_dir())


def named_teaching_set(cfg: TrainConfig) -> Path | None:
    """The teaching set at a ``data_root`` the user named, used as it is
    (:func:`hybridlib.data.teaching.use_teaching_set`, which raises when the folder holds none); None when
    ``data_root`` is unset, missing, or the default folder (generated and checked by ``ensure_teaching_set``)."""
    from hybridlib import paths
    from hybridlib.data.teaching import use_teaching_set

    if not cfg.data_root:
        return None
    root = Path(cfg.data_root)
    if not root.exists() or root.resolve() == paths.teaching_dir(cfg.smoke).resolve():
        return None
    return use_teaching_set(root)


def audio_check_memo(cfg: TrainConfig) -> Path:
    """Where the outcome of full audio checks is remembered (below the feature cache)."""
    from hybridlib.features.cache import FeatureCache

    return FeatureCache(cfg.cache_dir).audio_check_dir


def audioset_labels_dir(cfg: TrainConfig) -> Path | None:
    """The folder with AudioSet's ``class_labels_indices.csv`` and segment CSVs for AudioCaps' CS tags.

    ``cfg.audioset_labels`` when set (a relative path is taken relative to the dataset root), else the folder
    :func:`hybridlib.data.detect.find_audioset_labels` finds below the dataset root (``audioset``, ``AUDIOSET``,
    ``AUDIOCAPS`` where aac-datasets puts them, or the root itself), else None (no tags).
    """
    from hybridlib.data.detect import find_audioset_labels

    root = dataset_root(cfg, "audiocaps", progress=False)
    if cfg.audioset_labels:
        folder = Path(cfg.audioset_labels)
        return folder if folder.is_absolute() else root / folder
    return find_audioset_labels(root)


def metadata_coverage(items, kind: str | None) -> float | None:
    """Fraction of ``items`` with metadata text of ``kind`` (None for content-only rows)."""
    from hybridlib.data import metadata_text

    if kind is None:
        return None
    items = list(items)
    return sum(metadata_text(it, kind) is not None for it in items) / max(len(items), 1)


def check_metadata_coverage(cfg: TrainConfig, items, dataset: str, split: str) -> float | None:
    """Raise :class:`MetadataMissing` when a metadata row's split has (almost) no metadata; return the coverage."""
    kind = metadata_kind_for(cfg, dataset)
    items = list(items)
    if not items:  # no usable clip at all: prepare_data names that cause, not the metadata
        return None
    coverage = metadata_coverage(items, kind)
    if coverage is None or coverage >= cfg.min_metadata_coverage:
        return coverage
    n = round(coverage * len(items))
    hint = {"cs": (" AudioCaps' CS tags come from AudioSet: set audioset_labels to a folder with "
                   "class_labels_indices.csv and the segment CSVs (unbalanced_train_segments.csv, eval_segments.csv), "
                   "or put them in <data root>/audioset" if dataset == "audiocaps" else ""),
            "fs": " The FS protocol needs clips with at least two captions (AudioCaps train has one).",
            "os": " Clotho's keywords are in clotho_metadata_<split>.csv next to the caption CSVs."}[kind]
    raise MetadataMissing(
        f"config {cfg.name!r}: only {n} of {len(items)} {dataset}/{split} clips ({100 * coverage:.0f}%) have {kind} "
        f"metadata, below min_metadata_coverage={cfg.min_metadata_coverage}: this row would train the content-only "
        f"model plus a learned constant.{hint}")


def load_items(cfg: TrainConfig, dataset: str, split: str, progress: bool = True, screen: bool = True,
               role: str = "test"):
    """One split of ``dataset`` as a ClipSet: clips with unusable audio excluded and recorded in its report
    (``screen``; the policy ``cfg.bad_audio`` is applied by :func:`prepare_data`); for the ``train`` role the
    captions of ``cfg.train_captions`` (generated from keywords, as WavCaps' were from the uploaders' tags); then
    the config's metadata protocol applied (FS, degradation).

    AudioCaps items get AudioSet's CS tags (:func:`audioset_labels_dir`); a metadata row whose split has
    (almost) no metadata stops here (:func:`check_metadata_coverage`).
    """
    from hybridlib import data as D
    from hybridlib.data.audio_io import screen_audio
    from hybridlib.data.loaders import keep_missing_audio, load_split

    kind = metadata_kind_for(cfg, dataset)
    kwargs = keep_missing_audio(dataset)  # screen_audio names them with the other unusable clips
    if dataset == "audiocaps" and kind == "cs":
        labels = audioset_labels_dir(cfg)
        if labels is not None:
            kwargs["audioset_labels"] = labels
    items = load_split(dataset, dataset_root(cfg, dataset, progress), split, **kwargs)
    if screen:
        items = screen_audio(items, check=cfg.audio_check, progress=progress, where=f"{dataset}/{split}",
                             memo_dir=audio_check_memo(cfg))
    if role == "train" and cfg.train_captions == "from-keywords":
        from hybridlib.data.generated_captions import captions_from_keywords

        items = captions_from_keywords(items, seed=cfg.train_captions_seed)
    if kind == "fs":
        items = D.with_fs_descriptions(items, seed=cfg.fs_seed)
    check_metadata_coverage(cfg, items, dataset, split)
    if kind is not None and cfg.metadata_degradation:
        items = D.degrade_metadata(items, kind, **cfg.metadata_degradation)
    return items


def data_report_line(info: dict) -> str:
    """One line summing up a :class:`TrainingData`'s ``info``: each split's load report (clips, captions,
    missing metadata, missing audio, exclusions, loader notes) and the clips excluded with their reasons."""
    from hybridlib.data import LoadReport

    reports = [LoadReport(**r) for r in info.get("load_reports", [])]
    line = "[data] " + "; ".join(str(r) for r in reports)
    excluded = {clip: reason for bad in info.get("excluded", {}).values() for clip, reason in bad.items()}
    if excluded:
        from hybridlib.data.audio_io import describe_bad_audio

        line += " | excluded " + describe_bad_audio(excluded, limit=8) + " (all listed in data_report.json)"
    else:
        line += " | no clip excluded"
    notes = [n for r in reports for n in r.notes]
    if notes:
        line += f" | {len(notes)} loader note(s): " + "; ".join(notes[:3]) + (" ..." if len(notes) > 3 else "")
    return line


def prepare_data(cfg: TrainConfig, progress: bool = True, cache=None, roles=ROLES,
                 clips: dict[str, int] | None = None) -> TrainingData:
    """Load and encode the splits of ``cfg`` that play ``roles`` (default all three; see the module docstring).

    ``clips``: at most that many clips of the split playing a role (``{"train": 32, "test": 16}``: the first ones
    in the split's order, after screening), the rest neither encoded nor read into the waveform cache (notebook
    09's miniature scale on a CPU); recorded in the data report's ``clips_limit``."""
    unknown = set(roles) - set(ROLES) | set(clips or {}) - set(ROLES)
    if unknown:
        raise ValueError(f"roles must be among {ROLES}, got {sorted(unknown)}")
    mcfg = cfg.model_config()
    audio_cached, text_cached = mcfg.audio_cached, mcfg.text_cached

    # the data first (missing folders and bad audio are found before any model is built or downloaded)
    _, val_name, test_name = cfg.splits()
    wanted = {"train": cfg.train_splits() if "train" in roles else [],
              "val": [(cfg.benchmark, val_name)] if "val" in roles else [],
              "test": [(cfg.benchmark, test_name)] if "test" in roles else []}
    loaded = {}
    for role, pairs in wanted.items():
        for d, s in pairs:
            key = (d, s, role == "train")  # a training split may get other captions (cfg.train_captions)
            if key not in loaded:
                loaded[key] = load_items(cfg, d, s, progress=progress, role=role)
            if (clips or {}).get(role) is not None:
                loaded[key] = loaded[key][: clips[role]]
    excluded = {f"{d}/{s}": dict(items.report.bad_audio) for (d, s, _), items in loaded.items()
                if items.report.bad_audio}
    if excluded and cfg.bad_audio == "error":
        from hybridlib.data.audio_io import BadAudioError, describe_bad_audio

        every = {clip: reason for bad in excluded.values() for clip, reason in bad.items()}
        raise BadAudioError(describe_bad_audio(every, ", ".join(excluded), limit=50)
                            + " (bad_audio: error; with bad_audio: exclude they are left out and listed)")
    empty = [f"{d}/{s}" for (d, s, _), items in loaded.items() if not items]
    if empty:
        from hybridlib.data import DatasetError
        from hybridlib.data.audio_io import describe_bad_audio

        bad = {clip: why for key in empty for clip, why in excluded.get(key, {}).items()}
        no_audio = bool(bad) and all("no audio file" in str(why) for why in bad.values())
        raise DatasetError(f"no usable clip in {', '.join(empty)}"
                           + (f": {describe_bad_audio(bad, limit=5)}" if bad else "")
                           + ("; the captions are there but not the audio: download it (e.g. `download clotho "
                              "--root DIR`) or point data_root at the folder that holds it" if no_audio else ""))

    # the frozen backbone fills the cache; a trainable one runs inside the model (the waveform path needs its rate)
    from hybridlib.models.audio import backbone_sample_rate, build_audio_backbone

    backbone = build_audio_backbone(mcfg.audio_backbone, checkpoint=mcfg.audio_checkpoint).eval() \
        if audio_cached else None
    sample_rate = backbone_sample_rate(mcfg.audio_backbone)
    text_encoder = None
    if text_cached:
        from hybridlib.models.text import build_text_encoder

        text_encoder = build_text_encoder(mcfg.text_encoder, max_tokens=mcfg.text_max_tokens,
                                          pooling=mcfg.text_pooling, text_mode=mcfg.text_mode).eval()
    text_layer = None  # text_tune_layers: cache the token states below the trainable top layers
    if text_cached and mcfg.text_tune_layers:
        text_layer = text_encoder.num_layers - mcfg.text_tune_layers
        if text_layer < 0:
            raise ConfigError(f"config {cfg.name!r}: model.text_tune_layers={mcfg.text_tune_layers} but "
                              f"{mcfg.text_encoder!r} has {text_encoder.num_layers} layers")
    if cache is None and (audio_cached or text_cached):
        from hybridlib.features.cache import FeatureCache

        cache = FeatureCache(cfg.cache_dir)
    waveform_cache = None
    if not audio_cached and cfg.waveform_cache:
        from hybridlib.features.waveform_cache import WaveformCache

        waveform_cache = WaveformCache(cfg.cache_dir)

    reports, metadata = [], {}

    def encoded(dataset: str, split: str, role: str) -> EncodedSplit:
        items = loaded[(dataset, split, role == "train")]
        out = encode_split(items, split, metadata_kind=metadata_kind_for(cfg, dataset), cache=cache,
                           backbone=backbone, text_encoder=text_encoder, audio_cached=audio_cached,
                           text_cached=text_cached, text_layer=text_layer, sample_rate=sample_rate,
                           max_audio_seconds=cfg.max_audio_seconds, progress=progress,
                           waveform_cache=waveform_cache, num_workers=cfg.num_workers)
        kind = metadata_kind_for(cfg, dataset)
        metadata[f"{dataset}/{split}"] = {"metadata_kind": kind, "metadata_coverage": metadata_coverage(items, kind)}
        report = items.report.as_dict()
        if out.excluded:  # unreadable audio (trainable backbone): left out and counted
            report["excluded"] += len(out.excluded)
            report["notes"] = [*report["notes"], f"{len(out.excluded)} clips excluded, audio unreadable: "
                               + "; ".join(list(out.excluded.values())[:3])]
            excluded.setdefault(f"{dataset}/{split}", {}).update(out.excluded)
            if progress:
                print(f"[data] {dataset}/{split}: {report['notes'][-1]}", flush=True)
        reports.append(report)
        return out.with_frame_stride(cfg.frame_stride)

    train = concat_splits([encoded(d, s, "train") for d, s in wanted["train"]]) if "train" in roles else None
    val = encoded(*wanted["val"][0], "val") if "val" in roles else None
    test = encoded(*wanted["test"][0], "test") if "test" in roles else None
    splits = {"train": train, "val": val, "test": test}
    info = {"datasets": cfg.datasets, "benchmark": cfg.benchmark, "train": cfg.train_splits(),
            "splits": dict(zip(ROLES, cfg.splits())), "roles": list(roles),
            "clips": {k: v.n_clips for k, v in splits.items() if v is not None},
            "captions": {k: v.n_captions for k, v in splits.items() if v is not None},
            "excluded": excluded, "audio_check": cfg.audio_check,
            "load_reports": reports, "metadata": metadata, "settings": data_settings(cfg)}
    if clips:
        info["clips_limit"] = {k: v for k, v in clips.items() if v is not None}
    return TrainingData(train, val, test, data_fingerprint(cfg), info)
