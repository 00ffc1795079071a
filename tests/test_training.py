"""Training: schedules, feature augmentation, the loop and its run files, exact resume, seeds, sweeps, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from training_helpers import DA, DT, TinyModel, synthetic_split, tiny_cfg, tiny_training_data

from hybridlib import experiments as X
from hybridlib import runs
from hybridlib.config import TrainConfig, experiments_dir, load_config
from hybridlib.features.prepare import TrainingData, prepare_data
from hybridlib.training import loop as L
from hybridlib.training.augment import frame_augmenter
from hybridlib.training.optim import build_scheduler


@pytest.fixture(scope="module")
def tiny_data():
    return tiny_training_data()


# ------------------------------------------------------------------------------------------------ schedules
def _lrs(cfg, steps_per_epoch):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    out = []
    for _ in range(cfg.epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_then_cosine_hybrid_paper():
    cfg = TrainConfig(epochs=25, lr=2e-5, lr_min=1e-7, warmup_epochs=1)
    lrs = _lrs(cfg, steps_per_epoch=10)
    assert lrs[0] == pytest.approx(2e-5 / 10)  # linear warm-up over the first epoch's 10 steps
    assert lrs[9] == pytest.approx(2e-5) and max(lrs) == pytest.approx(2e-5)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone cosine decay afterwards
    assert lrs[-1] == pytest.approx(1e-7, rel=1e-6)
    n = len(lrs) - 10 - 1  # cosine steps after the warm-up epoch
    expected = [1e-7 + (2e-5 - 1e-7) * (1 + math.cos(math.pi * k / n)) / 2 for k in range(n + 1)]
    assert lrs[10:] == pytest.approx(expected, rel=1e-6)


def test_step_schedule_mei():
    cfg = TrainConfig(epochs=50, lr=1e-4, schedule="step", step_size=20, gamma=0.1)
    lrs = _lrs(cfg, steps_per_epoch=3)
    assert lrs[0] == pytest.approx(1e-4) and lrs[20 * 3 - 1] == pytest.approx(1e-4)
    assert lrs[20 * 3] == pytest.approx(1e-5) and lrs[40 * 3] == pytest.approx(1e-6)


def test_frame_augmenter_masks_time_and_channels():
    torch.manual_seed(0)
    aug = frame_augmenter(TrainConfig(frame_time_mask=3, frame_channel_mask=4))
    frames = torch.ones(2, 10, 16)
    out = aug({"frames": frames})["frames"]
    assert out.shape == frames.shape and (out == 0).any() and (out == 1).any()
    assert frame_augmenter(TrainConfig(spec_augment=False, frame_time_mask=3)) is None


# ------------------------------------------------------------------------------------------------ the loop
def test_training_learns_and_writes_run_files(tmp_path, tiny_data):
    torch.manual_seed(0)
    model = TinyModel()
    from hybridlib.evaluation import evaluate_split

    before = evaluate_split(model, tiny_data.test)
    res = L.train(tiny_cfg(epochs=6), tmp_path, data=tiny_data, model=model, progress=False)
    assert res.finished and res.test_metrics is not None
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert res.test_metrics["t2a_mAP@10"] > before["t2a_mAP@10"] + 5
    for name in ("config.yaml", "checkpoint.pt", "log.csv", "metrics-evaluation.json", "best/model.safetensors",
                 "best/train_config.json"):
        assert (tmp_path / name).is_file(), name
    log = runs.read_log(tmp_path)
    assert list(log.epoch) == [1, 2, 3, 4, 5, 6] and {"train_loss", "lr", "val_t2a_mAP@10", "seconds"} <= set(log)
    best = log["val_t2a_mAP@10"].idxmax()
    assert res.best_epoch == log.epoch[best] and res.best_score == pytest.approx(log["val_t2a_mAP@10"][best])
    payload = json.loads((tmp_path / "metrics-evaluation.json").read_text())
    assert payload["metrics"] == res.test_metrics and payload["best_epoch"] == res.best_epoch
    # the test metrics are those of the best (not the last) model
    reloaded = runs.load_model_weights(TinyModel(), tmp_path / "best")
    assert evaluate_split(reloaded, tiny_data.test) == res.test_metrics


def test_tensorboard_and_rsum_selection(tmp_path, tiny_data):
    res = L.train(tiny_cfg(epochs=2, tensorboard=True, select_metric="R-sum", schedule="step", step_size=1),
                  tmp_path, data=tiny_data, model=TinyModel(), progress=False)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    log = runs.read_log(tmp_path)
    assert res.best_score == pytest.approx(log["val_R-sum"].max())
    assert log.lr.tolist() == pytest.approx([3e-3 * 0.1, 3e-3 * 0.01])  # lr after each epoch's steps


def _retrieval_model(fusion: str):
    from hybridlib.models.retrieval import ModelConfig, RetrievalModel

    return RetrievalModel(ModelConfig(fusion=fusion, audio_dim=DA, text_dim=DT, d_model=8, num_heads=2,
                                      num_layers=1, dropout=0.2, retrieval_dim=5))


@pytest.mark.parametrize("make_model", [TinyModel, lambda: _retrieval_model("mid"), lambda: _retrieval_model("late")],
                         ids=["stand-in", "retrieval-mid", "retrieval-late"])
@pytest.mark.slow
def test_resume_reaches_the_same_result(tmp_path, tiny_data, make_model):
    cfg = tiny_cfg(epochs=5, grad_clip=1.0, frame_time_mask=2, frame_channel_mask=2)
    torch.manual_seed(0)
    full = L.train(cfg, tmp_path / "full", data=tiny_data, model=make_model(), progress=False)

    torch.manual_seed(0)
    part = L.train(cfg.replace(stop_after_epoch=2), tmp_path / "cut", data=tiny_data, model=make_model(),
                   progress=False)
    assert not part.finished and part.test_metrics is None and len(part.history) == 2
    assert not (tmp_path / "cut" / "metrics-evaluation.json").exists()
    torch.manual_seed(123)  # a fresh process would start with different RNG state and init
    resumed = L.train(cfg, tmp_path / "cut", data=tiny_data, model=make_model(), resume=True, progress=False)
    assert resumed.finished
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert resumed.test_metrics == full.test_metrics
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert len(runs.read_log(tmp_path / "cut")) == 5


def test_the_final_checkpoint_holds_no_weights_and_a_resume_only_evaluates(tmp_path, tiny_data, monkeypatch):
    """After the last epoch nothing trains again: its checkpoint holds the history but no weights or optimiser
    state (a bert-large row would write ~4 GB only to delete it), the previous checkpoint goes, and a resume
    of the finished run evaluates best/ to the same metrics without training."""
    cfg = tiny_cfg(epochs=2)
    torch.manual_seed(0)
    done = L.train(cfg, tmp_path, data=tiny_data, model=TinyModel(), progress=False)
    state = runs.load_checkpoint(tmp_path)
    assert state["epoch"] == 2 and len(state["history"]) == 2 and state["best_epoch"] == done.best_epoch
    assert not {"model", "optimizer", "scheduler", "scaler"} & set(state)
    assert not (tmp_path / runs.PREVIOUS_CHECKPOINT).exists()
    from hybridlib.training import optim

    monkeypatch.setattr(optim, "optimizer_step", lambda *a, **k: pytest.fail("a finished run trained again"))
    again = L.train(cfg, tmp_path, data=tiny_data, model=TinyModel(), resume=True, progress=False)
    assert again.finished and again.history == done.history and again.test_metrics == done.test_metrics


def test_train_seeds_aggregates(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(L, "build_model", lambda cfg: TinyModel())
    summary = X.train_seeds(tiny_cfg(epochs=2), tmp_path, seeds=[0, 1], data=tiny_data, progress=False)
    assert summary["seeds_run"] == [0, 1]
    vals = [summary["seeds"][s]["t2a_mAP@10"] for s in ("0", "1")]
    agg = summary["aggregate"]["t2a_mAP@10"]
    assert agg["mean"] == pytest.approx(sum(vals) / 2)
    assert agg["std"] == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))
    assert json.loads((tmp_path / "metrics-evaluation.json").read_text())["aggregate"]["t2a_mAP@10"]["n"] == 2


def test_too_few_captions_for_a_batch(tmp_path):
    data = TrainingData(synthetic_split("d", 1, caps=1), synthetic_split("v", 2), synthetic_split("e", 2),
                        fingerprint=tiny_training_data().fingerprint)
    with pytest.raises(ValueError, match="too few for in-batch negatives"):
        L.train(tiny_cfg(batch_size=8), tmp_path, data=data, model=TinyModel(), progress=False)


def test_training_plots_return_figures(tmp_path, tiny_data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hybridlib.viz import training as V

    L.train(tiny_cfg(epochs=2), tmp_path, data=tiny_data, model=TinyModel(), progress=False)
    log = runs.read_log(tmp_path)
    fig = V.plot_training_curves({"a": [log, log], "b": log}, metric="train_loss")
    assert len(fig.axes[0].lines) == 2
    fig2 = V.plot_lr_schedule(TrainConfig(epochs=3, lr=1e-3), steps_per_epoch=4)
    assert len(fig2.axes[0].lines[0].get_xdata()) == 12
    agg = {"x": {"t2a_mAP@10": {"mean": 10.0, "std": 1.0, "values": [9.0, 10.0, 11.0]}}}
    fig3 = V.plot_seed_bars(agg, paper={"x": 12.0})
    assert len(fig3.axes[0].patches) == 1
    fig4 = V.plot_rank_histogram({"m": [1, 2, 2, 60]}, max_rank=10)
    assert fig4.axes[0].get_xlabel().startswith("rank")
    import pandas as pd

    cmp = pd.DataFrame({"row": ["hybrid/clotho/baseline"], "metric": ["t2a_mAP@10"], "paper": [26.8],
                        "ours": [20.0], "ours_std": [1.0]})
    assert len(V.plot_paper_vs_ours(cmp).axes[0].patches) == 2
    plt.close("all")


def test_num_threads_applies_during_training_only(tmp_path, tiny_data):
    before = torch.get_num_threads()
    seen = []

    class Probe(TinyModel):
        def forward(self, batch):
            seen.append(torch.get_num_threads())
            return super().forward(batch)

    L.train(tiny_cfg(epochs=1, num_threads=1), tmp_path, data=tiny_data, model=Probe(), progress=False)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


@pytest.mark.slow
def test_cli_train_then_evaluate_on_the_smoke_teaching_set(tmp_path, capsys):
    """The real pipeline: teaching set (generated if missing), feature cache, RetrievalModel, CLI train/evaluate."""
    from hybridlib.cli import main

    config = str(experiments_dir() / "teaching" / "hybrid-late.yaml")
    out = tmp_path / "run"
    assert main(["train", "--config", config, "--smoke", "--out", str(out), "--seed", "3", "--set", "epochs=2",
                 "--set", "tensorboard=false", "--no-progress"]) == 0
    summary = json.loads((out / "metrics-evaluation.json").read_text())
    assert summary["seeds_run"] == [3] and summary["paper_row"] == "hybrid/clotho/late-os"
    first = summary["seeds"]["3"]
    assert 0 <= first["t2a_mAP@10"] <= 100 and first["t2a_R@1"] <= first["t2a_R@5"] <= first["t2a_R@10"]
    assert (out / "seed-3" / "best" / "model.safetensors").is_file()
    assert (out / "seed-3" / "best" / "model_config.json").is_file()
    # re-evaluating the saved best model reproduces the numbers written by train
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 0
    again = json.loads((out / "metrics-evaluation.json").read_text())["seeds"]["3"]
    assert again == pytest.approx(first)
    assert "[evaluate] seed-3" in capsys.readouterr().out
    # --resume on a finished run trains nothing more and keeps the result
    assert main(["train", "--config", config, "--smoke", "--out", str(out), "--seed", "3", "--set", "epochs=2",
                 "--set", "tensorboard=false", "--resume", "--no-progress"]) == 0
    assert json.loads((out / "metrics-evaluation.json").read_text())["seeds"]["3"] == pytest.approx(first)


@pytest.mark.slow
def test_metadata_degradation_reaches_the_encoded_splits():
    """The knobs act on every split of the real pipeline (smoke teaching set, feature cache)."""
    base = load_config(experiments_dir() / "teaching" / "hybrid-late.yaml", smoke=True)
    clean = prepare_data(base, progress=False)
    assert bool(clean.train.has_metadata.all()) and bool(clean.test.has_metadata.all())
    half = prepare_data(base.replace(metadata_degradation={"remove_metadata": 0.5, "seed": 0}), progress=False)
    for role in ("train", "val", "test"):
        split = getattr(half, role)
        assert int(split.has_metadata.sum()) == split.n_clips - round(0.5 * split.n_clips), role
    none = prepare_data(base.replace(metadata_degradation={"remove_metadata": 1.0}), progress=False)
    assert not bool(none.test.has_metadata.any())
    # a content-only model never sees metadata, so the knob changes nothing there
    baseline = load_config(experiments_dir() / "teaching" / "baseline.yaml", smoke=True)
    prepare_data(baseline.replace(metadata_degradation={"remove_metadata": 1.0}), progress=False)


@pytest.mark.slow
def test_metadata_sweep_trains_one_point_per_value_and_policy(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from hybridlib.viz.training import plot_metadata_sweep

    cfg = load_config(experiments_dir() / "teaching" / "hybrid-late.yaml", smoke=True).replace(
        epochs=1, tensorboard=False)
    rows = X.metadata_sweep(cfg, "remove_metadata", [0.0, 1.0], tmp_path, seeds=[0],
                            policies=["learned", "audio-only"])
    assert [(r["missing_metadata"], r["value"]) for r in rows] == [
        ("learned", 0.0), ("learned", 1.0), ("audio-only", 0.0), ("audio-only", 1.0)]
    for r in rows:
        assert 0.0 <= r["t2a_mAP@10_mean"] <= 100.0 and len(r["t2a_mAP@10_per_seed"]) == 1
    assert (tmp_path / "audio-only" / "remove_metadata-1" / "metrics-evaluation.json").is_file()
    with pytest.raises(ValueError, match="knob"):
        X.metadata_sweep(cfg, "nonsense", [0.5], tmp_path)
    fig = plot_metadata_sweep(rows, baseline=10.0)
    assert len(fig.axes[0].lines) >= 3


@pytest.mark.slow
def test_trainable_backbone_on_waveforms_same_for_any_worker_count_and_after_resume(tmp_path):
    """The waveform path end to end: the smoke teaching set with two broken clips, the waveform cache, the
    DataLoader with 0 or 2 workers, the real RetrievalModel fine-tuning sfx-cnn. Worker count and a resume
    (cut after epoch 1 with 2 workers, resumed with 0) change nothing."""
    import shutil

    from hybridlib.config import teaching_config
    from hybridlib.data import ensure_teaching_set

    root = tmp_path / "teaching"
    shutil.copytree(ensure_teaching_set(smoke=True, progress=False), root)
    broken = sorted((root / "CLOTHO_v2.1" / "clotho_audio_files" / "development").glob("*.wav"))[:2]
    broken[0].write_bytes(b"RIFF nonsense")
    broken[1].write_bytes(b"")
    cfg = teaching_config("mei-finetune-nt-xent", smoke=True, data_root=str(root), epochs=2, batch_size=4,
                          captions_per_clip=1, max_audio_seconds=1.0, eval_batch_size=4, tensorboard=False,
                          num_threads=1)
    data = prepare_data(cfg, progress=False)
    assert data.train.frames is None and data.train.waveform_cache is not None
    assert set(data.info["excluded"]["teaching/development"]) == {p.name for p in broken}
    assert data.info["load_reports"][0]["excluded"] == 2 and data.train.n_clips == 30
    from hybridlib.data.audio_io import audio_info

    def shortest(split, k):  # evaluation runs the CNN on whole clips: keep it short
        by_length = sorted(range(split.n_clips), key=lambda i: audio_info(split.audio_paths[i])["frames"])
        return split.subset(sorted(by_length[:k]))

    small = TrainingData(data.train.subset(range(8)), shortest(data.val, 2), shortest(data.test, 2),
                         data.fingerprint, data.info)

    def run(name, **changes):
        return L.train(cfg.replace(**changes), tmp_path / name, data=small, progress=False)

    def same(a, b):
        keep = [{k: v for k, v in h.items() if "seconds" not in k} for h in a.history]
        assert keep == [{k: v for k, v in h.items() if "seconds" not in k} for h in b.history]
        assert a.test_metrics == b.test_metrics
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

    in_process = run("w0", num_workers=0)
    assert any(k.startswith("audio_backbone.") for k in in_process.model.state_dict())  # the CNN trained
    same(in_process, run("w2", num_workers=2))
    run("cut", num_workers=2, stop_after_epoch=1)
    torch.manual_seed(123)
    resumed = L.train(cfg.replace(num_workers=0), tmp_path / "cut", data=small, resume=True, progress=False)
    same(in_process, resumed)
    assert "num_workers: 2" in (tmp_path / "w2" / "config.yaml").read_text()
