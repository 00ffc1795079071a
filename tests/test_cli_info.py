"""`python -m hybridlib` dispatch and `hybridlib info`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hybridlib import bundled, cli


def _run(*args):
    return subprocess.run([sys.executable, "-m", "hybridlib", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_every_command():
    proc = _run("--help")
    assert proc.returncode == 0
    for name in cli.COMMANDS:
        assert name in proc.stdout


def test_unknown_command_is_an_error():
    proc = _run("no-such-command")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_every_command_module_has_the_cli_interface():
    import importlib

    for module_name, _ in cli.COMMANDS.values():
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments) and callable(module.run), module_name


@pytest.mark.slow
def test_info_reports_both_bundled_models_with_paths():
    proc = _run("info", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    models = report["models"]
    assert len(models) == 2
    for entry in models.values():
        assert entry["found"] is True
        assert Path(entry["path"]).exists()
    assert report["device"]["default"] in {"cpu", "cuda"}
    assert report["versions"]["torch"] == "2.9.1"


@pytest.mark.slow
def test_info_text_output_names_the_files():
    proc = _run("info")
    assert proc.returncode == 0
    assert str(bundled.sfx_cnn_checkpoint()) in proc.stdout
    assert str(bundled.minilm_dir()) in proc.stdout


def test_bundled_files_are_the_expected_ones():
    ckpt = bundled.sfx_cnn_checkpoint()
    assert ckpt.name == "checkpoint.pth" and ckpt.parent.name == "models"
    folder = bundled.minilm_dir()
    assert (folder / "config.json").exists()
    assert any(folder.glob("*.safetensors"))
