"""The run folder: atomic checkpoints (plain data only, damaged files named), config comparison, metrics files."""

from __future__ import annotations

import errno
import json
import math

import pytest
import torch

from hybridlib import runs
from hybridlib.config import TrainConfig
from hybridlib.util.files import DiskFull


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    runs.save_checkpoint(tmp_path, {"epoch": 1, "w": torch.arange(3)})
    assert runs.load_checkpoint(tmp_path)["epoch"] == 1 and not list(tmp_path.glob("*.tmp"))

    def broken_save(obj, f, *a, **k):  # the checkpoint is written through a Python file object
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(DiskFull, match=f"cannot write {path}: no space left on the device"):
        runs.save_checkpoint(tmp_path, {"epoch": 2})
    monkeypatch.undo()
    assert runs.load_checkpoint(tmp_path)["epoch"] == 1  # the previous checkpoint survives
    assert not list(tmp_path.glob(".*tmp")) and path.is_file()
    assert runs.load_checkpoint(tmp_path / "none") is None


def test_previous_checkpoint_is_kept_and_named_when_the_last_is_damaged(tmp_path):
    runs.save_checkpoint(tmp_path, {"epoch": 1})
    runs.save_checkpoint(tmp_path, {"epoch": 2})
    assert runs.load_checkpoint(tmp_path)["epoch"] == 2
    assert runs.read_checkpoint_file(tmp_path / runs.PREVIOUS_CHECKPOINT)["epoch"] == 1
    data = (tmp_path / runs.CHECKPOINT).read_bytes()
    (tmp_path / runs.CHECKPOINT).write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(runs.CheckpointDamaged, match=r"checkpoint\.pt is damaged.*checkpoint\.prev\.pt \(epoch 1\)"):
        runs.load_checkpoint(tmp_path)


def test_checkpoint_with_code_is_refused_and_never_runs(tmp_path):
    """A pickle that would call a function on load is refused by weights_only loading; nothing executes."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    torch.save({"epoch": 1, "history": Payload()}, tmp_path / runs.CHECKPOINT)
    with pytest.raises(runs.CheckpointDamaged, match="not a plain-data checkpoint"):
        runs.load_checkpoint(tmp_path)
    assert not marker.exists()


def test_config_differences_and_resume_check(tmp_path):
    a = TrainConfig(epochs=3, lr=1e-3, model={"fusion": "late"})
    b = a.replace(epochs=5, stop_after_epoch=2, model={"fusion": "mid"})
    assert runs.config_differences(a.to_dict(), b.to_dict()) == ["epochs", "model.fusion"]
    with pytest.raises(runs.ConfigChanged, match=r"epochs: 3 -> 5.*model\.fusion: 'late' -> 'mid'"):
        runs.check_resume_config({"config": a.to_dict()}, b, tmp_path)
    runs.check_resume_config({"config": a.to_dict()}, a.replace(stop_after_epoch=1, notes="x"), tmp_path)
    assert runs.same_experiment(a, a.replace(seed=7, device="cuda")) and not runs.same_experiment(a, b)


def _seed(tmp_path, seed, value, cfg):
    d = runs.seed_dir(tmp_path, seed)
    runs.save_config(cfg.replace(seed=seed), d)
    runs.write_seed_metrics(d, cfg.replace(seed=seed), {"t2a_mAP@10": value}, "evaluation")


def test_write_run_metrics_aggregates_only_the_same_config(tmp_path):
    cfg = TrainConfig(name="n", paper_row="hybrid/clotho/baseline")
    for seed, val in ((0, 10.0), (2, 14.0), (1, 12.0)):
        _seed(tmp_path, seed, val, cfg)
    _seed(tmp_path, 5, 99.0, cfg.replace(lr=0.5))  # a stale seed of another config
    (tmp_path / "seed-x").mkdir()  # not a seed folder
    summary = runs.write_run_metrics(tmp_path, "evaluation", cfg=cfg)
    assert summary["seeds_run"] == [0, 1, 2] and "lr" in summary["excluded"]["5"]
    assert summary["aggregate"]["t2a_mAP@10"]["mean"] == pytest.approx(12.0)
    assert summary["aggregate"]["t2a_mAP@10"]["std"] == pytest.approx(2.0)
    assert runs.read_metrics(tmp_path, "evaluation") == summary
    assert math.isclose(summary["seeds"]["2"]["t2a_mAP@10"], 14.0)
    assert runs.write_run_metrics(tmp_path, "evaluation", seeds=[5])["seeds_run"] == [5]
    with pytest.raises(FileNotFoundError):
        runs.write_run_metrics(tmp_path / "seed-x", "evaluation")
    assert json.loads(runs.metrics_path(tmp_path, "evaluation").read_text())["split"] == "evaluation"


def test_aggregate_mean_and_sample_std():
    agg = runs.aggregate([{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 2.0}, {"x": 5.0}])
    assert set(agg) == {"x"}  # only keys every seed has
    assert agg["x"]["mean"] == 3.0 and agg["x"]["std"] == pytest.approx(2.0) and agg["x"]["n"] == 3
    one = runs.aggregate([{"x": 4.0}])
    assert one["x"]["std"] == 0.0
    with pytest.raises(ValueError):
        runs.aggregate([])


def test_format_aggregate_shows_spread_only_for_several_seeds():
    several = runs.aggregate([{"t2a_mAP@10": 50.0, "R@1": 1.0}, {"t2a_mAP@10": 52.0, "R@1": 3.0}])
    assert runs.format_aggregate(several, ["t2a_mAP@10", "missing"]) == "t2a_mAP@10 51.00±1.41"
    single = runs.aggregate([{"t2a_mAP@10": 50.0}])
    assert runs.format_aggregate(single, ["t2a_mAP@10"]) == "t2a_mAP@10 50.00"


def test_paired_gap_uses_the_shared_seeds():
    a = {"seeds": {"0": {"m": 50.0}, "1": {"m": 52.0}, "2": {"m": 49.0}}}
    b = {"seeds": {"0": {"m": 48.0}, "1": {"m": 51.0}}}
    gap = runs.paired_gap(a, b, "m")
    assert gap["per_seed"] == [2.0, 1.0] and gap["seeds"] == [0, 1] and gap["mean"] == 1.5
    assert gap["std"] == pytest.approx(0.5 ** 0.5)
    with pytest.raises(ValueError, match="no seed"):
        runs.paired_gap(a, {"seeds": {"7": {"m": 1.0}}}, "m")


def test_damaged_metrics_file_of_one_seed_is_left_out_and_named(tmp_path):
    cfg = TrainConfig(name="n")
    for seed, val in ((0, 10.0), (1, 12.0)):
        _seed(tmp_path, seed, val, cfg)
    runs.metrics_path(runs.seed_dir(tmp_path, 1), "evaluation").write_text('{"seed": 1, "metr')
    summary = runs.write_run_metrics(tmp_path, "evaluation", cfg=cfg)
    assert summary["seeds_run"] == [0] and "is damaged" in summary["excluded"]["1"]
    with pytest.raises(runs.CheckpointDamaged, match=r"seed-1/metrics-evaluation\.json is damaged"):
        runs.read_metrics(runs.seed_dir(tmp_path, 1), "evaluation")
