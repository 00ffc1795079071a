"""Checks before a training run starts: everything a config needs that can be known without training.

``python -m hybridlib train`` calls :func:`preflight` before it builds a model, downloads weights or starts
worker processes, so a wrong config, a missing dataset or a GPU config on a machine without a GPU ends in
one line naming the problem and what to do (a :class:`~hybridlib.util.errors.UserError`, exit code 2),
instead of a download, a traceback per seed, or a run that would take days on the CPU.
"""

from __future__ import annotations

from pathlib import Path

from hybridlib.config import TrainConfig
from hybridlib.util.errors import UserError


class PreflightError(UserError):
    """A config cannot run here; the message says why and what to do."""


def is_gpu_config(cfg: TrainConfig) -> bool:
    """A config that fine-tunes an encoder (the papers' settings): practical only on a GPU."""
    model = cfg.model_config()
    return bool(model.audio_trainable or model.text_trainable)


def check_device(cfg: TrainConfig, source: str) -> None:
    """A CUDA device that is not there, or a GPU config left on ``device: auto`` on a CPU-only machine."""
    import torch

    from hybridlib.util.devices import resolve_device

    try:
        resolve_device(cfg.device)
    except UserError as exc:
        raise PreflightError(f"{source}: {exc}") from None
    if cfg.device == "auto" and not torch.cuda.is_available() and is_gpu_config(cfg):
        raise PreflightError(
            f"{source} fine-tunes the encoders (a GPU config) but this machine has no CUDA device: run it on a "
            "GPU, use a CPU config from experiments/teaching/, or add --set device=cpu to train on the CPU "
            "anyway (days per run)")


def check_datasets(cfg: TrainConfig, source: str) -> None:
    """Every split the config reads exists (captions and metadata tables; no audio is decoded).

    The teaching set at its default place is generated when missing, so it is not checked here.
    """
    from hybridlib import paths
    from hybridlib.data.loaders import load_split

    _, val, test = cfg.splits()
    wanted = list(cfg.train_splits()) + [(cfg.benchmark, val), (cfg.benchmark, test)]
    for dataset, split in dict.fromkeys(wanted):
        if dataset == "teaching" and not cfg.data_root:
            continue
        root = Path(cfg.data_root or paths.data_dir())
        if dataset == "teaching":
            from hybridlib.features.prepare import named_teaching_set

            try:  # a named teaching set is used as it is; another dataset there is named with its setting
                named_teaching_set(cfg)
            except UserError as exc:
                raise PreflightError(f"{source}: {exc}") from None
        if not root.exists():
            hint = ("leave data_root unset to use (and generate) the teaching set" if dataset == "teaching" else
                    "set data_root or HYBRIDLIB_DATA, or download the dataset first (python -m hybridlib download clotho)")
            raise PreflightError(f"{source}: data folder {root} does not exist (dataset {dataset}); {hint}")
        try:
            load_split(dataset, root, split)
        except UserError as exc:
            raise PreflightError(f"{source}: {exc}") from None


def preflight(cfg: TrainConfig, source: str | None = None) -> None:
    """Raise :class:`PreflightError` when ``cfg`` cannot train here (model section, device, datasets)."""
    source = source or f"config {cfg.name!r}"
    try:
        cfg.model_config()
    except UserError as exc:
        raise PreflightError(str(exc)) from None
    check_device(cfg, source)
    check_datasets(cfg, source)
