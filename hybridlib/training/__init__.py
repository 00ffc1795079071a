"""Training one seed: the loop (:mod:`~hybridlib.training.loop`), its data (:mod:`~hybridlib.training.data`, the
one entry point to prepared data), optimiser and schedules (:mod:`~hybridlib.training.optim`), feature augmentation
(:mod:`~hybridlib.training.augment`) and DDP helpers (:mod:`~hybridlib.training.distributed`). Several seeds and
sweeps: :mod:`hybridlib.experiments`."""

from hybridlib.training.loop import TrainingDiverged, TrainResult, build_model, train

__all__ = ["TrainResult", "TrainingDiverged", "build_model", "train"]
