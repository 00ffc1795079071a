"""Fine-tuning only the top text layers (ModelConfig.text_tune_layers): the cached lower-layer states continue
exactly into the encoder's output, the cache stores them batch-invariantly, shared vs separate copies get the
gradients they should, the optimiser's text learning rate, and a real training run on the smoke teaching set."""

from __future__ import annotations

import pytest
import torch

from hybridlib.config import teaching_config
from hybridlib.features.cache import FeatureCache
from hybridlib.features.splits import EncodedSplit, concat_splits
from hybridlib.models.config import ModelConfig
from hybridlib.models.retrieval import RetrievalModel
from hybridlib.models.text import TopLayers, build_text_encoder

TEXTS = ["A dog barks twice.", "rain", "Someone types on a keyboard while a car passes, then a bell rings.",
         "birdsong forest calm"]


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm")


@pytest.fixture(scope="module")
def minilm_mean():
    return build_text_encoder("minilm", pooling="mean")


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_top_layers_continue_the_encoder_exactly(k, pooling, minilm, minilm_mean):
    encoder = minilm if pooling == "cls" else minilm_mean
    hidden, lengths = encoder.hidden_states(TEXTS, encoder.num_layers - k)
    top = TopLayers.from_encoder(encoder, k).eval()
    with torch.no_grad():
        torch.testing.assert_close(top(hidden, lengths), encoder(TEXTS), atol=2e-6, rtol=0)
    assert all(p.requires_grad for p in top.parameters()) and not any(p.requires_grad for p in encoder.parameters())
    with pytest.raises(ValueError, match="text_tune_layers"):
        TopLayers.from_encoder(encoder, 7)


def test_hidden_states_do_not_depend_on_company(minilm):
    alone = minilm.hidden_states_batch_invariant(TEXTS[:1], 5)[0]
    crowd = minilm.hidden_states_batch_invariant(TEXTS[::-1] * 5, 5)[-1]
    assert torch.equal(alone, crowd) and alone.shape == (minilm.token_counts(TEXTS[:1])[0], 384)


def test_hidden_states_cached_once_and_compacted(minilm, tmp_path):
    cache = FeatureCache(tmp_path)
    first = cache.text_hidden_states(TEXTS, minilm, 5, progress=False)
    assert cache.stats["text_computed"] == 4 and [t.shape[0] for t in first] == minilm.token_counts(TEXTS)
    again = FeatureCache(tmp_path)
    second = again.text_hidden_states(TEXTS[::-1], minilm, 5, progress=False)
    assert again.stats == {**again.stats, "text_hits": 4, "text_computed": 0}
    assert all(torch.equal(a, b) for a, b in zip(first, second[::-1]))
    folder = cache.text_dir(minilm) / "hidden-5"
    for i in range(18):  # one shard per call: compaction merges them beyond 16
        cache.text_hidden_states([f"text number {i}"], minilm, 5, progress=False)
    assert len(list(folder.glob("shard-*.safetensors"))) <= 16
    merged = FeatureCache(tmp_path).text_hidden_states(TEXTS, minilm, 5, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first, merged))
    assert not list(cache.text_dir(minilm).glob("shard-*"))  # CLS embeddings live apart, untouched


def _split(minilm, n=3) -> EncodedSplit:
    caps = [f"{t} number {i}" for i in range(n) for t in TEXTS[:2]]
    meta = ["dog bark", None, "keyboard typing bell"][:n]
    caption_hidden = minilm.hidden_states_batch_invariant(caps, 5)
    metadata_hidden = [None if m is None else minilm.hidden_states_batch_invariant([m], 5)[0] for m in meta]
    g = torch.Generator().manual_seed(0)
    return EncodedSplit(name="s", clip_ids=[f"c{i}" for i in range(n)], captions=caps,
                        caption_clip=torch.arange(n).repeat_interleave(2), metadata_text=meta,
                        has_metadata=torch.tensor([m is not None for m in meta]),
                        frames=[torch.randn(5, 12, generator=g) for _ in range(n)],
                        caption_hidden=caption_hidden, metadata_hidden=metadata_hidden)


