"""WavCaps' FreeSound subset in aac-datasets' layout: items, metadata, the Clotho blacklist, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from hybridlib.data import DatasetError
from hybridlib.data.loaders import load_split
from hybridlib.data.wavcaps import load_wavcaps_freesound
from hybridlib.util.errors import UserError


def _wavcaps(root, entries, audio=None, blacklist=None):
    base = root / "WavCaps"
    (base / "json_files" / "FreeSound").mkdir(parents=True)
    (base / "json_files" / "FreeSound" / "fsd_final.json").write_text(json.dumps({"data": entries}))
    (base / "Audio" / "FreeSound").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for clip in audio if audio is not None else [e["id"] for e in entries]:
        sf.write(str(base / "Audio" / "FreeSound" / f"{clip}.flac"), 0.1 * rng.standard_normal(3200), 32000)
    if blacklist is not None:
        (base / "blacklist_clotho.full.v2.csv").write_text("index,id\n" + "".join(
            f"{i},{c}\n" for i, c in enumerate(blacklist)))
    return root


def entry(i, **kw):
    return {"id": str(i), "caption": f"caption {i}", "tags": ["rain", "field-recording"],
            "description": f"recorded on day {i}", "duration": 0.1, "author": "someone", **kw}


def test_items_carry_caption_tags_and_description(tmp_path):
    root = _wavcaps(tmp_path, [entry(1), entry(2, tags=[]), entry(3, description="")], blacklist=[])
    items = load_split("wavcaps-fs", root, "train")
    assert [i.clip_id for i in items] == ["1", "2", "3"]
    one = items[0]
    assert one.captions == ["caption 1"] and one.keywords == ["rain", "field-recording"]
    assert one.description == "recorded on day 1" and one.extra["author"] == "someone"
    assert one.audio_path.name == "1.flac" and one.dataset == "wavcaps-fs"
    assert items[1].keywords is None and items[2].description is None
    assert items.report.missing_metadata == 0 and items.report.clips == 3
    assert load_wavcaps_freesound(root / "WavCaps", "development").report.clips == 3  # alias, WavCaps folder itself


def test_clotho_blacklist_missing_audio_and_empty_captions_are_counted(tmp_path):
    root = _wavcaps(tmp_path, [entry(1), entry(2), entry(3, caption=" "), entry(4)], audio=["1", "2", "3"],
                    blacklist=["2"])
    items = load_wavcaps_freesound(root)
    assert [i.clip_id for i in items] == ["1"]
    rep = items.report
    assert (rep.excluded, rep.missing_audio) == (3, 1)
    assert any("also in Clotho" in n for n in rep.notes) and any("no caption" in n for n in rep.notes)
    kept = load_wavcaps_freesound(root, require_audio=False, exclude_clotho=False)
    assert [i.clip_id for i in kept] == ["1", "2", "4"] and kept[2].audio_path is None


def test_without_a_blacklist_the_report_says_so(tmp_path):
    items = load_wavcaps_freesound(_wavcaps(tmp_path, [entry(1)]))
    assert any("were not removed" in n for n in items.report.notes)


@pytest.mark.parametrize("payload,match", [
    ("not json", r"fsd_final.json: line 1, column 1: not valid JSON \(Expecting value\)"),
    ('{"data": [\n  {"id": 1,}\n]}', "line 2, column 12: not valid JSON"),
    (b'{"data": [{"id": 1, "caption": "caf\xc3\xa9 or caf\xe9"}]}', "byte 0xE9 is not valid UTF-8"), (json.dumps({"rows": []}), "'data' list"),
    (json.dumps({"data": [{"caption": "x"}]}), "entry 0 has no 'id'"),
    (json.dumps({"data": [entry(1), entry(1)]}), "duplicate id '1'"),
    (json.dumps({"data": [entry(1, tags=[1, 2])]}), "'tags' must be a list of strings"),
])
def test_bad_json_names_the_file_and_the_problem(tmp_path, payload, match):
    root = _wavcaps(tmp_path, [entry(1)])
    target = root / "WavCaps" / "json_files" / "FreeSound" / "fsd_final.json"
    target.write_bytes(payload) if isinstance(payload, bytes) else target.write_text(payload)
    with pytest.raises(DatasetError, match=match):
        load_wavcaps_freesound(root)


def test_missing_metadata_file_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError, match="aac-datasets"):
        load_wavcaps_freesound(tmp_path)
    with pytest.raises(UserError, match="unknown wavcaps-fs split"):
        load_wavcaps_freesound(tmp_path, "val")
