"""Planted pickles through the command line: a file whose pickle references ``posix.system`` (through
``__reduce__``) or an arbitrary class is refused by every entry point that reads pickles - ``train --resume``
(the run's checkpoint), ``evaluate`` and ``train`` (the audio weights named by ``model.audio_checkpoint``) and
``extract --checkpoint`` - in one ``error:`` line naming the file and the refused global, exit 2, and nothing
of the pickle runs (its payload would create a marker file). torch 2.9 words the two refusals differently
("Trying to load unsupported GLOBAL posix.system ..." and "Unsupported global: GLOBAL ...")."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from pickle_payloads import KINDS, payload, planted_pickle

from hybridlib import runs
from hybridlib.cli import main
from hybridlib.config import experiments_dir
from hybridlib.models.audio.sfx_cnn import SfxCNN
from hybridlib.paths import project_root

CONFIG = str(experiments_dir() / "teaching" / "hybrid-late.yaml")


def _cli(*args):
    result = subprocess.run([sys.executable, "-m", "hybridlib", *map(str, args)], cwd=project_root(),
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(project_root())})
    return result.returncode, result.stderr


def _assert_refused(code, stderr, path, kind, marker):
    _, refused, _ = KINDS[kind]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert str(path) in lines[0] and f"it needs {refused}, which is not plain data" in lines[0], lines[0]
    assert "weights_only" not in lines[0].replace("weights_only=True", "") and "Re-running" not in lines[0]
    assert not marker.exists()


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A smoke run stopped after epoch 1 of 2 (``checkpoint.pt`` and ``best/``), trained with its audio weights
    read from a file (``model.audio_checkpoint``): random sfx-cnn weights in the official tuple format."""
    root = tmp_path_factory.mktemp("planted")
    weights = root / "sfx-cnn.pth"
    torch.save((SfxCNN().state_dict(), {"classes": 3}), weights)
    out = root / "run"
    args = ["train", "--config", CONFIG, "--smoke", "--out", str(out), "--seed", "0", "--set", "epochs=2",
            "--set", "tensorboard=false", "--set", f"model.audio_checkpoint={weights}", "--no-progress"]
    assert main([*args, "--set", "stop_after_epoch=1"]) == 0
    assert (out / "seed-0" / runs.CHECKPOINT).is_file() and (out / "seed-0" / runs.BEST).is_dir()
    return {"out": out, "weights": weights, "args": args}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_resume_refuses_a_planted_checkpoint(stopped_run, kind, tmp_path):
    marker = tmp_path / "ran"
    ckpt = stopped_run["out"] / "seed-0" / runs.CHECKPOINT
    original = ckpt.read_bytes()
    state = torch.load(ckpt, weights_only=True)
    state["history"] = [payload(kind, marker)]
    torch.save(state, ckpt)
    try:
        code, stderr = _cli(*stopped_run["args"], "--resume")
    finally:
        ckpt.write_bytes(original)
    _assert_refused(code, stderr, ckpt, kind, marker)
    assert stderr.startswith(f"error: {ckpt} is damaged or not a plain-data checkpoint and was not loaded")


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_evaluate_and_train_refuse_planted_audio_weights(stopped_run, kind, tmp_path):
    marker = tmp_path / "ran"
    weights = stopped_run["weights"]
    original = weights.read_bytes()
    weights.write_bytes(planted_pickle(kind, marker))
    try:
        code, stderr = _cli("evaluate", "--run", stopped_run["out"], "--no-progress")
        _assert_refused(code, stderr, weights, kind, marker)
        code, stderr = _cli("train", "--config", CONFIG, "--smoke", "--out", tmp_path / "new", "--seed", "0",
                            "--set", f"model.audio_checkpoint={weights}", "--no-progress")
        _assert_refused(code, stderr, weights, kind, marker)
    finally:
        weights.write_bytes(original)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_extract_refuses_planted_official_weights(kind, tmp_path):
    marker = tmp_path / "ran"
    planted = tmp_path / "checkpoint.pth"
    planted.write_bytes(planted_pickle(kind, marker))
    code, stderr = _cli("extract", "--smoke", "--splits", "evaluation", "--text-encoder", "none", "--cache",
                        tmp_path / "cache", "--no-progress", "--checkpoint", planted)
    _assert_refused(code, stderr, planted, kind, marker)
