"""The papers' settings reach the runs (issue 10's fidelity bugs, each tested where it used to break):
AudioCaps CS tags in the training data, ``spec_augment`` wired to the backbones and masking where upstream masks,
the separate-text-encoder row, Mei et al.'s selection rule / text preprocessing / dropout / clipping, and
"frozen" as upstream as an option."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from hybridlib import paper
from hybridlib.config import experiments_dir, load_config
from hybridlib.data.rehearsal import read_manifest
from hybridlib.models.audio.frontends import SpecAugment, set_spec_augment

MEI = sorted((experiments_dir() / "mei").glob("[!_]*.yaml"))


# ---------------------------------------------------------------------------------------- AudioCaps CS tags
def _cheap(cfg_path, rehearsal_root, **extra):
    """A paper row on the rehearsal with the bundled frozen encoders (cheap; the metadata path is the row's)."""
    model = {"audio_backbone": "sfx-cnn", "audio_dim": 512, "audio_trainable": False, "text_encoder": "minilm",
             "text_dim": 384, "text_trainable": False, "num_heads": 8}
    return load_config(cfg_path, overrides={"data_root": str(rehearsal_root), "model": model}, **extra)


@pytest.mark.slow
def test_audiocaps_cs_rows_train_on_audioset_tags(rehearsal_root):
    from hybridlib.features.prepare import prepare_data

    cfg = _cheap(experiments_dir() / "hybrid" / "audiocaps-late-cs.yaml", rehearsal_root)
    data = prepare_data(cfg, progress=False, roles=("train",))
    assert bool(data.train.has_metadata.all())  # every clip has its AudioSet class names as metadata
    tags = {r["clip"]: r["audioset_mids"] for r in read_manifest(rehearsal_root)["clips"] if r["dataset"] == "audiocaps"}
    assert set(data.train.clip_ids) <= set(tags) and all(data.train.metadata_text)
    assert data.info["settings"]["audioset_labels"] == str((rehearsal_root / "AUDIOCAPS").resolve())


@pytest.mark.slow
def test_a_cs_row_without_audioset_labels_stops_with_a_clear_error(rehearsal_root, tmp_path):
    from hybridlib.features.prepare import MetadataMissing, prepare_data

    root = tmp_path / "data"
    shutil.copytree(rehearsal_root / "AUDIOCAPS", root / "AUDIOCAPS",
                    ignore=shutil.ignore_patterns("class_labels_indices.csv", "*segments*.csv"))
    cfg = _cheap(experiments_dir() / "hybrid" / "audiocaps-late-cs.yaml", rehearsal_root, data_root=str(root))
    with pytest.raises(MetadataMissing, match=r"0 of 6 audiocaps/train clips \(0%\) have cs metadata.*audioset_labels"):
        prepare_data(cfg, progress=False, roles=("train",))
    # the labels given explicitly (relative to the data root) work, the content-only row never needed them
    shutil.copytree(rehearsal_root / "AUDIOCAPS", root / "labels", ignore=shutil.ignore_patterns("audio_*", "csv_*"))
    assert prepare_data(cfg.replace(audioset_labels="labels"), progress=False, roles=("train",)).train.has_metadata.all()
    base = _cheap(experiments_dir() / "hybrid" / "audiocaps-baseline.yaml", rehearsal_root, data_root=str(root))
    assert prepare_data(base, progress=False, roles=("train",)).train.n_clips == 6


# ---------------------------------------------------------------------------------------- SpecAugment
def _stripes(x: torch.Tensor, value: float) -> tuple[int, int]:
    """(time rows, frequency columns) of ``x [T, F]`` that are entirely ``value``."""
    hit = x == value
    return int(hit.all(dim=1).sum()), int(hit.all(dim=0).sum())


def test_spec_augment_flag_switches_every_backbone_frontend():
    from hybridlib.models.audio import build_audio_backbone

    for name in ("sfx-cnn", "efficientat-mn10", "panns-cnn14"):
        backbone = build_audio_backbone(name, pretrained=False).train()
        names = set_spec_augment(backbone, False)
        assert names == ["frontend.spec_augment"]
        assert not backbone.frontend.spec_augment.active
        set_spec_augment(backbone, True)
        assert backbone.frontend.spec_augment.active


def test_panns_masks_the_bn0_output_with_zeros_as_upstream():
    """PANNs (and Mei et al.'s copy) apply SpecAugmentation(64, 2, 8, 2) after bn0: the masked stripes are exact
    zeros where the next layer reads them (masking before bn0 would let bn0 shift them)."""
    from hybridlib.models.audio import build_audio_backbone

    torch.manual_seed(0)
    panns = build_audio_backbone("panns-cnn14", pretrained=False).train()
    with torch.no_grad():
        panns.bn0.weight.uniform_(0.5, 1.5)
        panns.bn0.bias.uniform_(0.5, 1.0)  # a masked value of 0 before bn0 would come out far from 0
    seen = []
    panns.conv_block1.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    x = 0.1 * torch.randn(4, 32000 * 3)
    with torch.no_grad():
        panns(x)
        set_spec_augment(panns, False)
        panns(x)
    on, off = seen
    stripes = [_stripes(on[i, 0], 0.0) for i in range(4)]
    assert sum(t for t, _ in stripes) > 0 and sum(f for _, f in stripes) > 0
    assert all(_stripes(off[i, 0], 0.0) == (0, 0) for i in range(4))
    assert (panns.frontend.spec_augment.freq_mask, panns.frontend.spec_augment.time_mask,
            panns.frontend.spec_augment.num_masks) == (8, 64, 2)


def test_efficientat_masks_before_its_normalisation():
    """EfficientAT masks the log mel with 0 and then computes (x + 4.5) / 5: masked bins hold 0.9."""
    from hybridlib.models.audio.frontends import EfficientATMel

    torch.manual_seed(0)
    front = EfficientATMel().train()
    x = 0.1 * torch.randn(4, 32000 * 2)
    with torch.no_grad():
        on, _ = front(x)
        set_spec_augment(front, False)
        off, _ = front(x)
    masked = (0.0 + 4.5) / 5.0
    stripes = [_stripes(on[i, 0].T, torch.tensor(masked).item()) for i in range(4)]
    assert sum(t for t, _ in stripes) > 0 and sum(f for _, f in stripes) > 0
    assert all(_stripes(off[i, 0].T, torch.tensor(masked).item()) == (0, 0) for i in range(4))


class _WithSpecAugment(nn.Module):
    """The tiny training model plus a SpecAugment module, to see what training does with the flag."""

    def __init__(self):
        from training_helpers import TinyModel

        super().__init__()
        self.inner = TinyModel()
        self.audio_backbone = nn.Module()
        self.audio_backbone.spec = SpecAugment(4, 4)

    def embed_items(self, batch):
        return self.inner.embed_items(batch)

    def embed_queries(self, batch):
        return self.inner.embed_queries(batch)

    def similarity(self, q, i):
        return self.inner.similarity(q, i)

    def forward(self, batch):
        return self.inner(batch)


@pytest.mark.parametrize("on", [False, True])
def test_training_applies_the_spec_augment_flag(tmp_path, on):
    from training_helpers import tiny_cfg, tiny_training_data

    from hybridlib import runs
    from hybridlib.training import train

    cfg = tiny_cfg(epochs=1, spec_augment=on)
    model = _WithSpecAugment()
    train(cfg, tmp_path, data=tiny_training_data(cfg), model=model, progress=False)
    assert model.audio_backbone.spec.enabled is on
    report = runs.read_ingredients(tmp_path)["audio"]["spec_augment"]
    assert report["modules"]["audio_backbone.spec"]["active"] is on and report["active"] is on


# ---------------------------------------------------------------------------------------- separate text encoders
def test_the_separate_text_encoder_run_has_its_own_row():
    cfg = load_config(experiments_dir() / "hybrid" / "clotho-late-os-separate-text.yaml")
    shared = load_config(experiments_dir() / "hybrid" / "clotho-late-os.yaml")
    assert cfg.paper_row == "hybrid/clotho/late-os/separate-text-encoder" != shared.paper_row
    assert not cfg.model_config().share_text_encoder and shared.model_config().share_text_encoder
    assert paper.paper_row(cfg.paper_row)["t2a_mAP@10"] == 28.05
    finding = next(f for f in paper.HYBRID_FINDINGS if f.key == "shared>separate")
    # V-E's shared-encoder model is Table I's late-os row under its V-E name (reproduce compares it as such)
    assert (finding.better, finding.worse) == ("hybrid/clotho/late-os/shared-text-encoder", cfg.paper_row)
    assert paper.paper_row(finding.better)["t2a_mAP@10"] == paper.paper_row(shared.paper_row)["t2a_mAP@10"]
    assert finding.check({finding.better: {"t2a_mAP@10": 30.0}, cfg.paper_row: {"t2a_mAP@10": 29.0}})["holds"]


# ---------------------------------------------------------------------------------------- Mei et al.'s details
@pytest.mark.parametrize("path", MEI, ids=lambda p: p.stem)
def test_mei_rows_use_their_released_training_details(path):
    cfg = load_config(path)
    m = cfg.model_config()
    assert (cfg.select_metric, cfg.select_on_tie, cfg.grad_clip, cfg.spec_augment) == ("t2a_R-sum", "later", 2.0, True)
    assert (m.text_mode, m.text_max_tokens, m.text_dropout, m.frozen_mode) == ("mei", None, 0.2, "eval")


def test_selection_metric_and_tie_rule():
    from hybridlib.evaluation import metrics_from_similarity
    from hybridlib.training.loop import improves, select_score

    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.1, 0.8], [0.3, 0.2, 0.1]])
    metrics = metrics_from_similarity(sim, torch.tensor([0, 1, 2]))
    assert metrics["t2a_R-sum"] == pytest.approx(metrics["t2a_R@1"] + metrics["t2a_R@5"] + metrics["t2a_R@10"])
    assert select_score(metrics, "t2a_R-sum") == metrics["t2a_R-sum"] != metrics["R-sum"]
    assert improves(5.0, 5.0, "later") and not improves(5.0, 5.0, "earlier") and improves(5.1, 5.0, "earlier")


