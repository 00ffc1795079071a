"""Clotho reader, metadata rendering and the FS protocol, on the real Clotho CSVs laid out in tmp folders."""

from __future__ import annotations

import shutil

import pytest

from hybridlib.data import DatasetError, Item, load_clotho, metadata_text, with_fs_descriptions
from hybridlib.data.metadata import degrade_metadata, keyword_caption_frequencies
from hybridlib.util.text import normalize_text

SIZES = {"development": 3839, "validation": 1045, "evaluation": 1045}


@pytest.fixture
def clotho_layouts(shared_data, tmp_path):
    """Real v2.1 caption CSVs + v1 dev metadata + the one real wav, in the aac-datasets and flat layouts."""
    v21, v1 = shared_data("clotho", "v2.1"), shared_data("clotho", "v1")
    wav = shared_data("clotho", "audio") / "Distorted AM Radio noise.wav"
    nested = tmp_path / "nested"
    csv_dir = nested / "CLOTHO_v2.1" / "clotho_csv_files"
    csv_dir.mkdir(parents=True)
    flat = tmp_path / "flat"
    flat.mkdir()
    for split in SIZES:
        for folder in (csv_dir, flat):
            shutil.copy(v21 / f"clotho_captions_{split}.csv", folder)
    for folder in (csv_dir, flat):
        shutil.copy(v1 / "clotho_metadata_development.csv", folder)
    (nested / "CLOTHO_v2.1" / "clotho_audio_files" / "development").mkdir(parents=True)
    shutil.copy(wav, nested / "CLOTHO_v2.1" / "clotho_audio_files" / "development")
    (flat / "development").mkdir()
    shutil.copy(wav, flat / "development")
    return {"nested": nested, "flat": flat}


@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_load_clotho_real_counts(clotho_layouts, layout):
    root = clotho_layouts[layout]
    dev = load_clotho(root, "development")
    assert len(dev) == 3839
    rep = dev.report
    assert (rep.clips, rep.captions, rep.missing_metadata, rep.missing_audio) == (3839, 5 * 3839, 3839 - 2893, 3838)
    assert rep.metadata_without_clip == 0
    radio = dev.by_id()["Distorted AM Radio noise.wav"]
    assert radio.keywords == ["noise", "radio"]
    assert radio.audio_path is not None and radio.audio_path.is_file()
    assert radio.captions[0] == "A muddled noise of broken channel of the TV"
    assert radio.extra["sound_id"] == "117790"
    assert metadata_text(radio, "os") == "noise radio"
    for split in ("validation", "evaluation"):
        other = load_clotho(root, split)
        assert len(other) == SIZES[split]
        assert other.report.missing_metadata == SIZES[split]  # no metadata CSV for these splits here
        assert all(it.keywords is None for it in other)


def test_load_clotho_root_can_be_the_clotho_folder(clotho_layouts):
    dev = load_clotho(clotho_layouts["nested"] / "CLOTHO_v2.1", "dev")
    assert len(dev) == 3839 and dev[0].split == "development"


def test_latin1_metadata_is_decoded(tmp_path):
    cols = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5"
    (tmp_path / "clotho_captions_development.csv").write_text(f"{cols}\na.wav,c1,c2,c3,c4,c5\n")
    (tmp_path / "clotho_metadata_development.csv").write_bytes("file_name,keywords\na.wav,café;noise\n".encode("iso-8859-1"))
    item = load_clotho(tmp_path, "development")[0]
    assert item.keywords == ["café", "noise"] and item.captions == ["c1", "c2", "c3", "c4", "c5"]


def test_require_audio_excludes_and_counts(clotho_layouts):
    dev = load_clotho(clotho_layouts["nested"], "development", require_audio=True)
    assert [it.clip_id for it in dev] == ["Distorted AM Radio noise.wav"]
    assert dev.report.excluded == 3838 and dev.report.missing_audio == 3838


def test_clipset_slices_and_targets(clotho_layouts):
    dev = load_clotho(clotho_layouts["flat"], "development")
    part = dev[:10]
    assert type(part).__name__ == "ClipSet" and part.report.clips == 10
    assert len(part.captions) == 50 and part.caption_targets[:6] == [0, 0, 0, 0, 0, 1]


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="No Clotho captions"):
        load_clotho(tmp_path, "development")
    with pytest.raises(ValueError, match="unknown clotho split"):
        load_clotho(tmp_path, "training")
    bad = tmp_path / "clotho_captions_development.csv"
    bad.write_text("file_name,caption_1\na.wav,hello\n")
    with pytest.raises(DatasetError, match=r"clotho_captions_development\.csv.*caption_2"):
        load_clotho(tmp_path, "development")
    bad.write_text("file_name,caption_1,caption_2,caption_3,caption_4,caption_5\na.wav,x,,,,\na.wav,y,,,,\n")
    with pytest.raises(DatasetError, match="duplicate file_name 'a.wav'"):
        load_clotho(tmp_path, "development")


