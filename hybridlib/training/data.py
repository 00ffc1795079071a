"""The one entry point to a training config's prepared data: :func:`training_data`.

The command line (``hybridlib train``), the experiments (seeds, sweeps, worker processes) and the training loop
all get their data here, so three things happen in one place:

* **the fingerprint check**: data handed in must have been prepared for the config's data settings
  (:func:`hybridlib.features.prepare.data_fingerprint`), else :class:`DataMismatch` names the settings that differ;
* **reuse**: with ``keep=True`` the prepared data stay in this process for the next training of a config with
  the same fingerprint (the seeds of a config, the jobs a worker process runs; one dataset at a time);
* **several processes** (``torchrun``): rank 0 prepares the data - generating the teaching set, screening
  the audio, filling the feature and waveform caches, with its progress shown - while the other ranks wait;
  then they prepare from the filled caches, silently (:func:`hybridlib.training.distributed.rank0_first`).
"""

from __future__ import annotations

from hybridlib.config import TrainConfig
from hybridlib.features.prepare import TrainingData, data_fingerprint, data_settings, prepare_data
from hybridlib.util.errors import UserError

# (fingerprint, bad-audio policy) -> data (see ``keep``), one at a time: bounded memory. The policy is part of the
# key because prepare_data applies it (``bad_audio: error`` must stop even when the same data were kept before)
_PREPARED: dict[tuple[str, str], TrainingData] = {}


class DataMismatch(UserError):
    """The data given for a training were prepared for another config."""


def check_data(cfg: TrainConfig, data: TrainingData, fingerprint: str | None = None) -> None:
    """Raise :class:`DataMismatch` naming the settings in which ``data`` were prepared for another config."""
    if data.fingerprint == (fingerprint or data_fingerprint(cfg)):
        return
    have, want = data.info.get("settings", {}), data_settings(cfg)
    changed = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k)) or ["(unknown)"]
    raise DataMismatch(f"config {cfg.name!r}: the data given were prepared for another config (differs in "
                       f"{', '.join(changed)}); call prepare_data(cfg) for this config")


def training_data(cfg: TrainConfig, data: TrainingData | None = None, *, progress: bool = True,
                  keep: bool = False) -> TrainingData:
    """The prepared data for training ``cfg`` (see the module docstring).

    ``data``: data prepared by the caller, returned when they fit ``cfg`` (else :class:`DataMismatch`); with
    ``keep`` they are kept for later trainings in this process. Without ``data``: the kept data when they fit,
    else :func:`~hybridlib.features.prepare.prepare_data` (rank 0 first under ``torchrun``; ``progress`` on rank
    0 only), kept when ``keep``.
    """
    fingerprint = data_fingerprint(cfg)
    key = (fingerprint, cfg.bad_audio)
    if data is None:
        data = _PREPARED.get(key)
    if data is None:
        from hybridlib.training import distributed as D

        ctx = D.init_from_env(cfg.device)
        data = D.rank0_first(ctx, lambda first: prepare_data(cfg, progress=progress and first))
    else:
        check_data(cfg, data, fingerprint)
    if keep and _PREPARED.get(key) is not data:
        _PREPARED.clear()
        _PREPARED[key] = data
    return data


def forget_data() -> None:
    """Drop the data kept by :func:`training_data` (e.g. before worker processes prepare their own)."""
    _PREPARED.clear()