@pytest.mark.parametrize("on_tie,best", [("earlier", 1), ("later", 3)])
def test_a_tied_validation_score_keeps_the_epoch_the_rule_says(tmp_path, on_tie, best):
    from training_helpers import TinyModel, tiny_cfg, tiny_training_data

    from hybridlib.training import train

    cfg = tiny_cfg(epochs=3, lr=1e-12, lr_min=0.0, schedule="constant", select_on_tie=on_tie, select_metric="t2a_R-sum")
    torch.manual_seed(0)
    result = train(cfg, tmp_path, data=tiny_training_data(cfg), model=TinyModel(dropout=0.0), progress=False)
    scores = [row["val_t2a_R-sum"] for row in result.history]
    assert len(set(scores)) == 1 and result.best_epoch == best


def test_mei_text_mode_no_truncation_and_dropout_reach_the_model():
    from hybridlib.models.config import ModelConfig
    from hybridlib.models.retrieval import RetrievalModel

    cfg = ModelConfig(fusion="mei", audio_dim=8, text_encoder="minilm", text_dim=384, text_trainable=True,
                      text_mode="mei", text_max_tokens=None, text_dropout=0.2, retrieval_dim=16)
    encoder = RetrievalModel(cfg).text_encoder
    assert encoder.text_mode == "mei" and encoder.model.config.hidden_dropout_prob == 0.2
    assert encoder.model.config.attention_probs_dropout_prob == 0.2
    assert encoder.preprocess("A dog's bark, then a field-recording!") == "a dog's bark then a field-recording"
    long = " ".join(["water"] * 50)
    assert encoder.tokenize([long])["input_ids"].shape == (1, 52)  # [CLS] 50 x water [SEP]: not cut at 32


