"""RetrievalModel: shapes, gradients, embed/similarity vs forward, chunking, missing metadata, determinism."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from hybridlib.models.config import FUSIONS, ModelConfig
from hybridlib.models.retrieval import (
    ItemEmbeddings,
    QueryEmbeddings,
    RetrievalModel,
    concat_items,
    concat_queries,
)

DA, DT, R, T = 12, 16, 8, 9


def small_cfg(fusion: str, **kw) -> ModelConfig:
    values = dict(fusion=fusion, audio_dim=DA, text_dim=DT, retrieval_dim=R, num_layers=1, num_heads=2,
                  dropout=0.1)
    values.update(kw)
    return ModelConfig(**values)


def make_batch(b: int = 5, seed: int = 1, missing: tuple[int, ...] = (1,)) -> dict:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([T - (i % 4) for i in range(b)])
    frames = torch.randn(b, T, DA, generator=g)
    for i, n in enumerate(lengths):
        frames[i, n:] = 0.0  # padding as a collate function would produce it
    has = torch.ones(b, dtype=torch.bool)
    has[list(missing)] = False
    meta = torch.randn(b, DT, generator=g) * has[:, None]
    return {"clip_index": torch.arange(b), "frames": frames, "frame_lengths": lengths, "metadata_emb": meta,
            "has_metadata": has, "caption_emb": torch.randn(b, DT, generator=g)}


def take(batch: dict, sl: slice) -> dict:
    return {k: v[sl] for k, v in batch.items()}


ALL = [(f, m) for f in FUSIONS for m in ("learned", "audio-only") if not (f == "metadata-only" and m == "audio-only")]


@pytest.mark.parametrize("fusion,missing", ALL)
def test_shapes_at_every_stage(fusion, missing):
    model = RetrievalModel(small_cfg(fusion, missing_metadata=missing)).eval()
    batch = make_batch(5)
    items, stages = model.embed_items(batch, return_stages=True)
    queries = model.embed_queries(batch)
    assert isinstance(items, ItemEmbeddings) and isinstance(queries, QueryEmbeddings)
    assert items.embedding.shape == (5, R) and queries.embedding.shape == (5, R)
    torch.testing.assert_close(items.embedding.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(queries.embedding.norm(dim=1), torch.ones(5))
    assert items.clip_index.tolist() == queries.clip_index.tolist() == [0, 1, 2, 3, 4]
    expected = {
        "none": {"frames": (5, T, DA), "audio": (5, DT), "item": (5, R)},
        "metadata-only": {"metadata": (5, DT), "item": (5, R)},
        "late": {"frames": (5, T, DA), "metadata": (5, DT), "audio": (5, DT), "fused": (5, DT), "item": (5, R)},
        "mid": {"frames": (5, T, DA), "metadata": (5, DT), "audio": (5, DT), "metadata_token": (5, DT),
                "item": (5, R)},
        "mei": {"frames": (5, T, DA), "audio": (5, DA), "item": (5, R)},
    }[fusion]
    assert {k: tuple(v.shape) for k, v in stages.items()} == expected
    if fusion == "mid":
        assert items.metadata.shape == (5, R) and queries.metadata.shape == (5, R)
        assert queries.weights.shape == (5, 2)
        torch.testing.assert_close(items.metadata.norm(dim=1), torch.ones(5))
    else:
        assert items.metadata is None and queries.metadata is None and queries.weights is None
    sim = model(batch)
    assert sim.shape == (5, 5)
    assert bool((sim.abs() <= 1 + 1e-5).all())  # cosine similarities (or convex mixes of them)


@pytest.mark.parametrize("fusion,missing", ALL)
def test_gradient_reaches_every_trainable_parameter(fusion, missing):
    model = RetrievalModel(small_cfg(fusion, missing_metadata=missing)).train()
    sim = model(make_batch(6, missing=(1, 4)))
    loss = -torch.log_softmax(sim / 0.07, dim=1).diagonal().mean()  # any loss on [B, B] will do
    loss.backward()
    params = dict(model.named_parameters())
    assert params, "model has no trainable parameters"
    no_grad = [n for n, p in params.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert no_grad == []


@pytest.mark.parametrize("fusion,missing", ALL)
def test_embed_then_similarity_equals_forward(fusion, missing):
    model = RetrievalModel(small_cfg(fusion, missing_metadata=missing)).eval()
    batch = make_batch(5)
    with torch.no_grad():
        sim = model.similarity(model.embed_queries(batch), model.embed_items(batch))
        torch.testing.assert_close(model(batch), sim.T)
    assert sim.shape == (5, 5)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_chunked_embedding_equals_whole(fusion):
    model = RetrievalModel(small_cfg(fusion)).eval()
    batch = make_batch(7, missing=(1, 5))
    with torch.no_grad():
        whole_items, whole_queries = model.embed_items(batch), model.embed_queries(batch)
        chunks = [slice(0, 3), slice(3, 4), slice(4, 7)]
        items = concat_items([model.embed_items(take(batch, s)) for s in chunks])
        queries = concat_queries([model.embed_queries(take(batch, s)) for s in chunks])
    for a, b in [(items, whole_items), (queries, whole_queries)]:
        for name in ("embedding", "metadata", "weights", "has_metadata", "metadata_mask", "clip_index"):
            x, y = getattr(a, name, None), getattr(b, name, None)
            assert (x is None) == (y is None), name
            if x is not None:
                torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.similarity(queries, items), model.similarity(whole_queries, whole_items),
                               atol=1e-5, rtol=1e-5)


def test_concat_rejects_mixed_chunks():
    a = ItemEmbeddings(torch.zeros(2, 3), has_metadata=torch.ones(2, dtype=torch.bool))
    b = ItemEmbeddings(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="has_metadata"):
        concat_items([a, b])
    with pytest.raises(ValueError, match="nothing to concatenate"):
        concat_queries([])


def test_mid_query_weights_sum_to_one_and_missing_metadata_gets_zero_weight():
    model = RetrievalModel(small_cfg("mid", missing_metadata="audio-only")).eval()
    batch = make_batch(4, missing=(2,))
    with torch.no_grad():
        items, queries = model.embed_items(batch), model.embed_queries(batch)
        w = model.score_weights(queries, items)
    torch.testing.assert_close(queries.weights.sum(dim=1), torch.ones(4))
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(4, 4))
    torch.testing.assert_close(w[:, 2], torch.tensor([[1.0, 0.0]] * 4))
    torch.testing.assert_close(w[:, 0], queries.weights)
    # item 2's score is exactly the audio cosine
    torch.testing.assert_close(model.similarity(queries, items)[:, 2], (queries.embedding @ items.embedding.T)[:, 2])


def test_mid_audio_only_masks_the_metadata_token():
    model = RetrievalModel(small_cfg("mid", missing_metadata="audio-only")).eval()
    batch = make_batch(4, missing=(2,))
    changed = dict(batch, metadata_emb=batch["metadata_emb"].clone())
    changed["metadata_emb"][2] = 5.0  # content of an absent row must not matter
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(changed))
        a = model.embed_items(batch)
        # an item's audio vector is unaffected by masked metadata but affected by present metadata
        changed["metadata_emb"][0] += 1.0
        b = model.embed_items(changed)
    torch.testing.assert_close(a.embedding[2], b.embedding[2])
    assert not torch.allclose(a.embedding[0], b.embedding[0])


def test_mid_learned_missing_metadata_takes_part_in_scoring():
    model = RetrievalModel(small_cfg("mid", missing_metadata="learned")).eval()
    batch = make_batch(4, missing=(2,))
    with torch.no_grad():
        items, queries = model.embed_items(batch), model.embed_queries(batch)
        assert items.metadata_mask.all() and items.has_metadata.tolist() == [True, True, False, True]
        torch.testing.assert_close(model.score_weights(queries, items)[:, 2], queries.weights)
        before = items.metadata[2].clone()
        model.missing.embedding.add_(1.0)
        after = model.embed_items(batch)
    assert not torch.allclose(before, after.metadata[2])
    torch.testing.assert_close(items.metadata[[0, 1, 3]], after.metadata[[0, 1, 3]])


def _late_from_baseline(missing: str) -> tuple[RetrievalModel, RetrievalModel]:
    torch.manual_seed(3)
    base = RetrievalModel(small_cfg("none", dropout=0.0)).eval()
    late = RetrievalModel(small_cfg("late", dropout=0.0, missing_metadata=missing)).eval()
    result = late.load_state_dict(base.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys == (["missing.embedding"] if missing == "learned" else [])
    return base, late


def test_late_fusion_with_zero_metadata_equals_baseline():
    base, late = _late_from_baseline("learned")
    batch = make_batch(5, missing=())
    batch["metadata_emb"] = torch.zeros_like(batch["metadata_emb"])
    with torch.no_grad():
        torch.testing.assert_close(late.embed_items(batch).embedding, base.embed_items(batch).embedding)
        torch.testing.assert_close(late(batch), base(batch))


def test_late_audio_only_items_without_metadata_equal_baseline():
    base, late = _late_from_baseline("audio-only")
    batch = make_batch(5, missing=(1, 3))
    with torch.no_grad():
        b, lt = base.embed_items(batch).embedding, late.embed_items(batch).embedding
    torch.testing.assert_close(lt[[1, 3]], b[[1, 3]])
    assert not torch.allclose(lt[[0, 2, 4]], b[[0, 2, 4]])


def test_late_learned_missing_embedding_stands_in():
    base, late = _late_from_baseline("learned")
    batch = make_batch(3, missing=(1,))
    manual = dict(batch, metadata_emb=batch["metadata_emb"].clone(), has_metadata=torch.ones(3, dtype=torch.bool))
    manual["metadata_emb"][1] = late.missing.embedding.detach()
    with torch.no_grad():
        torch.testing.assert_close(late.embed_items(batch).embedding, late.embed_items(manual).embedding)


def test_metadata_only_ignores_audio_and_uses_metadata():
    model = RetrievalModel(small_cfg("metadata-only")).eval()
    batch = make_batch(3)
    no_audio = {k: v for k, v in batch.items() if k not in ("frames", "frame_lengths")}
    with torch.no_grad():
        emb = model.embed_items(no_audio).embedding
        expected = model.item_proj(batch["metadata_emb"][[0, 2]])
    torch.testing.assert_close(emb[[0, 2]], expected / expected.norm(dim=1, keepdim=True))


def test_mei_uses_max_plus_mean_and_mlp_heads():
    model = RetrievalModel(small_cfg("mei", retrieval_dim=R)).eval()
    assert [type(m) for m in model.item_proj] == [nn.Linear, nn.ReLU, nn.Linear]
    assert model.item_proj[0].out_features == 2 * R and model.query_proj[0].in_features == DT
    batch = make_batch(2)
    n = int(batch["frame_lengths"][1])
    pooled = batch["frames"][1, :n].amax(0) + batch["frames"][1, :n].mean(0)
    with torch.no_grad():
        out = model.embed_items(batch).embedding[1]
        expected = model.item_proj(pooled)
    torch.testing.assert_close(out, expected / expected.norm())


@pytest.mark.parametrize("fusion", FUSIONS)
def test_same_seed_same_model(fusion):
    batch = make_batch(4)
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        model = RetrievalModel(small_cfg(fusion)).eval()
        with torch.no_grad():
            outs.append(model(batch))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.allclose(outs[0], outs[2])


def test_share_projection_uses_one_module():
    model = RetrievalModel(small_cfg("late", d_model=DT, share_projection=True)).eval()
    assert model.query_proj is None
    assert not any(k.startswith("query_proj") for k in model.state_dict())
    q = torch.randn(2, DT)
    with torch.no_grad():
        emb = model.embed_queries({"caption_emb": q}).embedding
        expected = model.item_proj(q)
    torch.testing.assert_close(emb, expected / expected.norm(dim=1, keepdim=True))


def test_config_validation_names_the_field():
    cases = [
        (dict(fusion="early"), "fusion"),
        (dict(pooling="attention"), "pooling"),
        (dict(fusion="mid", pooling="mean"), "pooling"),
        (dict(fusion="metadata-only", missing_metadata="audio-only"), "missing_metadata"),
        (dict(missing_metadata="zero"), "missing_metadata"),
        (dict(retrieval_dim=0), "retrieval_dim"),
        (dict(d_model=10, num_heads=4), "d_model"),
        (dict(fusion="mid", share_projection=True), "share_projection"),
        (dict(metadata_kind="xx"), "metadata_kind"),
        (dict(dropout=1.5), "dropout"),
    ]
    for values, field in cases:
        with pytest.raises(ValueError, match=field):
            ModelConfig(**values).validate()


def test_config_round_trip_and_unknown_keys():
    cfg = small_cfg("mid", missing_metadata="audio-only")
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="fuson"):
        ModelConfig.from_dict({"fuson": "late"})


def test_bad_batches_raise_clear_errors():
    model = RetrievalModel(small_cfg("late"))
    batch = make_batch(2)
    with pytest.raises(KeyError, match="frames"):
        model.embed_items({k: v for k, v in batch.items() if k != "frames"})
    with pytest.raises(KeyError, match="metadata_emb"):
        model.embed_items({k: v for k, v in batch.items() if k != "metadata_emb"})
    with pytest.raises(ValueError, match="audio_dim"):
        model.embed_items(dict(batch, frames=torch.randn(2, T, DA + 1)))
    with pytest.raises(ValueError, match="text_dim"):
        model.embed_queries({"caption_emb": torch.randn(2, DT + 1)})
    with pytest.raises(ValueError, match="has_metadata"):
        model.embed_items(dict(batch, has_metadata=torch.ones(3, dtype=torch.bool)))


class TinyBackbone(nn.Module):
    """Contract-shaped audio backbone (waveform [B, N] -> frames [B, N // 16, D]) for plumbing tests."""

    embed_dim, sample_rate, name = DA, 16000, "tiny"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, DA, kernel_size=16, stride=16)

    def forward(self, waveform, lengths=None):
        frames = self.conv(waveform[:, None]).transpose(1, 2)
        n = torch.full((waveform.shape[0],), waveform.shape[1]) if lengths is None else lengths
        return frames, torch.clamp(n // 16, min=1)


class TinyText(nn.Module):
    """Contract-shaped text encoder (list[str] -> [B, D]) hashing characters into an embedding bag."""

    embed_dim = DT

    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(64, DT, mode="mean")

    def forward(self, texts):
        ids = [torch.tensor([ord(c) % 64 for c in t] or [0]) for t in texts]
        offsets = torch.tensor([0] + [len(i) for i in ids[:-1]]).cumsum(0)
        return self.bag(torch.cat(ids), offsets)


def test_trainable_backbone_runs_on_waveforms_and_gets_gradients():
    model = RetrievalModel(small_cfg("late", audio_trainable=True), audio_backbone=TinyBackbone()).train()
    assert any(k.startswith("audio_backbone.") for k in model.state_dict())
    batch = make_batch(3)
    del batch["frames"], batch["frame_lengths"]
    batch.update(waveform=torch.randn(3, 160), lengths=torch.tensor([160, 120, 80]))
    model(batch).sum().backward()
    assert model.audio_backbone.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["panns-cnn14", "panns-resnet38", "efficientat-mn10", "sfx-cnn"])
def test_a_trainable_backbone_trains_everything_but_its_tagging_head(name):
    """The AudioSet tagging heads (PANNs fc1/fc_audioset, EfficientAT classifier) are frozen in a retrieval model:
    every parameter left trainable gets a gradient (DistributedDataParallel requires it), and the trainable count
    leaves the heads out; their weights stay (official checkpoints load completely; clip_logits still tags)."""
    from hybridlib.models.audio import build_audio_backbone, tagging_head_parameters
    from hybridlib.training.ingredients import parameter_report

    torch.manual_seed(0)
    backbone = build_audio_backbone(name, pretrained=False)
    head = tagging_head_parameters(backbone)
    assert bool(head) == (name != "sfx-cnn")
    model = RetrievalModel(small_cfg("mei", audio_dim=backbone.embed_dim, audio_trainable=True),
                           audio_backbone=backbone).train()
    assert not any(p.requires_grad for p in head)
    rate = backbone.sample_rate
    batch = {"clip_index": torch.arange(2), "waveform": torch.randn(2, rate), "lengths": torch.tensor([rate, rate // 2]),
             "caption_emb": torch.randn(2, DT)}
    sim = model(batch)
    (-torch.log_softmax(sim / 0.07, dim=1).diagonal().mean()).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
    counts = parameter_report(model)["audio_backbone"]
    assert counts["trainable"] == counts["total"] - sum(p.numel() for p in head) > 0
    assert any(k.startswith("audio_backbone.") and k.split(".")[1] in backbone.tagging_head
               for k in model.state_dict()) == bool(head)  # kept in the saved model


def test_frozen_encoders_stay_out_of_state_dict_and_encode_strings():
    text, backbone = TinyText(), TinyBackbone()
    model = RetrievalModel(small_cfg("late"), text_encoder=text, audio_backbone=backbone).eval()
    keys = list(model.state_dict())
    assert not any(k.startswith(("text_encoder", "audio_backbone", "metadata_text_encoder")) for k in keys)
    assert not any(p.requires_grad for p in text.parameters())
    batch = {"clip_index": torch.arange(2), "waveform": torch.randn(2, 64), "captions": ["a dog barks", "rain"],
             "metadata_text": ["dog bark", None]}
    cached = {"clip_index": torch.arange(2), "waveform": batch["waveform"],
              "caption_emb": text(batch["captions"]),
              "metadata_emb": torch.cat([text(["dog bark"]), torch.zeros(1, DT)]),
              "has_metadata": torch.tensor([True, False])}
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(cached))
        assert model.embed_items(batch).has_metadata.tolist() == [True, False]


@pytest.mark.parametrize("share", [True, False])
def test_trainable_text_encoder_shared_or_separate(share):
    cfg = small_cfg("late", text_trainable=True, share_text_encoder=share)
    model = RetrievalModel(cfg, text_encoder=TinyText()).train()
    assert (model.metadata_text_encoder is None) == share
    batch = make_batch(3)
    del batch["caption_emb"], batch["metadata_emb"], batch["has_metadata"]
    batch.update(captions=["a dog barks loudly", "rain on a roof", "birds sing"],
                 metadata_text=["dog", "rain roof", ""])
    model(batch).sum().backward()
    assert model.text_encoder.bag.weight.grad.abs().sum() > 0
    if not share:
        assert model.metadata_text_encoder.bag.weight.grad.abs().sum() > 0
        assert model.metadata_text_encoder.bag.weight.data_ptr() != model.text_encoder.bag.weight.data_ptr()


# ---------------------------------------------------------------- with the real offline encoders
@pytest.fixture(scope="module")
def minilm():
    from hybridlib.bundled import BundledModelMissing

    try:
        from hybridlib.models.text import build_text_encoder

        return build_text_encoder("minilm")
    except BundledModelMissing as exc:  # pragma: no cover - make test installs it
        pytest.skip(str(exc))


@pytest.mark.slow
def test_frozen_minilm_strings_equal_cached_embeddings(minilm):
    cfg = ModelConfig(fusion="mid", audio_dim=DA, num_layers=1, retrieval_dim=R)
    model = RetrievalModel(cfg, text_encoder=minilm).eval()
    assert not any(p.requires_grad for p in minilm.parameters())
    assert sum(p.numel() for p in model.parameters()) < 3_000_000  # encoder weights are not model weights
    captions, meta = ["A dog barks twice.", "Rain falls on a tin roof"], ["dog bark animal", None]
    frames = torch.randn(2, T, DA)
    with torch.no_grad():
        raw = model({"frames": frames, "captions": captions, "metadata_text": meta})
        cached = model({"frames": frames, "caption_emb": minilm(captions),
                        "metadata_emb": torch.cat([minilm(meta[:1]), torch.zeros(1, 384)]),
                        "has_metadata": torch.tensor([True, False])})
    torch.testing.assert_close(raw, cached)


@pytest.mark.slow
def test_trainable_minilm_separate_metadata_encoder_gets_its_own_gradients(minilm):
    import copy

    cfg = ModelConfig(fusion="late", audio_dim=DA, num_layers=1, retrieval_dim=R, text_trainable=True,
                      share_text_encoder=False)
    model = RetrievalModel(cfg, text_encoder=copy.deepcopy(minilm)).train()
    assert model.metadata_text_encoder is not model.text_encoder
    batch = {"frames": torch.randn(2, T, DA), "captions": ["a dog barks", "rain on a roof"],
             "metadata_text": ["dog", "rain roof"]}
    model(batch).diagonal().sum().backward()
    for encoder in (model.text_encoder, model.metadata_text_encoder):
        grads = [p.grad for p in encoder.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads[:5])
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_trainable_sfx_cnn_backbone_on_waveforms():
    from hybridlib.bundled import BundledModelMissing

    try:
        from hybridlib.models.audio import build_audio_backbone

        backbone = build_audio_backbone("sfx-cnn")
    except BundledModelMissing as exc:  # pragma: no cover
        pytest.skip(str(exc))
    cfg = ModelConfig(fusion="none", audio_dim=512, text_dim=DT, num_layers=1, num_heads=2, retrieval_dim=R,
                      audio_trainable=True)
    model = RetrievalModel(cfg, audio_backbone=backbone).train()
    n = 44100
    batch = {"waveform": torch.randn(2, n) * 0.1, "lengths": torch.tensor([n, n // 2]),
             "caption_emb": torch.randn(2, DT)}
    model(batch).diagonal().sum().backward()
    grads = [p.grad for p in model.audio_backbone.parameters() if p.requires_grad]
    assert grads and sum(float(g.abs().sum()) for g in grads if g is not None) > 0


@pytest.mark.parametrize("fusion", FUSIONS)
def test_normalize_false_gives_raw_dot_products(fusion):
    torch.manual_seed(0)
    model = RetrievalModel(small_cfg(fusion, normalize=False)).eval()
    batch = make_batch(4)
    with torch.no_grad():
        items, queries = model.embed_items(batch), model.embed_queries(batch)
    assert not torch.allclose(items.embedding.norm(dim=1), torch.ones(4))
    assert not torch.allclose(queries.embedding.norm(dim=1), torch.ones(4))


@pytest.mark.parametrize("fusion,extra", [(f, {}) for f in FUSIONS] + [("late", {"share_projection": True})])
def test_state_dict_round_trips_through_safetensors(fusion, extra, tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = RetrievalModel(small_cfg(fusion, **extra)).eval()
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))  # fails on aliased tensors
    torch.manual_seed(1)
    again = RetrievalModel(ModelConfig.from_dict(model.cfg.to_dict())).eval()
    again.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    batch = make_batch(3)
    with torch.no_grad():
        torch.testing.assert_close(again(batch), model(batch), rtol=0, atol=0)


@pytest.mark.slow
def test_frozen_text_encoder_is_built_lazily_for_string_queries(minilm):
    model = RetrievalModel(ModelConfig(fusion="none", audio_dim=DA, num_layers=1, retrieval_dim=R)).eval()
    assert model._frozen == {}
    captions = ["a dog barks", "rain falls on a roof"]
    with torch.no_grad():
        from_strings = model.embed_queries({"captions": captions}).embedding
        cached = model.embed_queries({"caption_emb": minilm(captions)}).embedding
    assert "text" in model._frozen and not any(k.startswith("text") for k in model.state_dict())
    torch.testing.assert_close(from_strings, cached)
