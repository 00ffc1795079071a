"""Shared fixtures.

Real reference data lives in ``../shared/data`` (never copied into the repo). In CI (``CI=true``) a test
whose shared data is missing fails; elsewhere it is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hybridlib.paths import shared_data_dir

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_shared(*relative: str) -> Path:
    """Return ``shared/data/<relative>``; fail in CI, skip elsewhere, when it is missing."""
    path = shared_data_dir().joinpath(*relative)
    if not path.exists():
        message = f"shared reference data missing: {path}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def shared_data():
    """A function ``shared_data("clotho", "v2.1")`` returning the path (fail in CI / skip if absent)."""
    return require_shared


@pytest.fixture(autouse=True)
def _deterministic_torch():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.manual_seed(0)
    yield
