"""Training: one config dataclass, optimiser and schedules, the loop, checkpoints/resume, logs, CLI ``train``.

Paper settings mapped to :class:`TrainConfig` fields (defaults are the hybrid paper's):

* hybrid paper IV-C: Adam with PyTorch defaults (``lr``), batch size 32, 25 epochs, one warm-up epoch then
  cosine decay from 2e-5 to 1e-7 (``schedule="warmup-cosine"``, ``warmup_epochs``, ``lr``, ``lr_min``),
  NT-Xent loss, SpecAugment (``spec_augment``), results averaged over three seeds, mAP@10 as the main metric.
* Mei et al. 3.2: Adam, 50 epochs, lr 1e-4 (or 5e-5) divided by 10 every 20 epochs (``schedule="step"``,
  ``step_size=20``, ``gamma=0.1``), batch 32 (AudioCaps) / 24 (Clotho), best model by the sum of recalls
  on validation (``select_metric="R-sum"``).

Choices the papers leave open (each a field): the warm-up is linear over the optimiser steps of the first
epoch and the cosine decays per step (the common implementation); gradients are clipped by global norm only
when ``grad_clip`` is set; an epoch visits every caption once (caption-level batches, see
:mod:`hybridlib.batching`). With cached frozen frames the backbone never sees a spectrogram, so
``spec_augment`` then masks random time steps and channels of the cached frame sequence
(``frame_time_mask``/``frame_channel_mask``, torchaudio's masking transforms) - a feature-level analogue
documented as such; with a trainable backbone the backbone's own SpecAugment runs in train mode.

A run directory holds ``config.yaml``, ``checkpoint.pt`` (every epoch, written atomically), ``log.csv``,
``tb/`` (TensorBoard), ``best/model.safetensors`` + ``best/model_config.json`` + ``best/train_config.json``,
and ``metrics.json``. Several seeds go to ``<out>/seed-<n>/`` and ``<out>/metrics.json`` aggregates them.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridlib.batching import EncodedSplit

DATASET_SPLITS = {
    "teaching": ("development", "validation", "evaluation"),
    "clotho": ("development", "validation", "evaluation"),
    "audiocaps": ("train", "val", "test"),
}
SCHEDULES = ("warmup-cosine", "step", "constant")
SELECT_METRICS = ("mAP@10", "R-sum")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and the field."""


