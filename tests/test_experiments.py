"""Experiments on the real pipeline (smoke teaching set, feature cache, RetrievalModel): several seeds in
parallel worker processes equal the serial run, stale seeds are never aggregated, sweeps survive early stops;
and the training loop's guards (divergence, changed config on resume, data of another config)."""

from __future__ import annotations

import json

import pytest
import torch
from training_helpers import TinyModel, tiny_cfg, tiny_training_data

from hybridlib import experiments as X
from hybridlib import runs
from hybridlib.config import teaching_config
from hybridlib.features.prepare import prepare_data
from hybridlib.training import loop as L
from hybridlib.training.data import DataMismatch


@pytest.fixture(scope="module")
def smoke_late():
    return teaching_config("hybrid-late", smoke=True, epochs=2, tensorboard=False)


@pytest.mark.slow
def test_parallel_workers_give_the_serial_results(tmp_path, smoke_late):
    serial = X.train_seeds(smoke_late, tmp_path / "serial", seeds=[0, 1], workers=1, progress=False)
    parallel = X.train_seeds(smoke_late, tmp_path / "parallel", seeds=[0, 1], workers=2, progress=False)
    assert serial["seeds"] == parallel["seeds"]  # exactly, not approximately
    assert serial["seeds"]["0"] != serial["seeds"]["1"]


@pytest.mark.slow
def test_same_config_and_seed_train_to_identical_numbers(tmp_path, smoke_late):
    a = L.train(smoke_late, tmp_path / "a", progress=False)
    b = L.train(smoke_late, tmp_path / "b", data=prepare_data(smoke_late, progress=False), progress=False)
    assert a.test_metrics == b.test_metrics
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_stale_seed_folders_of_another_config_are_not_aggregated(tmp_path, monkeypatch):
    monkeypatch.setattr(L, "build_model", lambda cfg: TinyModel())
    data = tiny_training_data()
    X.train_seeds(tiny_cfg(epochs=1, lr=1e-2), tmp_path, seeds=[5], data=data, progress=False)
    summary = X.train_seeds(tiny_cfg(epochs=1), tmp_path, seeds=[0, 1], data=data, progress=False)
    assert summary["seeds_run"] == [0, 1] and "lr" in summary["excluded"]["5"]
    # a later invocation with another seed of the same config joins the aggregate
    summary = X.train_seeds(tiny_cfg(epochs=1), tmp_path, seeds=[2], data=data, progress=False)
    assert summary["seeds_run"] == [0, 1, 2]


@pytest.mark.slow
def test_sweep_survives_an_early_stop(tmp_path, smoke_late):
    rows = X.metadata_sweep(smoke_late.replace(stop_after_epoch=1), "remove_metadata", [0.0, 1.0], tmp_path,
                            seeds=[0], workers=1)
    assert [r["finished"] for r in rows] == [False, False] and "t2a_mAP@10_mean" not in rows[0]
    with pytest.raises(ValueError, match="knob"):
        X.metadata_sweep(smoke_late, "nonsense", [0.5], tmp_path)


class Diverging(TinyModel):
    def forward(self, batch):
        return super().forward(batch) * float("nan")


def test_divergence_ends_with_a_clear_message(tmp_path, monkeypatch):
    with pytest.raises(L.TrainingDiverged, match=r"training diverged: .* epoch 1: training loss nan"):
        L.train(tiny_cfg(epochs=2), tmp_path, data=tiny_training_data(), model=Diverging(), progress=False)
    assert not (tmp_path / "best").exists()
    # several seeds: the failure is reported per seed, in one line each
    monkeypatch.setattr(L, "build_model", lambda cfg: Diverging())
    outcome = X.run_job(X.TrainingJob(tiny_cfg(epochs=2), tmp_path / "job"), data=tiny_training_data())
    assert "TrainingDiverged: training diverged" in outcome.error and not outcome.finished
    with pytest.raises(X.HybridlibError, match="seed 0: TrainingDiverged"):
        X.train_seeds(tiny_cfg(epochs=1), tmp_path / "seeds", seeds=[0], data=tiny_training_data(), progress=False)


