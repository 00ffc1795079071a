"""Small helpers every notebook uses: an output folder, ``results.json`` and saved figures.

The notebooks' ``parameters`` cell sets ``OUT_DIR``; the runner (:mod:`hybridlib.runner`) points it at
``runs/<timestamp>/<notebook>/``. Run interactively with ``OUT_DIR = None``, outputs go to
``runs/interactive/<notebook>/``.

Parameters are checked by :func:`hybridlib.notebook_parameters.check_parameters`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hybridlib.paths import runs_dir
from hybridlib.util.files import atomic_write_text


def prepare_out_dir(out_dir: str | Path | None, notebook: str) -> Path:
    """Create and return the notebook's output folder; a ``results.json`` left by an earlier run is removed,
    so the file only ever holds what this run saved."""
    path = Path(out_dir) if out_dir else runs_dir() / "interactive" / notebook
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").unlink(missing_ok=True)
    return path


def to_jsonable(value: Any) -> Any:
    """Turn tensors, numpy values, paths and dataclasses into plain JSON values (NaN becomes null)."""
    if hasattr(value, "tolist") and callable(value.tolist):  # torch / numpy arrays and scalars
        return to_jsonable(value.tolist())
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_results(out_dir: str | Path, results: dict | None = None, **more: Any) -> None:
    """Merge ``results`` (and keyword values) into ``<out_dir>/results.json`` (started afresh by
    :func:`prepare_out_dir` each run). Returns nothing, so a cell ending with it prints no path."""
    path = Path(out_dir) / "results.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(to_jsonable({**(results or {}), **more}))
    atomic_write_text(path, json.dumps(current, indent=2, sort_keys=True))


def save_figure(fig, out_dir: str | Path, name: str, dpi: int = 110) -> None:
    """Save a matplotlib figure as ``<out_dir>/<name>.png``. Returns nothing, so a cell ending with it shows
    the figure and no ``PosixPath(...)`` line."""
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
