"""Text encoder: paper preprocessing, WordPiece truncation at 32 tokens, CLS/mean pooling, frozen/trainable."""

from __future__ import annotations

import pytest
import torch

from hybridlib.models.text import build_text_encoder


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm")


def test_queries_and_metadata_are_normalised_alike(minilm):
    """The one normaliser: a hyphenated tag tokenises the same as query text and as metadata."""
    from hybridlib.data import Item, metadata_text

    assert minilm.preprocess("A Dog's bark, LOUD!  Then: silence...") == "a dogs bark loud then silence"
    query = minilm.tokenize(["a field-recording"])["input_ids"][0].tolist()
    meta = metadata_text(Item("x", None, ["c"], keywords=["a", "field-recording"]), "os")
    assert meta == "a field recording" and minilm.tokenize([meta])["input_ids"][0].tolist() == query
    with pytest.raises(TypeError, match="None"):
        minilm.preprocess(None)


def test_tokenization_pads_to_longest_and_truncates_at_32(minilm):
    long = " ".join(["water"] * 50)
    batch = minilm.tokenize(["Rain!", "a loud bell"])
    assert batch["input_ids"].shape == (2, 5)  # [CLS] a loud bell [SEP] is the longest
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    ids = minilm.tokenize([long, "rain"])["input_ids"]
    assert ids.shape == (2, 32)
    assert (
        ids[0, 0].item() == minilm.tokenizer.cls_token_id
        and ids[0, -1].item() == minilm.tokenizer.sep_token_id
    )
    # punctuation never reaches the tokenizer
    assert (
        minilm.tokenize(["rain, rain!"])["input_ids"].tolist()
        == minilm.tokenize(["rain rain"])["input_ids"].tolist()
    )


def test_cls_embedding_shape_and_semantics(minilm):
    assert minilm.embed_dim == 384
    with torch.inference_mode():
        emb = minilm(["A dog barks loudly", "a dog is barking", "rain falls on a tin roof"])
    assert emb.shape == (3, 384)
    emb = torch.nn.functional.normalize(emb, dim=-1)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2
    # CLS is the first hidden state of the underlying model
    batch = minilm.tokenize(["A dog barks loudly"])
    with torch.inference_mode():
        hidden = minilm.model(**batch).last_hidden_state
        torch.testing.assert_close(minilm(["A dog barks loudly"]), hidden[:, 0])


def test_padding_does_not_change_embeddings(minilm):
    with torch.inference_mode():
        alone = minilm(["rain"])
        batched = minilm(["rain", "a long sentence about many birds singing in a forest"])
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-5)


def test_mean_pooling_averages_non_padding_tokens():
    enc = build_text_encoder("minilm", pooling="mean", max_tokens=8)
    batch = enc.tokenize(["rain", "birds sing in the morning forest"])
    with torch.inference_mode():
        hidden = enc.model(**batch).last_hidden_state
        out = enc(["rain", "birds sing in the morning forest"])
    torch.testing.assert_close(out[0], hidden[0, :3].mean(0))
    torch.testing.assert_close(out[1], hidden[1].mean(0))
    assert batch["input_ids"].shape[1] == 8
    with pytest.raises(ValueError, match="pooling"):
        build_text_encoder("minilm", pooling="max")


@pytest.mark.slow
def test_frozen_vs_trainable(minilm):
    assert not any(p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert minilm.training and not minilm.model.training  # frozen: no dropout
    out = minilm(["a dog"])
    assert not out.requires_grad
    minilm.eval()
    enc = build_text_encoder("minilm", trainable=True).train()
    assert enc.model.training and all(p.requires_grad for p in enc.parameters())
    out = enc(["a dog barks", "rain"])
    out.pow(2).sum().backward()
    grad = enc.model.embeddings.word_embeddings.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_unknown_model_fails_with_clear_message(tmp_path):
    with pytest.raises(OSError, match="cannot load text model"):
        build_text_encoder(str(tmp_path / "no-such-model"))
