"""Training: config loading, schedules, batches with the same-item mask, atomic checkpoints, the loop, resume."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from hybridlib import train as T
from hybridlib.batching import EncodedSplit, same_item_mask

# ------------------------------------------------------------------------------------------------ fixtures
DA, DT = 8, 6


def synthetic_split(name: str, n_clips: int, caps: int = 3, seed: int = 0, meta_rate: float = 0.8) -> EncodedSplit:
    """Clips with a latent code; frames and captions are noisy linear views of it (so training can learn)."""
    maps = torch.Generator().manual_seed(123)  # the same views in every split
    wa, wt = torch.randn(4, DA, generator=maps), torch.randn(4, DT, generator=maps)
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(n_clips, 4, generator=g)
    frames = []
    for i in range(n_clips):
        t = int(torch.randint(3, 7, (1,), generator=g))
        frames.append(latent[i] @ wa + 0.8 * torch.randn(t, DA, generator=g))
    caption_clip = torch.arange(n_clips).repeat_interleave(caps)
    caption_emb = latent[caption_clip] @ wt + 0.8 * torch.randn(len(caption_clip), DT, generator=g)
    has = torch.rand(n_clips, generator=g) < meta_rate
    meta = (latent @ wt + 0.3 * torch.randn(n_clips, DT, generator=g)) * has[:, None]
    return EncodedSplit(
        name=name, clip_ids=[f"c{i}" for i in range(n_clips)], captions=[f"cap {i}" for i in range(len(caption_clip))],
        caption_clip=caption_clip, metadata_text=["kw" if h else None for h in has.tolist()], has_metadata=has,
        frames=frames, metadata_emb=meta, caption_emb=caption_emb)


@dataclass
class TinyEmb:
    embedding: torch.Tensor
    clip_index: torch.Tensor | None = None


class TinyModel(nn.Module):
    """Stand-in with the RetrievalModel interface (dropout exercises the RNG state on resume)."""

    def __init__(self, r: int = 5, dropout: float = 0.2):
        super().__init__()
        self.audio = nn.Sequential(nn.Linear(DA, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, r))
        self.text = nn.Linear(DT, r)

    def embed_items(self, batch):
        frames, lengths = batch["frames"], batch["frame_lengths"]
        mask = torch.arange(frames.shape[1])[None, :] < lengths[:, None]
        pooled = (frames * mask[..., None]).sum(1) / lengths[:, None]
        return TinyEmb(nn.functional.normalize(self.audio(pooled), dim=-1), batch["clip_index"])

    def embed_queries(self, batch):
        return TinyEmb(nn.functional.normalize(self.text(batch["caption_emb"]), dim=-1), batch["clip_index"])

    def similarity(self, queries, items):
        return queries.embedding @ items.embedding.T

    def forward(self, batch):
        return self.similarity(self.embed_queries(batch), self.embed_items(batch)).T


def tiny_training_data() -> T.TrainingData:
    return T.TrainingData(synthetic_split("development", 40, seed=1), synthetic_split("validation", 16, seed=2),
                          synthetic_split("evaluation", 16, seed=3))


@pytest.fixture(scope="module")
def tiny_data():
    return tiny_training_data()


def tiny_cfg(**kw):
    base = dict(name="tiny", epochs=4, batch_size=8, lr=3e-3, lr_min=1e-5, tensorboard=False, seeds=[0],
                eval_batch_size=7, device="cpu")
    base.update(kw)
    return T.TrainConfig.from_dict(base)


# ------------------------------------------------------------------------------------------------ config
def test_load_config_extends_and_overrides(tmp_path):
    (tmp_path / "_base.yaml").write_text("epochs: 7\nbatch_size: 16\nmodel:\n  fusion: late\n  dropout: 0.2\n")
    (tmp_path / "run.yaml").write_text("extends: _base.yaml\nname: r\nmodel:\n  metadata_kind: os\n")
    cfg = T.load_config(tmp_path / "run.yaml", overrides=["epochs=3", "model.fusion=mid", "grad_clip=1.5"])
    assert cfg.name == "r" and cfg.epochs == 3 and cfg.batch_size == 16 and cfg.grad_clip == 1.5
    assert cfg.model == {"fusion": "mid", "dropout": 0.2, "metadata_kind": "os"}
    cfg = T.load_config(tmp_path / "run.yaml", seeds=[4, 5])  # notebook parameters as keywords
    assert cfg.seeds == [4, 5]


def test_config_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    with pytest.raises(T.ConfigError, match=r"bad\.yaml.*unknown field.*'epoch'"):
        T.load_config(bad)
    bad.write_text("schedule: linear\n")
    with pytest.raises(T.ConfigError, match=r"bad\.yaml.*'schedule'"):
        T.load_config(bad)
    bad.write_text("batch_size: 1\n")
    with pytest.raises(T.ConfigError, match="'batch_size'"):
        T.load_config(bad)
    with pytest.raises(T.ConfigError, match="not found"):
        T.load_config(tmp_path / "missing.yaml")
    with pytest.raises(T.ConfigError, match="key=value"):
        T.parse_overrides(["epochs"])
    cfg = T.TrainConfig(model={"fusion": "late", "nope": 1})
    with pytest.raises(T.ConfigError, match="nope"):
        cfg.model_config()


# ------------------------------------------------------------------------------------------------ schedules
def _lrs(cfg, steps_per_epoch):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=cfg.lr)
    sched = T.build_scheduler(opt, cfg, steps_per_epoch)
    out = []
    for _ in range(cfg.epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_then_cosine_hybrid_paper():
    cfg = T.TrainConfig(epochs=25, lr=2e-5, lr_min=1e-7, warmup_epochs=1)
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
    cfg = T.TrainConfig(epochs=50, lr=1e-4, schedule="step", step_size=20, gamma=0.1)
    lrs = _lrs(cfg, steps_per_epoch=3)
    assert lrs[0] == pytest.approx(1e-4) and lrs[20 * 3 - 1] == pytest.approx(1e-4)
    assert lrs[20 * 3] == pytest.approx(1e-5) and lrs[40 * 3] == pytest.approx(1e-6)


# ------------------------------------------------------------------------------------------------ batches
def test_caption_batches_cover_every_caption_and_mask_same_clip():
    split = synthetic_split("s", 10, caps=3)
    seen = []
    for batch in split.training_batches(batch_size=4, seed=0, epoch=1, drop_last=False):
        ci = batch["clip_index"]
        assert torch.equal(batch["same_item"], ci[:, None] == ci[None, :])
        assert batch["frames"].shape[0] == len(ci) and batch["frames"].shape[2] == DA
        assert torch.equal(batch["caption_emb"], split.caption_emb[_caption_ids(split, batch)])
        seen += _caption_ids(split, batch)
    assert sorted(seen) == list(range(30))
    # the order depends on (seed, epoch) only
    assert torch.equal(split.caption_order(0, 1), split.caption_order(0, 1))
    assert not torch.equal(split.caption_order(0, 1), split.caption_order(0, 2))
    assert split.n_training_batches(4) == 7 and len(list(split.training_batches(4, 0, 1))) == 7


def _caption_ids(split, batch):
    out = []
    for row in batch["caption_emb"]:
        out.append(int((split.caption_emb == row).all(1).nonzero()[0]))
    return out


def test_same_item_mask_and_pair_batch():
    m = same_item_mask(torch.tensor([3, 1, 3, 2]))
    assert m.tolist() == [[True, False, True, False], [False, True, False, False],
                          [True, False, True, False], [False, False, False, True]]
    split = synthetic_split("s", 5, caps=2)
    b = split.pair_batch([0, 1, 4])  # captions 0 and 1 both describe clip 0
    assert b["clip_index"].tolist() == [0, 0, 2]
    assert b["same_item"][0, 1] and not b["same_item"][0, 2]
    assert torch.equal(b["metadata_emb"][2], split.metadata_emb[2])
    assert b["frame_lengths"][2] == split.frames[2].shape[0]


def test_ddp_slices_reassemble_the_global_batch():
    split = synthetic_split("s", 12, caps=2)
    full = list(split.training_batches(batch_size=8, seed=3, epoch=2))
    r0 = list(split.training_batches(batch_size=4, seed=3, epoch=2, rank=0, world_size=2))
    r1 = list(split.training_batches(batch_size=4, seed=3, epoch=2, rank=1, world_size=2))
    assert len(full) == len(r0) == len(r1) == 3
    for f, a, b in zip(full, r0, r1):
        assert torch.equal(f["clip_index"], torch.cat([a["clip_index"], b["clip_index"]]))


def test_frame_augmenter_masks_time_and_channels():
    torch.manual_seed(0)
    aug = T.frame_augmenter(T.TrainConfig(frame_time_mask=3, frame_channel_mask=4))
    frames = torch.ones(2, 10, 16)
    out = aug({"frames": frames})["frames"]
    assert out.shape == frames.shape and (out == 0).any() and (out == 1).any()
    assert T.frame_augmenter(T.TrainConfig(spec_augment=False, frame_time_mask=3)) is None


# ------------------------------------------------------------------------------------------------ checkpoints
def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    T.save_checkpoint(path, {"epoch": 1, "w": torch.arange(3)})
    assert T.load_checkpoint(path)["epoch"] == 1 and not list(tmp_path.glob("*.tmp"))

    def broken_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        T.save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert T.load_checkpoint(path)["epoch"] == 1  # the previous checkpoint survives
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        T.load_checkpoint(tmp_path / "none.pt")


def test_rng_state_round_trip():
    T.seed_everything(5)
    state = T.rng_state()
    a = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    T.set_rng_state(state)
    b = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


# ------------------------------------------------------------------------------------------------ the loop
def test_training_learns_and_writes_run_files(tmp_path, tiny_data):
    torch.manual_seed(0)
    model = TinyModel()
    from hybridlib.evaluate import evaluate_split

    before = evaluate_split(model, tiny_data.test)
    res = T.train(tiny_cfg(epochs=6), tmp_path, data=tiny_data, model=model, progress=False)
    assert res.finished and res.test_metrics is not None
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert res.test_metrics["t2a_mAP@10"] > before["t2a_mAP@10"] + 5
    for name in ("config.yaml", "checkpoint.pt", "log.csv", "metrics.json", "best/model.safetensors",
                 "best/train_config.json"):
        assert (tmp_path / name).is_file(), name
    log = T.read_log(tmp_path)
    assert list(log.epoch) == [1, 2, 3, 4, 5, 6] and {"train_loss", "lr", "val_t2a_mAP@10", "seconds"} <= set(log)
    best = log["val_t2a_mAP@10"].idxmax()
    assert res.best_epoch == log.epoch[best] and res.best_score == pytest.approx(log["val_t2a_mAP@10"][best])
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert payload["metrics"] == res.test_metrics and payload["best_epoch"] == res.best_epoch
    # the test metrics are those of the best (not the last) model
    reloaded = T.load_model_weights(TinyModel(), tmp_path / "best")
    assert evaluate_split(reloaded, tiny_data.test) == res.test_metrics


def test_tensorboard_and_rsum_selection(tmp_path, tiny_data):
    res = T.train(tiny_cfg(epochs=2, tensorboard=True, select_metric="R-sum", schedule="step", step_size=1),
                  tmp_path, data=tiny_data, model=TinyModel(), progress=False)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    log = T.read_log(tmp_path)
    assert res.best_score == pytest.approx(log["val_R-sum"].max())
    assert log.lr.tolist() == pytest.approx([3e-3 * 0.1, 3e-3 * 0.01])  # lr after each epoch's steps


def _retrieval_model(fusion: str):
    from hybridlib.models.retrieval import ModelConfig, RetrievalModel

    return RetrievalModel(ModelConfig(fusion=fusion, audio_dim=DA, text_dim=DT, d_model=8, num_heads=2,
                                      num_layers=1, dropout=0.2, retrieval_dim=5))


@pytest.mark.parametrize("make_model", [TinyModel, lambda: _retrieval_model("mid"), lambda: _retrieval_model("late")],
                         ids=["stand-in", "retrieval-mid", "retrieval-late"])
def test_resume_reaches_the_same_result(tmp_path, tiny_data, make_model):
    cfg = tiny_cfg(epochs=5, grad_clip=1.0, frame_time_mask=2, frame_channel_mask=2)
    torch.manual_seed(0)
    full = T.train(cfg, tmp_path / "full", data=tiny_data, model=make_model(), progress=False)

    torch.manual_seed(0)
    part = T.train(cfg.replace(stop_after_epoch=2), tmp_path / "cut", data=tiny_data, model=make_model(),
                   progress=False)
    assert not part.finished and part.test_metrics is None and len(part.history) == 2
    assert not (tmp_path / "cut" / "metrics.json").exists()
    torch.manual_seed(123)  # a fresh process would start with different RNG state and init
    resumed = T.train(cfg, tmp_path / "cut", data=tiny_data, model=make_model(), resume=True, progress=False)
    assert resumed.finished
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert resumed.test_metrics == full.test_metrics
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert len(T.read_log(tmp_path / "cut")) == 5


def test_train_seeds_aggregates(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(T, "build_model", lambda cfg: TinyModel())
    summary = T.train_seeds(tiny_cfg(epochs=2), tmp_path, seeds=[0, 1], data=tiny_data, progress=False)
    assert summary["seeds_run"] == [0, 1]
    vals = [summary["seeds"][s]["t2a_mAP@10"] for s in ("0", "1")]
    agg = summary["aggregate"]["t2a_mAP@10"]
    assert agg["mean"] == pytest.approx(sum(vals) / 2)
    assert agg["std"] == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))
    assert json.loads((tmp_path / "metrics.json").read_text())["aggregate"]["t2a_mAP@10"]["n"] == 2


def test_too_few_captions_for_a_batch(tmp_path):
    data = T.TrainingData(synthetic_split("d", 1, caps=1), synthetic_split("v", 2), synthetic_split("e", 2))
    with pytest.raises(ValueError, match="too few for in-batch negatives"):
        T.train(tiny_cfg(batch_size=8), tmp_path, data=data, model=TinyModel(), progress=False)


def test_training_plots_return_figures(tmp_path, tiny_data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hybridlib.viz import training as V

    T.train(tiny_cfg(epochs=2), tmp_path, data=tiny_data, model=TinyModel(), progress=False)
    log = T.read_log(tmp_path)
    fig = V.plot_training_curves({"a": [log, log], "b": log}, metric="train_loss")
    assert len(fig.axes[0].lines) == 2
    fig2 = V.plot_lr_schedule(T.TrainConfig(epochs=3, lr=1e-3), steps_per_epoch=4)
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


def test_captions_per_clip_sampling():
    split = synthetic_split("s", 10, caps=3)
    order = split.caption_order(seed=1, epoch=4, captions_per_clip=2)
    assert len(order) == 20 == split.n_epoch_captions(2)
    assert torch.bincount(split.caption_clip[order], minlength=10).tolist() == [2] * 10
    assert len(set(order.tolist())) == 20
    assert torch.equal(order, split.caption_order(1, 4, 2))
    other_epoch = split.caption_order(1, 5, 2)
    assert set(order.tolist()) != set(other_epoch.tolist())  # different captions chosen in another epoch
    assert split.n_training_batches(8, captions_per_clip=1) == 1
    batches = list(split.training_batches(4, seed=0, epoch=1, captions_per_clip=1))
    assert len(batches) == 2 and all(len(set(b["clip_index"].tolist())) == 4 for b in batches)


def test_pool_frames_averages_windows():
    from hybridlib.batching import pool_frames

    f = torch.arange(5.0)[:, None].repeat(1, 2)
    out = pool_frames(f, 2)
    assert out[:, 0].tolist() == [0.5, 2.5, 4.0]
    assert pool_frames(f, 1) is f
    split = synthetic_split("s", 3).with_frame_stride(3)
    assert all(fr.shape[0] == -(-orig.shape[0] // 3) for fr, orig in zip(split.frames, synthetic_split("s", 3).frames))


def test_num_threads_applies_during_training_only(tmp_path, tiny_data):
    before = torch.get_num_threads()
    seen = []

    class Probe(TinyModel):
        def forward(self, batch):
            seen.append(torch.get_num_threads())
            return super().forward(batch)

    T.train(tiny_cfg(epochs=1, num_threads=1), tmp_path, data=tiny_data, model=Probe(), progress=False)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


@pytest.mark.slow
def test_cli_train_then_evaluate_on_the_smoke_teaching_set(tmp_path, capsys):
    """The real pipeline: teaching set (generated if missing), feature cache, RetrievalModel, CLI train/evaluate."""
    from hybridlib.cli import main

    config = str(T.experiments_dir() / "teaching" / "hybrid-late.yaml")
    out = tmp_path / "run"
    assert main(["train", "--config", config, "--smoke", "--out", str(out), "--seed", "3", "--set", "epochs=2",
                 "--set", "tensorboard=false", "--no-progress"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["seeds_run"] == [3] and summary["paper_row"] == "hybrid/clotho/late-os"
    first = summary["seeds"]["3"]
    assert 0 <= first["t2a_mAP@10"] <= 100 and first["t2a_R@1"] <= first["t2a_R@5"] <= first["t2a_R@10"]
    assert (out / "seed-3" / "best" / "model.safetensors").is_file()
    assert (out / "seed-3" / "best" / "model_config.json").is_file()
    # re-evaluating the saved best model reproduces the numbers written by train
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 0
    again = json.loads((out / "metrics.json").read_text())["seeds"]["3"]
    assert again == pytest.approx(first)
    assert "[evaluate] seed-3" in capsys.readouterr().out
    # --resume on a finished run trains nothing more and keeps the result
    assert main(["train", "--config", config, "--smoke", "--out", str(out), "--seed", "3", "--set", "epochs=2",
                 "--set", "tensorboard=false", "--resume", "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["seeds"]["3"] == pytest.approx(first)


def test_waveform_path_for_trainable_encoders(tmp_path):
    """Without cached features the batches carry waveforms (cropped for training) and raw strings."""
    import soundfile as sf

    from hybridlib.batching import encode_split
    from hybridlib.data import Item

    items = []
    for i, seconds in enumerate((1.0, 3.0)):
        path = tmp_path / f"c{i}.wav"
        t = torch.arange(int(seconds * 8000)) / 8000
        sf.write(path, (0.3 * torch.sin(2 * math.pi * 220 * (i + 1) * t)).numpy(), 8000)
        items.append(Item(f"c{i}.wav", path, [f"tone {i} a", f"tone {i} b"], keywords=["tone", f"k{i}"]))
    split = encode_split(items, "development", metadata_kind="os", audio_cached=False, text_cached=False,
                         sample_rate=8000, max_audio_seconds=2.0, progress=False)
    assert split.frames is None and split.caption_emb is None and split.n_captions == 4
    batch = split.pair_batch([0, 2, 3], generator=torch.Generator().manual_seed(0))
    assert batch["waveform"].shape == (3, 16000)  # the 3 s clip cropped to 2 s, the 1 s clip zero-padded
    assert batch["lengths"].tolist() == [8000, 16000, 16000]
    assert batch["captions"] == ["tone 0 a", "tone 1 a", "tone 1 b"]
    assert batch["metadata_text"] == ["tone k0", "tone k1", "tone k1"] and batch["same_item"][1, 2]
    whole = split.item_batch([1])  # evaluation batches are not cropped
    assert whole["lengths"].tolist() == [24000]
    with pytest.raises(ValueError, match="FeatureCache"):
        encode_split(items, "development", metadata_kind=None, progress=False)


def test_metadata_degradation_config_is_validated():
    T.TrainConfig(metadata_degradation={"remove_metadata": 0.5, "drop_tags": 0.2, "seed": 1}).validate()
    with pytest.raises(T.ConfigError, match="metadata_degradation"):
        T.TrainConfig(metadata_degradation={"remove": 0.5}).validate()
    with pytest.raises(T.ConfigError, match="remove_metadata must be a fraction"):
        T.TrainConfig(metadata_degradation={"remove_metadata": 1.5}).validate()


def test_metadata_degradation_reaches_the_encoded_splits():
    """The knobs act on every split of the real pipeline (smoke teaching set, feature cache)."""
    base = T.load_config(T.experiments_dir() / "teaching" / "hybrid-late.yaml", smoke=True)
    clean = T.prepare_data(base, progress=False)
    assert bool(clean.train.has_metadata.all()) and bool(clean.test.has_metadata.all())
    half = T.prepare_data(base.replace(metadata_degradation={"remove_metadata": 0.5, "seed": 0}), progress=False)
    for role in ("train", "val", "test"):
        split = getattr(half, role)
        assert int(split.has_metadata.sum()) == split.n_clips - round(0.5 * split.n_clips), role
    none = T.prepare_data(base.replace(metadata_degradation={"remove_metadata": 1.0}), progress=False)
    assert not bool(none.test.has_metadata.any())
    # a content-only model never sees metadata, so the knob changes nothing there
    baseline = T.load_config(T.experiments_dir() / "teaching" / "baseline.yaml", smoke=True)
    T.prepare_data(baseline.replace(metadata_degradation={"remove_metadata": 1.0}), progress=False)


def test_metadata_sweep_trains_one_point_per_value_and_policy(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from hybridlib.viz.training import plot_metadata_sweep

    cfg = T.load_config(T.experiments_dir() / "teaching" / "hybrid-late.yaml", smoke=True).replace(
        epochs=1, tensorboard=False)
    rows = T.metadata_sweep(cfg, "remove_metadata", [0.0, 1.0], tmp_path, seeds=[0],
                            policies=["learned", "audio-only"])
    assert [(r["missing_metadata"], r["value"]) for r in rows] == [
        ("learned", 0.0), ("learned", 1.0), ("audio-only", 0.0), ("audio-only", 1.0)]
    for r in rows:
        assert 0.0 <= r["t2a_mAP@10_mean"] <= 100.0 and len(r["t2a_mAP@10_per_seed"]) == 1
    assert (tmp_path / "audio-only" / "remove_metadata-1" / "metrics.json").is_file()
    with pytest.raises(ValueError, match="knob"):
        T.metadata_sweep(cfg, "nonsense", [0.5], tmp_path)
    fig = plot_metadata_sweep(rows, baseline=10.0)
    assert len(fig.axes[0].lines) >= 3
