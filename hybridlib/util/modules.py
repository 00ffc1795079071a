"""Helpers for ``torch.nn.Module`` objects that know nothing of this project's models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def module_mode(module: torch.nn.Module, training: bool = False) -> Iterator[torch.nn.Module]:
    """Run the block with ``module`` in train (``training=True``) or eval mode, then restore the mode it had."""
    was_training = module.training
    module.train(training)
    try:
        yield module
    finally:
        module.train(was_training)