def test_resume_with_a_changed_config_names_the_fields(tmp_path):
    data = tiny_training_data()
    L.train(tiny_cfg(epochs=3, stop_after_epoch=1), tmp_path, data=data, model=TinyModel(), progress=False)
    with pytest.raises(runs.ConfigChanged, match=r"epochs: 3 -> 4.*lr: 0\.003 -> 0\.001"):
        L.train(tiny_cfg(epochs=4, lr=1e-3), tmp_path, data=data, model=TinyModel(), resume=True, progress=False)
    done = L.train(tiny_cfg(epochs=3), tmp_path, data=data, model=TinyModel(), resume=True, progress=False)
    assert done.finished and [h["epoch"] for h in done.history] == [1, 2, 3]


@pytest.mark.slow
def test_data_prepared_for_another_config_is_refused(tmp_path, smoke_late):
    baseline = teaching_config("baseline", smoke=True, epochs=1, tensorboard=False)
    hybrid_data = prepare_data(smoke_late, progress=False, roles=("test",))
    with pytest.raises(DataMismatch, match="metadata"):
        L.train(baseline, tmp_path, data=hybrid_data, progress=False)
    fs = smoke_late.replace(model={**smoke_late.model, "metadata_kind": "fs"})
    assert prepare_data(fs, progress=False, roles=("test",)).fingerprint != hybrid_data.fingerprint


@pytest.mark.slow
def test_cli_evaluate_writes_one_file_per_split(tmp_path, smoke_late, capsys):
    from hybridlib.cli import main
    from hybridlib.config import experiments_dir

    config = str(experiments_dir() / "teaching" / "hybrid-late.yaml")
    out = tmp_path / "run"
    args = ["train", "--config", config, "--smoke", "--out", str(out), "--seed", "0", "--set", "epochs=1",
            "--set", "tensorboard=false", "--no-progress"]
    assert main(args) == 0
    test = json.loads(runs.metrics_path(out, "evaluation").read_text())
    assert main(["evaluate", "--run", str(out), "--split", "validation", "--no-progress"]) == 0
    assert json.loads(runs.metrics_path(out, "evaluation").read_text()) == test  # untouched
    val = json.loads(runs.metrics_path(out, "validation").read_text())
    assert val["split"] == "validation" and val["seeds"]["0"] != test["seeds"]["0"]
    assert "metrics-validation.json" in capsys.readouterr().out


@pytest.mark.slow
def test_pool_workers_end_when_their_owner_is_killed(tmp_path):
    """A kernel killed with SIGKILL never shuts its pool down: its idle workers must not stay behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = ("import os, sys\n"
              "from hybridlib.experiments import worker_pool\n"
              "print(worker_pool(1).submit(os.getpid).result(), flush=True)\n"
              "os.kill(os.getpid(), 9)\n")
    log = tmp_path / "owner.log"
    with open(log, "w") as out:  # a file, not a pipe: an orphaned worker would hold a pipe open
        done = subprocess.run([sys.executable, "-c", script], stdout=out, stderr=subprocess.STDOUT, timeout=300)
    assert done.returncode == -signal.SIGKILL, log.read_text()
    worker = int(log.read_text().split()[-1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError(f"pool worker {worker} still runs 30 s after its owner was killed")


def test_audio_fingerprint_ignores_metadata_and_texts_but_not_the_audio():
    """The parent fills the cache once per audio fingerprint before workers start (run_trainings)."""
    from hybridlib.features.prepare import audio_fingerprint, data_fingerprint

    late, fs, base = (teaching_config(n, smoke=True) for n in ("hybrid-late", "hybrid-late-fs", "baseline"))
    assert len({data_fingerprint(c) for c in (late, fs, base)}) == 3
    assert audio_fingerprint(late) == audio_fingerprint(fs) == audio_fingerprint(base) \
        == audio_fingerprint(late.replace(frame_stride=4, metadata_degradation={"drop_tags": 0.5}))
    assert audio_fingerprint(late) != audio_fingerprint(late.replace(max_audio_seconds=5.0))
    other = late.replace(model={**late.model, "audio_backbone": "efficientat-mn10"})
    assert audio_fingerprint(other) != audio_fingerprint(late)
