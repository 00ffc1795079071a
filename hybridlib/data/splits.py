"""Dataset names, their split names, and the aliases accepted for them: the one table every module reads.

Each dataset has three roles - ``train`` (fit the model), ``val`` (choose the best epoch), ``test``
(report) - and names its splits its own way (Clotho: development/validation/evaluation; AudioCaps:
train/val/test). The teaching set uses Clotho's layout and names. WavCaps' FreeSound subset
(``wavcaps-fs``) is one training collection (``train``; no validation or evaluation split, ``None``); the
hybrid paper validates and evaluates it on Clotho (``eval_dataset: clotho``).
"""

from __future__ import annotations

from hybridlib.util.errors import UserError

ROLES = ("train", "val", "test")
DATASET_SPLITS: dict[str, tuple[str | None, ...]] = {
    "teaching": ("development", "validation", "evaluation"),
    "clotho": ("development", "validation", "evaluation"),
    "audiocaps": ("train", "val", "test"),
    "wavcaps-fs": ("train", None, None),
}
SPLIT_ALIASES: dict[str, dict[str, str]] = {
    "teaching": {"train": "development", "dev": "development", "val": "validation", "eval": "evaluation",
                 "test": "evaluation"},
    "clotho": {"train": "development", "dev": "development", "val": "validation", "eval": "evaluation",
               "test": "evaluation"},
    "audiocaps": {"development": "train", "validation": "val", "evaluation": "test", "eval": "test"},
    "wavcaps-fs": {"development": "train"},
}


def check_dataset(dataset: str) -> str:
    if dataset not in DATASET_SPLITS:
        raise UserError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASET_SPLITS)}")
    return dataset


def normalize_split(dataset: str, split: str) -> str:
    """The dataset's own name of ``split`` (aliases resolved), or a :class:`UserError` naming the choices."""
    names = tuple(n for n in DATASET_SPLITS[check_dataset(dataset)] if n is not None)
    split = SPLIT_ALIASES.get(dataset, {}).get(split, split)
    if split not in names:
        raise UserError(f"unknown {dataset} split {split!r}; expected one of {names} "
                        f"(or {sorted(SPLIT_ALIASES.get(dataset, {}))})")
    return split


def split_for_role(dataset: str, role: str) -> str:
    """The split of ``dataset`` that plays ``role`` (``train``, ``val`` or ``test``)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    split = DATASET_SPLITS[check_dataset(dataset)][ROLES.index(role)]
    if split is None:
        raise UserError(f"{dataset} has no {role} split (it is a training collection only)")
    return split


def dataset_splits(dataset: str) -> tuple[str, ...]:
    """The split names ``dataset`` has (roles without a split left out)."""
    return tuple(s for s in DATASET_SPLITS[check_dataset(dataset)] if s is not None)