@dataclass
class TrainConfig:
    """Everything one training run needs; filled from YAML files, ``--set key=value`` and notebook parameters.

    ``model`` holds the :class:`hybridlib.models.retrieval.ModelConfig` fields (validated when the model is
    built). See the module docstring for how each paper setting maps to a field.
    """

    name: str = "run"
    description: str = ""
    paper_row: str | None = None          # id in hybridlib.paper this config reproduces
    # data
    dataset: str = "teaching"             # teaching | clotho | audiocaps | clotho+audiocaps (joint training)
    eval_dataset: str | None = None       # benchmark for validation/evaluation (None: the first dataset)
    metadata_by_dataset: dict = field(default_factory=dict)  # e.g. {clotho: os, audiocaps: cs} (else model's)
    data_root: str | None = None          # None: teaching -> hybridlib.paths.teaching_dir(smoke), else data_dir()
    smoke: bool = False                   # the tiny smoke teaching set
    train_split: str | None = None        # None: the dataset's usual names (DATASET_SPLITS)
    val_split: str | None = None
    eval_split: str | None = None
    fs_seed: int = 0                      # which caption becomes the FS description (hybridlib.data.with_fs_descriptions)
    cache_dir: str | None = None          # None: hybridlib.paths.cache_dir()
    max_audio_seconds: float | None = None  # crop of training waveforms when the backbone is trained
    # noisier or missing metadata in every split, e.g. {remove_metadata: 0.5, drop_tags: 0.3, seed: 0}: the knobs
    # of hybridlib.data.degrade_metadata (the hybrid paper's future work: how robust is the hybrid advantage?)
    metadata_degradation: dict = field(default_factory=dict)
    # model (ModelConfig fields)
    model: dict = field(default_factory=dict)
    # loss
    loss: str = "nt-xent"
    loss_kwargs: dict = field(default_factory=dict)
    # optimisation
    epochs: int = 25
    batch_size: int = 32
    lr: float = 2e-5
    lr_min: float = 1e-7
    weight_decay: float = 0.0
    schedule: str = "warmup-cosine"
    warmup_epochs: float = 1.0
    step_size: int = 20                   # StepLR: epochs between decays (Mei et al.)
    gamma: float = 0.1
    grad_clip: float | None = None
    captions_per_clip: int | None = None  # None: every caption each epoch (papers); k: k random ones (CPU)
    frame_stride: int = 1                 # average cached frames over this many steps (CPU; 1 = as extracted)
    spec_augment: bool = True
    frame_time_mask: int = 0              # cached-frame augmentation: max masked time steps (0: off)
    frame_channel_mask: int = 0           # ... and max masked channels (0: off)
    # selection and evaluation
    select_metric: str = "mAP@10"         # mAP@10 | R-sum (Mei et al.)
    eval_batch_size: int = 256
    seed: int = 0
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    # runtime
    device: str = "auto"                  # auto | cpu | cuda | cuda:N
    amp: bool = True                      # mixed precision on CUDA (ignored on CPU)
    num_threads: int | None = None        # torch CPU threads during train() (None: leave torch's setting)
    tensorboard: bool = True
    stop_after_epoch: int | None = None   # end this invocation after that epoch (resume continues)
    notes: str = ""

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: dict, source: str = "<dict>") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**values)
        cfg.validate(source)
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def validate(self, source: str = "<config>") -> None:
        def bad(name, why):
            raise ConfigError(f"{source}: field {name!r} {why} (got {getattr(self, name)!r})")

        if not self.dataset or any(d not in DATASET_SPLITS for d in self.dataset.split("+")):
            bad("dataset", f"must be one of {sorted(DATASET_SPLITS)} or several joined with '+'")
        if self.eval_dataset is not None and self.eval_dataset not in self.dataset.split("+"):
            bad("eval_dataset", f"must be one of the training datasets {self.dataset.split('+')}")
        if not isinstance(self.metadata_by_dataset, dict) or not set(self.metadata_by_dataset) <= set(
                self.dataset.split("+")):
            bad("metadata_by_dataset", "must map training datasets to a metadata kind (os, cs, fs)")
        if self.schedule not in SCHEDULES:
            bad("schedule", f"must be one of {SCHEDULES}")
        if self.select_metric not in SELECT_METRICS:
            bad("select_metric", f"must be one of {SELECT_METRICS}")
        for name in ("epochs", "batch_size", "eval_batch_size", "step_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(name, "must be a positive integer")
        if self.batch_size < 2:
            bad("batch_size", "must be at least 2 (in-batch negatives)")
        for name in ("lr", "gamma"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) <= 0:
                bad(name, "must be a positive number")
        if not isinstance(self.lr_min, (int, float)) or not 0 <= self.lr_min <= self.lr:
            bad("lr_min", "must be a number between 0 and lr")
        if not isinstance(self.warmup_epochs, (int, float)) or self.warmup_epochs < 0:
            bad("warmup_epochs", "must be >= 0")
        if self.grad_clip is not None and (not isinstance(self.grad_clip, (int, float)) or self.grad_clip <= 0):
            bad("grad_clip", "must be a positive number or null")
        if not isinstance(self.model, dict):
            bad("model", "must be a mapping of ModelConfig fields")
        if not isinstance(self.loss_kwargs, dict):
            bad("loss_kwargs", "must be a mapping")
        if not isinstance(self.seeds, list) or not all(isinstance(s, int) for s in self.seeds) or not self.seeds:
            bad("seeds", "must be a non-empty list of integers")
        if self.captions_per_clip is not None and (not isinstance(self.captions_per_clip, int)
                                                   or self.captions_per_clip < 1):
            bad("captions_per_clip", "must be a positive integer or null")
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            bad("num_threads", "must be a positive integer or null")
        if not isinstance(self.frame_stride, int) or self.frame_stride < 1:
            bad("frame_stride", "must be a positive integer")
        if self.stop_after_epoch is not None and (not isinstance(self.stop_after_epoch, int)
                                                  or self.stop_after_epoch < 1):
            bad("stop_after_epoch", "must be a positive integer or null")
        knobs = {"drop_tags", "add_distractors", "swap_synonyms", "remove_metadata", "seed"}
        if not isinstance(self.metadata_degradation, dict) or not set(self.metadata_degradation) <= knobs:
            bad("metadata_degradation", f"must be a mapping with keys from {sorted(knobs)}")
        for knob, value in self.metadata_degradation.items():
            if knob == "seed" and not isinstance(value, int):
                bad("metadata_degradation", "needs an integer seed")
            if knob != "seed" and (not isinstance(value, (int, float)) or not 0 <= value <= 1):
                bad("metadata_degradation", f"{knob} must be a fraction in [0, 1]")

    @property
    def datasets(self) -> list[str]:
        return self.dataset.split("+")

    @property
    def benchmark(self) -> str:
        """The dataset validated and evaluated on."""
        return self.eval_dataset or self.datasets[0]

    def splits(self) -> tuple[str, str, str]:
        """(train, validation, evaluation) split names of the benchmark dataset."""
        train, val, test = DATASET_SPLITS[self.benchmark]
        return self.train_split or train, self.val_split or val, self.eval_split or test

    def train_splits(self) -> list[tuple[str, str]]:
        """(dataset, split) pairs joined for training."""
        if len(self.datasets) == 1:
            return [(self.datasets[0], self.splits()[0])]
        return [(d, DATASET_SPLITS[d][0]) for d in self.datasets]

    def model_config(self):
        """The :class:`ModelConfig` of ``self.model`` (clear error naming unknown fields)."""
        from hybridlib.models.retrieval import ModelConfig

        try:
            return ModelConfig.from_dict(self.model)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config {self.name!r}: model section: {exc}") from exc


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config_dict(path: str | Path, _seen: tuple = ()) -> dict:
    """A YAML config as a dict, following ``extends: other.yaml`` (relative to the file) recursively."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config must be a mapping of fields")
    parent = values.pop("extends", None)
    if parent:
        values = _deep_merge(read_config_dict(path.parent / parent, (*_seen, path.resolve())), values)
    return values


def parse_overrides(pairs: list[str] | None) -> dict:
    """``["epochs=3", "model.fusion=mid"]`` -> nested dict; values parsed as YAML scalars."""
    import yaml

    out: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: dict | list[str] | None = None, **values) -> TrainConfig:
    """Build a :class:`TrainConfig` from a YAML file, then ``overrides`` (dict or ``key=value`` strings),
    then keyword values (what notebooks pass from their parameters)."""
    base = read_config_dict(path) if path else {}
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    merged = _deep_merge(_deep_merge(base, overrides or {}), values)
    return TrainConfig.from_dict(merged, source=str(path) if path else "<config>")


def experiments_dir() -> Path:
    """``<repo>/experiments`` (found from the package, independent of the working directory)."""
    from hybridlib.paths import project_root

    return project_root() / "experiments"


def teaching_config(name: str, overrides: dict | list[str] | None = None, **values) -> TrainConfig:
    """``experiments/teaching/<name>.yaml`` as a :class:`TrainConfig` (notebooks pass their parameters
    as keyword values; ``None`` values are ignored so a parameter left at None keeps the config's value)."""
    path = experiments_dir() / "teaching" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("[!_]*.yaml"))
        raise ConfigError(f"no teaching config {name!r} ({path}); available: {known}")
    return load_config(path, overrides, **{k: v for k, v in values.items() if v is not None})


def save_config(cfg: TrainConfig, path: Path) -> None:
    import yaml

    _atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


# ---------------------------------------------------------------------------------------------------- optimiser
def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the trainable parameters, PyTorch's default betas/eps (hybrid paper IV-C, Mei 3.2)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Per-step LR schedule.

    * ``warmup-cosine``: linear warm-up over ``warmup_epochs`` epochs up to ``lr``, then cosine decay to
      ``lr_min`` at the last step (hybrid paper: one warm-up epoch, 2e-5 -> 1e-7).
    * ``step``: ``lr * gamma ** (epoch // step_size)`` (Mei et al.: /10 every 20 epochs).
    * ``constant``.
    """
    from torch.optim import lr_scheduler as S

    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "warmup-cosine":
        warm = min(total - 1, int(round(cfg.warmup_epochs * steps_per_epoch)))
        cosine = S.CosineAnnealingLR(optimizer, T_max=max(1, total - warm - 1), eta_min=cfg.lr_min)
        if warm <= 0:
            return cosine
        # ramp from lr/warm to lr over the warm-up steps
        linear = S.LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm - 1)
        return S.SequentialLR(optimizer, [linear, cosine], milestones=[warm])
    if cfg.schedule == "step":
        return S.StepLR(optimizer, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    return S.ConstantLR(optimizer, factor=1.0, total_iters=0)


# ---------------------------------------------------------------------------------------------------- helpers
def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path}")
    # our own file: RNG states hold numpy arrays and tuples, so the full unpickler is needed
    return torch.load(path, map_location="cpu", weights_only=False)


def save_model(model: torch.nn.Module, folder: Path, cfg: TrainConfig | None = None, extra: dict | None = None) -> Path:
    """Safetensors weights + ``model_config.json`` (+ ``train_config.json``), each written atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = folder / "model.safetensors.tmp"
    save_file(state, str(tmp), metadata={k: str(v) for k, v in (extra or {}).items()})
    os.replace(tmp, folder / "model.safetensors")
    model_cfg = getattr(model, "cfg", None)
    if model_cfg is not None and hasattr(model_cfg, "__dataclass_fields__"):
        _atomic_write_text(folder / "model_config.json", json.dumps(asdict(model_cfg), indent=2))
    if cfg is not None:
        _atomic_write_text(folder / "train_config.json", json.dumps(cfg.to_dict(), indent=2))
    return folder / "model.safetensors"


def load_model_weights(model: torch.nn.Module, folder: Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    model.load_state_dict(load_file(str(path)))
    return model


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def frame_augmenter(cfg: TrainConfig):
    """Feature-level SpecAugment for cached frames (time and channel masking), or None when off."""
    if not cfg.spec_augment or (cfg.frame_time_mask <= 0 and cfg.frame_channel_mask <= 0):
        return None
    import torchaudio.transforms as T

    time_mask = T.TimeMasking(cfg.frame_time_mask) if cfg.frame_time_mask > 0 else None
    chan_mask = T.FrequencyMasking(cfg.frame_channel_mask) if cfg.frame_channel_mask > 0 else None

    def augment(batch: dict) -> dict:
        if "frames" not in batch:
            return batch
        x = batch["frames"].transpose(1, 2)  # [B, D, T]: torchaudio masks (..., freq, time)
        if time_mask is not None:
            x = time_mask(x)
        if chan_mask is not None:
            x = chan_mask(x)
        return {**batch, "frames": x.transpose(1, 2)}

    return augment


# ---------------------------------------------------------------------------------------------------- data
@dataclass
class TrainingData:
    """The three encoded splits of a run (see :func:`prepare_data`)."""

    train: EncodedSplit
    val: EncodedSplit
    test: EncodedSplit
    info: dict = field(default_factory=dict)


def prepare_data(cfg: TrainConfig, progress: bool = True, cache=None) -> TrainingData:
    """Load the dataset of ``cfg`` (generating the teaching set when missing) and fill/read the feature cache.

    Frozen encoders (``model.audio_trainable``/``model.text_trainable`` false) are run once per clip/text
    through :class:`hybridlib.cache.FeatureCache`; later runs read the cache.
    """
    from hybridlib import data as D
    from hybridlib import paths
    from hybridlib.batching import concat_splits

    mcfg = cfg.model_config()
    audio_cached = not mcfg.audio_trainable
    text_cached = not mcfg.text_trainable

    def root_and_loader(dataset: str):
        if dataset == "teaching":
            root = D.ensure_teaching_set(root=Path(cfg.data_root) if cfg.data_root else None, smoke=cfg.smoke)
            return Path(root), D.load_clotho
        root = Path(cfg.data_root or paths.data_dir())
        return root, (D.load_clotho if dataset == "clotho" else D.load_audiocaps)

    def kind_for(dataset: str) -> str | None:
        if mcfg.fusion in ("none", "mei"):
            return None  # content-only models never see metadata
        return cfg.metadata_by_dataset.get(dataset, mcfg.metadata_kind)

    # built even for a trainable backbone: the waveform path needs its sample rate
    from hybridlib.models.audio import build_audio_backbone

    backbone = build_audio_backbone(mcfg.audio_backbone).eval()
    text_encoder = None
    if text_cached:
        from hybridlib.models.text import build_text_encoder

        text_encoder = build_text_encoder(mcfg.text_encoder, max_tokens=mcfg.text_max_tokens,
                                          pooling=mcfg.text_pooling).eval()
    if cache is None and (audio_cached or text_cached):
        from hybridlib.cache import FeatureCache

        cache = FeatureCache(cfg.cache_dir)

    def encoded(dataset: str, split: str) -> EncodedSplit:
        root, loader = root_and_loader(dataset)
        items = loader(root, split)
        kind = kind_for(dataset)
        if kind == "fs":
            items = D.with_fs_descriptions(items, seed=cfg.fs_seed)
        if kind is not None and cfg.metadata_degradation:
            items = D.degrade_metadata(items, kind, **cfg.metadata_degradation)
        return encode_split_for(items, split, kind, cache, backbone, text_encoder, audio_cached, text_cached, cfg,
                                progress)

    train_split = concat_splits([encoded(d, s) for d, s in cfg.train_splits()])
    _, val_name, test_name = cfg.splits()
    val, test = encoded(cfg.benchmark, val_name), encoded(cfg.benchmark, test_name)
    out = {"train": train_split, "val": val, "test": test}
    info = {"datasets": cfg.datasets, "benchmark": cfg.benchmark, "train": cfg.train_splits(),
            "splits": dict(zip(("train", "val", "test"), cfg.splits())),
            "clips": {k: v.n_clips for k, v in out.items()}, "captions": {k: v.n_captions for k, v in out.items()}}
    return TrainingData(train_split, val, test, info)


def encode_split_for(items, split, kind, cache, backbone, text_encoder, audio_cached, text_cached, cfg, progress):
    from hybridlib.batching import encode_split

    split = encode_split(items, split, metadata_kind=kind, cache=cache, backbone=backbone, text_encoder=text_encoder,
                         audio_cached=audio_cached, text_cached=text_cached,
                         sample_rate=getattr(backbone, "sample_rate", None), max_audio_seconds=cfg.max_audio_seconds,
                         progress=progress)
    return split.with_frame_stride(cfg.frame_stride)


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    """A :class:`hybridlib.models.retrieval.RetrievalModel` from ``cfg.model``."""
    from hybridlib.models.retrieval import RetrievalModel

    return RetrievalModel(cfg.model_config())


# ---------------------------------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    out_dir: Path
    best_epoch: int
    best_score: float
    history: list[dict]
    test_metrics: dict | None
    seconds: float
    finished: bool
    model: torch.nn.Module | None = None


def _select_score(metrics: dict, select_metric: str) -> float:
    return float(metrics["R-sum"] if select_metric == "R-sum" else metrics["t2a_mAP@10"])


def train(cfg: TrainConfig, out_dir: str | Path, data: TrainingData | None = None, model: torch.nn.Module | None = None,
          resume: bool = False, progress: bool = True, evaluate_test: bool = True) -> TrainResult:
    """Train one seed; see :func:`_train`. ``cfg.num_threads`` applies for the call and is restored after."""
    previous = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _train(cfg, out_dir, data, model, resume, progress, evaluate_test)
    finally:
        torch.set_num_threads(previous)


def _train(cfg: TrainConfig, out_dir: str | Path, data: TrainingData | None, model: torch.nn.Module | None,
           resume: bool, progress: bool, evaluate_test: bool) -> TrainResult:
    """Train one seed (``cfg.seed``) into ``out_dir``; evaluate the best model on the evaluation split.

    ``data``/``model`` may be given (notebooks reuse encoded splits; tests pass tiny models); otherwise they
    are built from ``cfg``. With ``resume`` the run continues from ``out_dir/checkpoint.pt``; training is
    deterministic given the seed, so the result equals an uninterrupted run (exactly, on CPU).
    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is set up and embeddings are gathered across
    processes for the loss (see :mod:`hybridlib.distributed`); only rank 0 writes files.
    """
    from hybridlib import distributed as dist_utils
    from hybridlib.evaluate import evaluate_split
    from hybridlib.losses import get_loss

    out_dir = Path(out_dir)
    start_time = time.perf_counter()
    ctx = dist_utils.init_from_env(cfg.device)
    device = ctx.device if ctx.world_size > 1 else resolve_device(cfg.device)
    is_main = ctx.rank == 0
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")

    seed_everything(cfg.seed)
    if data is None:
        data = prepare_data(cfg, progress=progress and is_main)
    if model is None:
        seed_everything(cfg.seed)  # model init independent of what data preparation consumed
        model = build_model(cfg)
    model.to(device)
    loss_fn = get_loss(cfg.loss, **cfg.loss_kwargs)
    steps_per_epoch = data.train.n_training_batches(cfg.batch_size, world_size=ctx.world_size,
                                                    captions_per_clip=cfg.captions_per_clip)
    if steps_per_epoch == 0 or data.train.n_captions < 2 * ctx.world_size:
        raise ValueError(f"training split {data.train.name!r} has {data.train.n_captions} captions: too few for "
                         "in-batch negatives (need at least 2 per process)")
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    use_amp = bool(cfg.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step_fn = dist_utils.ContrastiveStep(model, gather=ctx.world_size > 1)
    runner = dist_utils.wrap_ddp(step_fn, ctx)
    augment = frame_augmenter(cfg)

    history: list[dict] = []
    start_epoch, best_score, best_epoch = 1, -math.inf, 0
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        history = state["history"]
        start_epoch, best_score, best_epoch = state["epoch"] + 1, state["best_score"], state["best_epoch"]
    elif resume and is_main:
        print(f"[train] no checkpoint in {out_dir}; starting from scratch")

    writer = None
    if cfg.tensorboard and is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"), purge_step=start_epoch)

    from tqdm.auto import tqdm

    last_epoch = cfg.epochs if cfg.stop_after_epoch is None else min(cfg.epochs, cfg.stop_after_epoch)
    for epoch in range(start_epoch, last_epoch + 1):
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        batches = data.train.training_batches(cfg.batch_size, cfg.seed, epoch, rank=ctx.rank,
                                              world_size=ctx.world_size, captions_per_clip=cfg.captions_per_clip)
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                   disable=not (progress and is_main))
        for batch in bar:
            if augment is not None:
                batch = augment(batch)
            batch = to_device(batch, device)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                sim, clip_index = runner(batch)
                loss = loss_fn(sim.float(), same_item=clip_index[:, None] == clip_index[None, :])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += float(loss.detach())
            count += 1
            bar.set_postfix(loss=f"{total / count:.4f}")
        train_seconds = time.perf_counter() - t0
        val = evaluate_split(model, data.val, batch_size=cfg.eval_batch_size, device=device)
        score = _select_score(val, cfg.select_metric)
        improved = score > best_score
        if improved:
            best_score, best_epoch = score, epoch
            if is_main:
                save_model(model, out_dir / "best", cfg, extra={"epoch": epoch, cfg.select_metric: score})
        row = {"epoch": epoch, "train_loss": total / max(count, 1), "lr": optimizer.param_groups[0]["lr"],
               "train_seconds": round(train_seconds, 3), "seconds": round(time.perf_counter() - t0, 3),
               **{f"val_{k}": v for k, v in val.items()}, "best": improved}
        history.append(row)
        if is_main:
            _write_log(out_dir / "log.csv", history)
            if writer is not None:
                writer.add_scalar("train/loss", row["train_loss"], epoch)
                writer.add_scalar("train/lr", row["lr"], epoch)
                for k, v in val.items():
                    writer.add_scalar(f"val/{k}", v, epoch)
                writer.flush()
            save_checkpoint(ckpt_path, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if use_amp else None,
                "rng": rng_state(), "history": history, "best_score": best_score, "best_epoch": best_epoch,
                "config": cfg.to_dict(),
            })
        if progress and is_main:
            print(f"[train] {cfg.name} seed {cfg.seed} epoch {epoch}/{cfg.epochs} loss {row['train_loss']:.4f} "
                  f"val {cfg.select_metric} {score:.2f}{' *' if improved else ''}", flush=True)
    if writer is not None:
        writer.close()
    dist_utils.barrier(ctx)

    finished = (history[-1]["epoch"] if history else 0) >= cfg.epochs
    test_metrics = None
    if finished and evaluate_test:
        load_model_weights(model, out_dir / "best")  # after the barrier: rank 0 has written it
        model.to(device)
        test_metrics = evaluate_split(model, data.test, batch_size=cfg.eval_batch_size, device=device)
        if is_main:
            write_seed_metrics(out_dir, cfg, test_metrics, best_epoch, best_score, data.test.name,
                               time.perf_counter() - start_time)
    return TrainResult(out_dir, best_epoch, best_score, history, test_metrics, time.perf_counter() - start_time,
                       finished, model)


def _write_log(path: Path, history: list[dict]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


def read_log(run_dir: str | Path):
    """``log.csv`` of a run as a DataFrame."""
    import pandas as pd

    return pd.read_csv(Path(run_dir) / "log.csv")


def write_seed_metrics(out_dir: Path, cfg: TrainConfig, metrics: dict, best_epoch: int, best_score: float,
                       split: str, seconds: float) -> Path:
    payload = {"name": cfg.name, "paper_row": cfg.paper_row, "seed": cfg.seed, "split": split,
               "metrics": metrics, "best_epoch": best_epoch, "select_metric": cfg.select_metric,
               "best_val_score": best_score, "seconds": round(seconds, 2)}
    path = Path(out_dir) / "metrics.json"
    _atomic_write_text(path, json.dumps(payload, indent=2))
    return path


def train_seeds(cfg: TrainConfig, out_dir: str | Path, seeds: list[int] | None = None, data: TrainingData | None = None,
                resume: bool = False, progress: bool = True) -> dict:
    """Train ``seeds`` (default ``cfg.seeds``) into ``out_dir/seed-<n>`` and aggregate into ``out_dir/metrics.json``.

    Seeds already present in ``out_dir`` (e.g. from an earlier invocation with another ``--seed``) are
    aggregated too. Returns the aggregated metrics dict.
    """
    from hybridlib.evaluate import write_run_metrics

    out_dir = Path(out_dir)
    seeds = list(cfg.seeds if seeds is None else seeds)
    if data is None:
        data = prepare_data(cfg, progress=progress)
    finished_all = True
    for seed in seeds:
        result = train(cfg.replace(seed=seed), out_dir / f"seed-{seed}", data=data, resume=resume, progress=progress)
        finished_all &= result.finished
    if not finished_all:
        return {}
    return write_run_metrics(out_dir)


def metadata_sweep(cfg: TrainConfig, knob: str, values, out_dir: str | Path, seeds: list[int] | None = None,
                   policies=None, progress: bool = False) -> list[dict]:
    """Train ``cfg`` once per value of a :func:`hybridlib.data.degrade_metadata` knob and collect test metrics.

    The knob (``remove_metadata``, ``drop_tags``, ``add_distractors`` or ``swap_synonyms``) acts on every
    split, as if the whole collection had noisier metadata (the hybrid paper's future work). ``policies``:
    ``missing_metadata`` settings to compare (default: the config's). Each point trains ``seeds`` into
    ``out_dir/<policy>/<knob>-<value>/``. Returns one row per (policy, value) with the mean, std and per-seed
    text-to-audio mAP@10 and R@1.
    """
    knobs = ("remove_metadata", "drop_tags", "add_distractors", "swap_synonyms")
    if knob not in knobs:
        raise ValueError(f"knob must be one of {knobs}, got {knob!r}")
    policies = list(policies or [cfg.model.get("missing_metadata", "learned")])
    rows = []
    for policy in policies:
        for value in values:
            point = cfg.replace(model={**cfg.model, "missing_metadata": policy},
                                metadata_degradation={**cfg.metadata_degradation, knob: float(value)})
            summary = train_seeds(point, Path(out_dir) / policy / f"{knob}-{value:g}", seeds=seeds, progress=progress)
            agg = summary["aggregate"]
            rows.append({"knob": knob, "value": float(value), "missing_metadata": policy,
                         **{f"{k}_{stat}": agg[k][stat] for k in ("t2a_mAP@10", "t2a_R@1") for stat in ("mean", "std")},
                         "t2a_mAP@10_per_seed": agg["t2a_mAP@10"]["values"]})
    return rows


# ---------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (see experiments/)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/train/<config name>)")
    parser.add_argument("--seed", type=int, action="append", default=None,
                        help="seed to train (repeatable); default: the config's seeds")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set epochs=3 --set model.fusion=mid")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoints")
    parser.add_argument("--smoke", action="store_true", help="use the tiny smoke teaching set")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from hybridlib import paths
    from hybridlib.evaluate import format_aggregate

    extra = {"smoke": True} if args.smoke else {}
    try:
        cfg = load_config(args.config, overrides=args.overrides, **extra)
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    out = Path(args.out) if args.out else paths.runs_dir() / "train" / cfg.name
    summary = train_seeds(cfg, out, seeds=args.seed, resume=args.resume, progress=not args.no_progress)
    if not summary:
        print(f"[train] stopped early (stop_after_epoch={cfg.stop_after_epoch}); continue with --resume")
        return 0
    agg = summary["aggregate"]
    shown = format_aggregate(agg, ("t2a_mAP@10", "t2a_R@1", "t2a_R@10", "a2t_R@1"))
    print(f"[train] {cfg.name}: {shown} over seeds {summary['seeds_run']} -> {out / 'metrics.json'}")
    return 0


def describe(cfg: TrainConfig) -> dict[str, Any]:
    """A short summary of a config for tables in notebooks."""
    m = cfg.model
    fusion = m.get("fusion", "none")
    return {"name": cfg.name, "fusion": fusion,
            "metadata": "-" if fusion in ("none", "mei") else m.get("metadata_kind", "os"),
            "loss": cfg.loss, "batch_size": cfg.batch_size, "epochs": cfg.epochs, "lr": cfg.lr,
            "schedule": cfg.schedule}
