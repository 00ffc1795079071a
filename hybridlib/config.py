"""Training configuration: one :class:`TrainConfig` dataclass, YAML files with ``extends``, ``--set`` overrides.

Paper settings mapped to :class:`TrainConfig` fields (defaults are the hybrid paper's):

* hybrid paper IV-C: Adam with PyTorch defaults (``lr``), batch size 32, 25 epochs, one warm-up epoch then
  cosine decay from 2e-5 to 1e-7 (``schedule="warmup-cosine"``, ``warmup_epochs``, ``lr``, ``lr_min``),
  NT-Xent loss, SpecAugment (``spec_augment``), results averaged over three seeds, mAP@10 as the main metric.
* Mei et al. 3.2: Adam, 50 epochs, lr 1e-4 (or 5e-5) divided by 10 every 20 epochs (``schedule="step"``,
  ``step_size=20``, ``gamma=0.1``), batch 32 (AudioCaps) / 24 (Clotho), best model by "the sum of recalls"
  on validation. Their released trainer makes that precise: the sum of the three *text-to-audio* recalls
  R@1+R@5+R@10 (``select_metric="t2a_R-sum"``), and a tie keeps the later epoch (``r_sum >= max(...)``,
  ``select_on_tie="later"``); it also clips the gradient norm at 2 (``grad_clip: 2``).

Choices the papers leave open (each a field): the warm-up is linear over the optimiser steps of the first
epoch and the cosine decays per step (the common implementation); gradients are clipped by global norm only
when ``grad_clip`` is set; an epoch visits every caption once (caption-level batches, see
:mod:`hybridlib.features.splits`); the hybrid paper does not say how its best epoch is chosen: validation
text-to-audio mAP@10 (its main metric, ``select_metric="mAP@10"``), ties keeping the earlier epoch, is an
assumption. With cached frozen frames the backbone never sees a spectrogram, so
``spec_augment`` then masks random time steps and channels of the cached frame sequence
(``frame_time_mask``/``frame_channel_mask``) - a feature-level analogue documented as such; with a trainable
backbone (or ``model.frozen_mode: train``) the backbone's own SpecAugment runs in train mode, where its authors
apply it, and ``spec_augment: false`` switches it off (:func:`hybridlib.models.audio.frontends.set_spec_augment`).

The model section (``model:``) holds :class:`hybridlib.models.config.ModelConfig` fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hybridlib.data.audio_io import AUDIO_CHECKS, BAD_AUDIO_POLICIES
from hybridlib.data.splits import DATASET_SPLITS
from hybridlib.models.config import METADATA_KINDS
from hybridlib.util.errors import UserError
from hybridlib.util.filenames import nul_problem
from hybridlib.util.values import SEED_RULE, describe_value, shorten, value_problem
from hybridlib.util.yaml_values import dump_yaml, read_yaml

SCHEDULES = ("warmup-cosine", "step", "constant")
TRAIN_CAPTIONS = ("dataset", "from-keywords")
SELECT_METRICS = ("mAP@10", "R-sum", "t2a_R-sum")
SELECT_TIES = ("earlier", "later")
AMP_DTYPES = ("float16", "bfloat16")


# field -> (kind, rule) for hybridlib.util.values.value_problem; checked before anything else
FIELD_RULES: dict[str, tuple[str, dict]] = {
    "name": ("str", {}), "description": ("str", {}), "notes": ("str", {}), "dataset": ("str", {}),
    "paper_row": ("str", {"allow_none": True}), "eval_dataset": ("str", {"allow_none": True}),
    "metadata_by_dataset": ("dict", {}), "data_root": ("str", {"allow_none": True}), "smoke": ("bool", {}),
    "train_split": ("str", {"allow_none": True}), "val_split": ("str", {"allow_none": True}),
    "eval_split": ("str", {"allow_none": True}), "fs_seed": ("int", SEED_RULE),
    "cache_dir": ("str", {"allow_none": True}),
    "max_audio_seconds": ("number", {"minimum": 0, "exclusive_min": True, "allow_none": True}),
    "audio_check": ("str", {"choices": AUDIO_CHECKS}), "bad_audio": ("str", {"choices": BAD_AUDIO_POLICIES}),
    "metadata_degradation": ("dict", {}), "model": ("dict", {}), "loss": ("str", {}), "loss_kwargs": ("dict", {}),
    "epochs": ("int", {"minimum": 1}), "batch_size": ("int", {"minimum": 1}),
    "lr": ("number", {"minimum": 0, "exclusive_min": True}), "lr_min": ("number", {"minimum": 0}),
    "weight_decay": ("number", {"minimum": 0}), "schedule": ("str", {"choices": SCHEDULES}),
    "warmup_epochs": ("number", {"minimum": 0}), "step_size": ("int", {"minimum": 1}),
    "gamma": ("number", {"minimum": 0, "exclusive_min": True}),
    "grad_clip": ("number", {"minimum": 0, "exclusive_min": True, "allow_none": True}),
    "captions_per_clip": ("int", {"minimum": 1, "allow_none": True}), "frame_stride": ("int", {"minimum": 1}),
    "spec_augment": ("bool", {}), "frame_time_mask": ("int", {"minimum": 0}),
    "frame_channel_mask": ("int", {"minimum": 0}), "select_metric": ("str", {"choices": SELECT_METRICS}),
    "select_on_tie": ("str", {"choices": SELECT_TIES}), "audioset_labels": ("str", {"allow_none": True}),
    "min_metadata_coverage": ("number", {"minimum": 0, "maximum": 1}),
    "eval_batch_size": ("int", {"minimum": 1}), "seed": ("int", SEED_RULE), "seeds": ("list", {}),
    "device": ("str", {}), "amp": ("bool", {}), "amp_dtype": ("str", {"choices": AMP_DTYPES}), "compile": ("bool", {}),
    "num_threads": ("int", {"minimum": 1, "allow_none": True}),
    "tensorboard": ("bool", {}), "stop_after_epoch": ("int", {"minimum": 1, "allow_none": True}),
    "num_workers": ("int", {"minimum": 0}), "waveform_cache": ("bool", {}),
    "train_captions": ("str", {"choices": TRAIN_CAPTIONS}), "train_captions_seed": ("int", SEED_RULE),
    "text_lr": ("number", {"minimum": 0, "exclusive_min": True, "allow_none": True}),
}


class ConfigError(UserError):
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
    dataset: str = "teaching"             # teaching | clotho | audiocaps | wavcaps-fs | clotho+audiocaps (joint)
    eval_dataset: str | None = None       # benchmark for validation/evaluation (None: the first dataset;
                                          # wavcaps-fs has no validation/evaluation split: the paper uses clotho)
    metadata_by_dataset: dict = field(default_factory=dict)  # e.g. {clotho: os, audiocaps: cs} (else model's)
    data_root: str | None = None          # None: teaching -> hybridlib.paths.teaching_dir(smoke), else data_dir()
    smoke: bool = False                   # the tiny smoke teaching set
    train_split: str | None = None        # None: the dataset's usual names (DATASET_SPLITS)
    val_split: str | None = None
    eval_split: str | None = None
    fs_seed: int = 0                      # which caption becomes the FS description (hybridlib.data.with_fs_descriptions)
    # captions of the training split: the dataset's own, or generated from each clip's keywords (the hybrid
    # paper's Table II, WavCaps: hybridlib.data.generated_captions); validation and evaluation keep their own
    train_captions: str = "dataset"
    train_captions_seed: int = 0
    audioset_labels: str | None = None    # AudioSet class_labels_indices.csv + *segments*.csv folder for AudioCaps'
                                          # CS tags (relative: below the data root; None: <data root>/audioset if there)
    min_metadata_coverage: float = 0.1    # a metadata row stops when a split has fewer clips with metadata
    cache_dir: str | None = None          # None: hybridlib.paths.cache_dir()
    max_audio_seconds: float | None = None  # crop of training waveforms when the backbone is trained
    # audio screening before anything is encoded (hybridlib.data.audio_io.screen_audio): "full" decodes every
    # file once (silent, NaN, undecodable files found; the outcome is remembered), "header" only reads headers;
    # bad clips are excluded and listed in the run's data_report.json, or stop the run with bad_audio: error
    audio_check: str = "full"
    bad_audio: str = "exclude"
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
    text_lr: float | None = None          # peak rate of trainable text-encoder layers (None: lr); same schedule
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
    select_metric: str = "mAP@10"         # mAP@10 (t2a) | R-sum (six recalls) | t2a_R-sum (Mei et al.'s trainer)
    select_on_tie: str = "earlier"        # which epoch a tied validation score keeps (Mei et al.: later)
    eval_batch_size: int = 256
    seed: int = 0
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    # runtime
    device: str = "auto"                  # auto | cpu | cuda | cuda:N
    amp: bool = True                      # mixed precision on CUDA (on a CPU only with amp_dtype bfloat16)
    # the autocast dtype of ``amp``: float16 (with a gradient scaler; CUDA only) or bfloat16 (no scaler; CUDA from
    # Ampere on, and any CPU: hybridlib.training.performance.precision)
    amp_dtype: str = "float16"
    # torch.compile the training step (inductor: the first steps wait for the compiler, later ones may run faster;
    # validation and evaluation run the model uncompiled, checkpoints hold the plain model's weights)
    compile: bool = False
    num_threads: int | None = None        # torch CPU threads during train() (None: leave torch's setting)
    # trainable backbone: DataLoader worker processes that read training waveforms (0: in the training
    # process; a GPU run wants several); batches are identical for every value (hybridlib.features.loader)
    num_workers: int = 0
    waveform_cache: bool = True           # trainable backbone: decode and resample each clip once, then read arrays
    tensorboard: bool = True
    stop_after_epoch: int | None = None   # end this invocation after that epoch (resume continues)
    notes: str = ""

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: dict, source: str = "<dict>") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {describe_value(unknown)}; known: {sorted(known)}")
        cfg = cls(**values)
        cfg.validate(source)
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def validate(self, source: str = "<config>") -> None:
        def bad(name, why):
            raise ConfigError(f"{source}: field {name!r} {why} (got {describe_value(getattr(self, name))})")

        # types and ranges first (booleans are not integers, NaN is named in the field holding it)
        nul = nul_problem(self.to_dict())  # a YAML "\0" escape: refused before any path is built from it
        if nul:
            raise ConfigError(f"{source}: field {nul}")
        for name, (kind, rule) in FIELD_RULES.items():
            problem = value_problem(getattr(self, name), kind, **rule)
            if problem:
                bad(name, problem)
        if not self.dataset or any(d not in DATASET_SPLITS for d in self.dataset.split("+")):
            bad("dataset", f"must be one of {sorted(DATASET_SPLITS)} or several joined with '+'")
        if self.eval_dataset is not None and self.eval_dataset not in DATASET_SPLITS:
            bad("eval_dataset", f"must be one of {sorted(DATASET_SPLITS)}")
        if None in DATASET_SPLITS.get(self.benchmark, ())[1:]:
            bad("eval_dataset", f"must name a benchmark with validation and evaluation splits ({self.benchmark} "
                "has only a training split; the hybrid paper evaluates WavCaps-trained models on clotho)")
        for key, kind in self.metadata_by_dataset.items():
            if key not in self.datasets or kind not in METADATA_KINDS:
                what = (f"key {describe_value(key)} is not a training dataset of this config ({self.dataset})"
                        if key not in self.datasets else
                        f"{describe_value(key)}: {describe_value(kind)} is not a metadata kind")
                raise ConfigError(f"{source}: field 'metadata_by_dataset' must map training datasets to a metadata "
                                  f"kind ({', '.join(METADATA_KINDS)}): {what}")
        if self.batch_size < 2:
            bad("batch_size", "must be at least 2 (in-batch negatives)")
        if self.lr_min > self.lr:
            bad("lr_min", f"must be a number between 0 and lr ({describe_value(self.lr)})")
        for i, seed in enumerate(self.seeds):
            problem = value_problem(seed, "int", **SEED_RULE)
            if problem:
                raise ConfigError(f"{source}: field 'seeds' item {i} {problem} (got {describe_value(seed)})")
        if not self.seeds:
            bad("seeds", "must be a non-empty list of non-negative integers")
        for key, value in self.loss_kwargs.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{source}: field 'loss_kwargs.{key}' is {describe_value(value)}; "
                                  "it must be a finite number")
        if self.text_lr is not None and self.text_lr < self.lr_min:
            bad("text_lr", f"must be a positive number at least lr_min ({describe_value(self.lr_min)}) or null")
        knobs = {"drop_tags", "add_distractors", "swap_synonyms", "remove_metadata", "seed"}
        if not set(self.metadata_degradation) <= knobs:
            bad("metadata_degradation", f"must be a mapping with keys from {sorted(knobs)}")
        for knob, value in self.metadata_degradation.items():
            problem = (value_problem(value, "int", **SEED_RULE) if knob == "seed"
                       else value_problem(value, "number", minimum=0, maximum=1) and "must be a fraction in [0, 1]")
            if problem:
                raise ConfigError(f"{source}: field 'metadata_degradation': {knob} {problem} "
                                  f"(got {describe_value(value)})")
        try:
            self.model_config()
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

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
        """(dataset, split) pairs joined for training (``train_split`` overrides a single dataset's)."""
        if len(self.datasets) == 1:
            return [(self.datasets[0], self.train_split or DATASET_SPLITS[self.datasets[0]][0])]
        return [(d, DATASET_SPLITS[d][0]) for d in self.datasets]

    def model_config(self):
        """The :class:`ModelConfig` of ``self.model`` (clear error naming unknown fields)."""
        from hybridlib.models.config import ModelConfig

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
    """A YAML config as a dict, following ``extends: other.yaml`` (relative to the file) recursively.

    Read by :func:`hybridlib.util.yaml_values.read_yaml`: ``1e-4`` is a number, only plain values are built."""
    if nul_problem(path):
        raise ConfigError(nul_problem(path, "config file name"))
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    try:
        values = read_yaml(text, str(path)) or {}
    except UserError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config must be a mapping of fields")
    parent = values.pop("extends", None)
    if parent:
        values = _deep_merge(read_config_dict(path.parent / parent, (*_seen, path.resolve())), values)
    return values


def parse_overrides(pairs: list[str] | None) -> dict:
    """``["epochs=3", "model.fusion=mid"]`` -> nested dict; values read as YAML by
    :func:`hybridlib.util.yaml_values.read_yaml` (``lr=1e-4`` is a number; a tag or broken YAML is refused)."""
    out: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {describe_value(pair)}")
        key, raw = pair.split("=", 1)
        if not key.strip() or not all(part.strip() for part in key.split(".")):
            raise ConfigError(f"--set expects key=value with a field name before '=', got {describe_value(pair)}")
        try:
            value = read_yaml(raw, f"--set {shorten(pair)}") if raw.strip() else None
        except UserError as exc:
            raise ConfigError(str(exc)) from None
        node = out
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {shorten(pair)}: {'.'.join(parts[:i + 1])} was set to a value by an "
                                  "earlier --set, it has no fields")
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


def config_to_yaml(cfg: TrainConfig) -> str:
    """The config as YAML that :func:`read_config_dict` reads back equal."""
    return dump_yaml(cfg.to_dict())


def teaching_config(name: str, overrides: dict | list[str] | None = None, **values) -> TrainConfig:
    """``experiments/teaching/<name>.yaml`` as a :class:`TrainConfig` (notebooks pass their parameters
    as keyword values; ``None`` values are ignored so a parameter left at None keeps the config's value)."""
    path = experiments_dir() / "teaching" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("[!_]*.yaml"))
        raise ConfigError(f"no teaching config {name!r} ({path}); available: {known}")
    return load_config(path, overrides, **{k: v for k, v in values.items() if v is not None})


def describe(cfg: TrainConfig) -> dict[str, Any]:
    """A short summary of a config for tables in notebooks."""
    m = cfg.model
    fusion = m.get("fusion", "none")
    return {"name": cfg.name, "fusion": fusion,
            "metadata": "-" if fusion in ("none", "mei") else m.get("metadata_kind", "os"),
            "loss": cfg.loss, "batch_size": cfg.batch_size, "epochs": cfg.epochs, "lr": cfg.lr,
            "schedule": cfg.schedule}
