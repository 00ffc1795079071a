"""Seeds, RNG state and deterministic execution.

Same machine, same config, same seed: identical numbers. :func:`seed_everything` seeds Python, NumPy and
torch; :func:`deterministic` switches torch to deterministic kernels where they exist (on CUDA also
cuDNN's, and cuBLAS's workspace setting); :func:`rng_state` / :func:`set_rng_state` capture and restore all
generators using only plain types and tensors, so a checkpoint holding them loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def deterministic(enabled: bool = True) -> None:
    """Prefer deterministic algorithms (warn, not fail, for an op that has none)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def rng_state() -> dict:
    """Every generator's state as plain Python values and tensors."""
    version, keys, gauss = random.getstate()
    kind, array, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(keys), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(array, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    kind, array, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, array.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