def test_normalize_and_metadata_text():
    assert normalize_text("A Dog's  bark, then: RAIN!") == "a dogs bark then rain"
    assert normalize_text("field-recording_zoom") == "field recording zoom"
    item = Item("x.wav", None, ["c"], keywords=["Field-Recording", "Dog!"], tags=["Dog", "Bark"],
                description="A dog barks.")
    assert metadata_text(item, "os") == "field recording dog"
    assert metadata_text(item, "cs") == "dog bark"
    assert metadata_text(item, "fs") == "a dog barks"
    assert metadata_text(Item("y", None, ["c"], keywords=[]), "os") is None
    assert metadata_text(Item("y", None, ["c"]), "cs") is None
    with pytest.raises(ValueError, match="Unknown metadata kind"):
        metadata_text(item, "xx")


def test_fs_protocol_moves_one_caption(clotho_layouts):
    dev = load_clotho(clotho_layouts["flat"], "development")[:200]
    fs = with_fs_descriptions(dev, seed=0)
    assert len(fs) == 200 and fs.report.captions == 800 and fs.report.missing_metadata == 0
    for before, after in zip(dev, fs):
        k = after.extra["fs_caption_index"]
        assert after.description == before.captions[k]
        assert after.captions == before.captions[:k] + before.captions[k + 1:]
        assert len(before.captions) == 5  # input untouched
    picks = [it.extra["fs_caption_index"] for it in fs]
    assert len(set(picks)) == 5  # spread over caption positions
    again = with_fs_descriptions(list(reversed(dev)), seed=0)
    assert [it.description for it in reversed(again)] == [it.description for it in fs]  # order independent
    other = with_fs_descriptions(dev, seed=1)
    assert [it.description for it in other] != [it.description for it in fs]
    single = with_fs_descriptions([Item("a", None, ["only"])])
    assert single[0].description is None and single[0].captions == ["only"]


def test_degradation_knobs():
    items = [Item(f"c{i}", None, ["cap"], keywords=["dog", "bark", f"k{i}", "rain"]) for i in range(200)]
    same = degrade_metadata(items, "os", seed=3)
    assert [it.keywords for it in same] == [it.keywords for it in items]
    dropped = degrade_metadata(items, "os", drop_tags=0.5, seed=3)
    n_kept = sum(len(it.keywords) for it in dropped)
    assert 300 < n_kept < 500  # ~400 of 800 kept
    assert all(set(a.keywords) <= set(b.keywords) for a, b in zip(dropped, items))
    removed = degrade_metadata(items, "os", remove_metadata=0.25, seed=3)
    assert sum(it.keywords is None for it in removed) == 50 and removed.report.missing_metadata == 50
    more = degrade_metadata(items, "os", remove_metadata=0.5, seed=3)
    gone25 = {it.clip_id for it in removed if it.keywords is None}
    gone50 = {it.clip_id for it in more if it.keywords is None}
    assert gone25 < gone50  # nested sweep
    noisy = degrade_metadata(items, "os", add_distractors=1.0, seed=3)
    for a, b in zip(noisy, items):
        assert a.keywords[:4] == b.keywords and len(a.keywords) == 8
        assert not set(a.keywords[4:]) & set(b.keywords)
    swapped = degrade_metadata(items, "os", swap_synonyms=1.0, seed=3, synonyms={"dog": ["canine"]})
    assert all(it.keywords[0] == "canine" and it.keywords[1:] == ["bark", f"k{i}", "rain"]
               for i, it in enumerate(swapped))
    assert items[0].keywords[0] == "dog"  # originals untouched
    with pytest.raises(ValueError, match="drop_tags"):
        degrade_metadata(items, drop_tags=1.5)


def test_fig4_frequencies(clotho_layouts):
    dev = load_clotho(clotho_layouts["flat"], "development")
    table = keyword_caption_frequencies(dev, top=15)
    assert len(table) == 15
    assert table["clips"].is_monotonic_decreasing
    assert table["keyword_freq"].between(0, 1).all() and table["caption_freq"].between(0, 1).all()
    top = dict(zip(table["keyword"], table["caption_freq"]))
    # sanity on real data: common Clotho keywords such as "water" appear in captions too
    assert "water" in top and top["water"] > 0.02


def test_word_counts_on_real_captions(clotho_layouts):
    from hybridlib.data.metadata import word_counts

    assert word_counts(["A dog barks, then THE dog's bell."]) == {"dog": 1, "barks": 1, "dogs": 1, "bell": 1}
    dev = load_clotho(clotho_layouts["flat"], "development")
    counts = word_counts(dev.captions)
    assert "the" not in counts and counts["water"] > 500  # water is among Clotho's most common content words