# ---------------------------------------------------------------------------------------- "frozen" as upstream
def test_frozen_mode_train_keeps_frozen_encoders_in_the_model_in_train_mode():
    from test_retrieval_model import TinyBackbone, TinyText, make_batch, small_cfg

    from hybridlib.models.retrieval import RetrievalModel

    ours = RetrievalModel(small_cfg("late"), audio_backbone=TinyBackbone())
    assert ours.audio_backbone is None and ours.cfg.audio_cached  # eval mode, outside the model, cached
    upstream = RetrievalModel(small_cfg("late", frozen_mode="train"), audio_backbone=TinyBackbone(),
                              text_encoder=TinyText()).train()
    assert not upstream.cfg.audio_cached and not upstream.cfg.text_cached
    assert upstream.audio_backbone.training and not any(p.requires_grad for p in upstream.audio_backbone.parameters())
    batch = make_batch(3)
    del batch["frames"], batch["frame_lengths"]
    batch.update(waveform=torch.randn(3, 160), lengths=torch.tensor([160, 120, 80]))
    upstream(batch).sum().backward()
    assert upstream.audio_backbone.conv.weight.grad is None
    assert any(k.startswith("audio_backbone.") for k in upstream.state_dict())  # BatchNorm buffers are saved


def test_frozen_text_encoder_in_train_mode_has_dropout_active():
    from hybridlib.models.text import build_text_encoder

    texts = ["a dog barks", "rain on a tin roof"]
    ours = build_text_encoder("minilm").train()
    upstream = build_text_encoder("minilm", train_when_frozen=True).train()
    assert not any(p.requires_grad for p in upstream.parameters())
    with torch.no_grad():
        assert torch.equal(ours(texts), ours(texts))
        torch.manual_seed(0)
        a = upstream(texts)
        b = upstream(texts)
    assert not torch.allclose(a, b)
