"""Where the project keeps data, caches and runs.

Every location can be moved with an environment variable, so notebooks, the CLI and tests agree:

* ``HYBRIDLIB_DATA``  - dataset root (default: ``<repo>/data``)
* ``HYBRIDLIB_CACHE`` - feature cache (default: ``<data>/cache``)
* ``HYBRIDLIB_SHARED`` - read-only reference data for tests (default: ``<repo>/../shared/data``)
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml``), else the current directory."""
    for parent in [PACKAGE_DIR, *PACKAGE_DIR.parents]:
        if (parent / "pyproject.toml").is_file() and (parent / "hybridlib").is_dir():
            return parent
    return Path.cwd()


def data_dir() -> Path:
    return Path(os.environ.get("HYBRIDLIB_DATA", project_root() / "data"))


def cache_dir() -> Path:
    return Path(os.environ.get("HYBRIDLIB_CACHE", data_dir() / "cache"))


def teaching_dir(smoke: bool = False) -> Path:
    """Default location of the generated teaching set (a separate, tiny one in smoke mode)."""
    return data_dir() / ("teaching-smoke" if smoke else "teaching")


def shared_data_dir() -> Path:
    return Path(os.environ.get("HYBRIDLIB_SHARED", project_root().parent / "shared" / "data"))


def runs_dir() -> Path:
    return project_root() / "runs"


def notebooks_dir() -> Path:
    return project_root() / "notebooks"
