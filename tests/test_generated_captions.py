"""Captions generated from keywords (the teaching set's WavCaps, hybrid paper Table II): every usable keyword in
every caption, gear words left out, seeded and order-independent, nothing dropped silently; only the training
split gets them."""

from __future__ import annotations

import pytest

from hybridlib.config import ConfigError, teaching_config
from hybridlib.data import ClipSet, Item
from hybridlib.data.generated_captions import GEAR_WORDS, captions_from_keywords
from hybridlib.features.prepare import data_fingerprint, load_items
from hybridlib.util.text import normalize_text


def _items():
    return ClipSet([
        Item("a.wav", None, ["A dog barks.", "Barking.", "A dog."], keywords=["dog", "bark", "zoom h4n", "street"]),
        Item("b.wav", None, ["Rain falls."], keywords=["tascam", "48khz", "stereo"]),
        Item("c.wav", None, ["Wind blows.", "Gusts."], keywords=None),
    ])


def test_every_usable_keyword_in_every_caption():
    out = captions_from_keywords(_items(), seed=0)
    a, b, c = out
    assert len(a.captions) == 3 and a.extra["dataset_captions"] == ["A dog barks.", "Barking.", "A dog."]
    for caption in a.captions:
        words = normalize_text(caption)
        assert all(k in words for k in ("dog", "bark", "street")) and "zoom" not in words
    assert len(set(a.captions)) > 1  # templates and orders vary
    assert all("tascam" in normalize_text(cap) for cap in b.captions)  # only gear words: used anyway
    assert c.captions == ["Wind blows.", "Gusts."] and "kept their own captions" in out.report.notes[-1]
    assert out.report.captions == 6 and _items()[0].captions[0] == "A dog barks."  # input untouched
    assert {"zoom h4n", "48khz"} <= GEAR_WORDS


def test_seeded_and_independent_of_item_order():
    items = _items()
    first = captions_from_keywords(items, seed=3)
    again = captions_from_keywords(ClipSet(items[::-1]), seed=3)
    assert [it.captions for it in first] == [it.captions for it in again][::-1]
    assert [it.captions for it in captions_from_keywords(items, seed=4)] != [it.captions for it in first]
    assert all(len(it.captions) == 2 for it in captions_from_keywords(items, seed=0, n_captions=2)[:2])


@pytest.mark.slow
def test_only_the_training_split_gets_generated_captions():
    cfg = teaching_config("hybrid-late-generated-captions", smoke=True)
    assert cfg.train_captions == "from-keywords" and cfg.paper_row == "hybrid/wavcaps-fs/late-os"
    train = load_items(cfg, "teaching", "development", progress=False, role="train")
    val = load_items(cfg, "teaching", "validation", progress=False, role="val")
    plain = load_items(cfg.replace(train_captions="dataset"), "teaching", "development", progress=False, role="train")
    assert [it.extra["dataset_captions"] for it in train] == [it.captions for it in plain]
    assert all("dataset_captions" not in it.extra for it in val)
    for it in train:
        usable = [k for k in it.keywords if normalize_text(k) not in GEAR_WORDS] or it.keywords
        assert all(normalize_text(k) in normalize_text(c) for c in it.captions for k in usable)
    assert data_fingerprint(cfg) != data_fingerprint(cfg.replace(train_captions="dataset"))
    with pytest.raises(ConfigError, match="train_captions"):
        cfg.replace(train_captions="llm")