def _model(minilm, share=True, **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(fusion="late", audio_dim=12, text_dim=384, retrieval_dim=8, num_layers=1, num_heads=2,
                      d_model=16, text_tune_layers=1, share_text_encoder=share, **kw)
    return RetrievalModel(cfg, text_encoder=minilm)


def test_batches_carry_padded_states_and_the_split_helpers_keep_them(minilm):
    split = _split(minilm)
    batch = split.pair_batch(torch.arange(split.n_captions))
    assert batch["caption_hidden"].shape[:2] == (6, max(t.shape[0] for t in split.caption_hidden))
    assert batch["metadata_hidden_lengths"][2:4].tolist() == [1, 1]  # one zero token for a clip without metadata
    assert batch["has_metadata"].tolist() == [True, True, False, False, True, True]
    sub = split.subset([2, 0])
    assert sub.metadata_hidden[0] is split.metadata_hidden[2] and len(sub.caption_hidden) == 4
    joined = concat_splits([split, sub])
    assert len(joined.caption_hidden) == 10 and len(joined.metadata_hidden) == 5
    assert split.without_metadata().metadata_hidden == [None] * 3


def test_cached_states_and_strings_give_the_same_queries_and_items(minilm):
    split, model = _split(minilm), _model(minilm).eval()
    with torch.no_grad():
        from_states = model.embed_queries(split.query_batch(range(split.n_captions)))
        from_strings = model.embed_queries({"captions": split.captions})
        items_states = model.embed_items(split.item_batch(range(3)))
        text_batch = {k: v for k, v in split.item_batch(range(3)).items() if not k.startswith("metadata_hidden")}
        items_text = model.embed_items({**text_batch, "metadata_text": split.metadata_text})
    torch.testing.assert_close(from_states.embedding, from_strings.embedding, atol=1e-6, rtol=0)
    torch.testing.assert_close(items_states.embedding, items_text.embedding, atol=1e-6, rtol=0)


def test_shared_and_separate_copies_get_the_gradients_they_should(minilm):
    split = _split(minilm)
    batch = split.pair_batch(torch.arange(split.n_captions))
    shared, separate = _model(minilm, share=True), _model(minilm, share=False)
    assert shared.metadata_text_top is None and separate.metadata_text_top is not None
    assert len(separate.text_encoder_parameters()) == 2 * len(shared.text_encoder_parameters())
    assert any(k.startswith("text_top.") for k in shared.state_dict())
    assert not any("_frozen" in k or k.startswith("text_encoder.") for k in shared.state_dict())
    # both copies start from the pretrained layer: the untrained models compute the same function
    separate.eval(), shared.eval()
    with torch.no_grad():
        torch.testing.assert_close(separate(batch), shared(batch), atol=1e-6, rtol=0)
    # a loss on the queries alone trains the query copy only
    separate.train()
    separate.embed_queries(batch).embedding.sum().backward()
    assert all(p.grad is not None for p in separate.text_top.parameters())
    assert all(p.grad is None for p in separate.metadata_text_top.parameters())
    separate.zero_grad()
    separate.embed_items(batch).embedding.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in separate.text_top.parameters())
    assert any(p.grad is not None and p.grad.any() for p in separate.metadata_text_top.parameters())


def test_config_rules_and_text_learning_rate(minilm):
    with pytest.raises(ValueError, match="set one of them"):
        ModelConfig(text_tune_layers=1, text_trainable=True).validate()
    with pytest.raises(ValueError, match="non-negative"):
        ModelConfig(text_tune_layers=-1).validate()
    from hybridlib.config import ConfigError
    from hybridlib.training.optim import build_optimizer

    cfg = teaching_config("hybrid-late-text-shared")
    assert cfg.text_lr == 1e-4 and cfg.model_config().text_tune_layers == 1
    model = _model(minilm)
    groups = build_optimizer(model, cfg).param_groups
    assert [g["lr"] for g in groups] == [cfg.lr, cfg.text_lr]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.text_encoder_parameters()}
    assert sum(len(g["params"]) for g in groups) == len([p for p in model.parameters() if p.requires_grad])
    assert len(build_optimizer(model, cfg.replace(text_lr=None)).param_groups) == 1
    with pytest.raises(ConfigError, match="text_lr"):
        cfg.replace(text_lr=-1.0)


@pytest.mark.slow
def test_smoke_training_with_a_tuned_top_layer(tmp_path):
    from hybridlib.features.prepare import data_fingerprint, prepare_data
    from hybridlib.training import train

    shared = teaching_config("hybrid-late-text-shared", smoke=True, epochs=2, tensorboard=False)
    frozen = teaching_config("hybrid-late", smoke=True, epochs=2, tensorboard=False)
    assert data_fingerprint(shared) != data_fingerprint(frozen)
    data = prepare_data(shared, progress=False)
    assert data.train.caption_emb is None and len(data.train.caption_hidden) == data.train.n_captions
    before = {k: v.clone() for k, v in RetrievalModel(shared.model_config()).text_top.state_dict().items()}
    result = train(shared, tmp_path / "shared", data=data, progress=False)
    assert result.finished and result.test_metrics["t2a_mAP@10"] > 0
    after = result.model.text_top.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the top layer trained"
    from hybridlib import runs

    loaded, _ = runs.load_trained(tmp_path / "shared")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in result.model.state_dict().items())
