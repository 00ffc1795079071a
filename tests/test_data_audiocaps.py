"""AudioCaps reader on the real CSVs, AudioSet tags from the real class list, missing audio counted."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from hybridlib.data import DatasetError, load_audiocaps, metadata_text
from hybridlib.data.audiocaps import load_audioset_labels, read_audioset_segments


@pytest.fixture
def audiocaps_root(shared_data, tmp_path):
    src = shared_data("audiocaps", "v1")
    csv_dir = tmp_path / "AUDIOCAPS" / "csv_files_v1"
    csv_dir.mkdir(parents=True)
    for split in ("train", "val", "test"):
        shutil.copy(src / f"{split}.csv", csv_dir)
    return tmp_path


def test_real_csv_counts_without_audio(audiocaps_root):
    val = load_audiocaps(audiocaps_root, "val", require_audio=False)
    test = load_audiocaps(audiocaps_root, "test", require_audio=False)
    train = load_audiocaps(audiocaps_root, "train", require_audio=False)
    assert (len(val), val.report.captions) == (495, 2475)
    assert (len(test), test.report.captions) == (975, 4875)
    assert all(len(it.captions) == 5 for it in val)
    assert train.report.captions == 49838 and sum(len(it.captions) == 1 for it in train) > 0.99 * len(train)
    assert val.report.missing_audio == 495 and val.report.missing_metadata == 495
    first = val[0]
    assert first.clip_id == "vfY_TJq7n_U_130" and first.extra["youtube_id"] == "vfY_TJq7n_U"
    assert first.captions[0].startswith("Rustling occurs, ducks quack")
    assert first.tags is None and first.dataset == "audiocaps"


def test_missing_audio_is_excluded_and_counted(audiocaps_root):
    audio = audiocaps_root / "AUDIOCAPS" / "audio_32000Hz" / "val"
    audio.mkdir(parents=True)
    sf.write(audio / "vfY_TJq7n_U_130.flac", 0.1 * np.sin(np.arange(32000) / 5), 32000)
    val = load_audiocaps(audiocaps_root, "validation")
    assert [it.clip_id for it in val] == ["vfY_TJq7n_U_130"]
    assert val.report.excluded == 494 and val.report.missing_audio == 494
    assert val[0].audio_path.suffix == ".flac"


def test_audioset_tags(audiocaps_root, shared_data, tmp_path):
    audioset = shared_data("audioset")
    segments = read_audioset_segments(audioset / "balanced_train_segments.csv")
    assert len(segments) == 22160
    assert segments["--PJHxphWEs"] == (30.0, ["/m/09x0r", "/t/dd00088"])
    labels = load_audioset_labels(audioset / "class_labels_indices.csv", audioset / "balanced_train_segments.csv")
    assert labels["--PJHxphWEs"] == ["Speech", "Gush"]
    # AudioCaps clips live in unbalanced_train_segments.csv (not shipped here): write two rows with real mids
    folder = tmp_path / "as"
    folder.mkdir()
    shutil.copy(audioset / "class_labels_indices.csv", folder)
    (folder / "my_segments.csv").write_text(
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'vfY_TJq7n_U, 130.000, 140.000, "/m/09ddx,/m/0838f"\n'
        'tdWhHV3X25Q, 60.000, 70.000, "/m/028ght"\n')
    val = load_audiocaps(audiocaps_root, "val", audioset_labels=folder, require_audio=False)
    by_id = val.by_id()
    assert by_id["vfY_TJq7n_U_130"].tags == ["Duck", "Water"]
    assert metadata_text(by_id["vfY_TJq7n_U_130"], "cs") == "duck water"
    assert by_id["tdWhHV3X25Q_60"].tags == ["Applause"]
    assert val.report.missing_metadata == 493
    (folder / "my_segments.csv").write_text('x1, 0, 10, "/m/not_a_class"\n')
    with pytest.raises(DatasetError, match="not in"):
        load_audiocaps(audiocaps_root, "val", audioset_labels=folder, require_audio=False)


def test_bad_root(tmp_path):
    with pytest.raises(DatasetError, match="No AudioCaps val.csv"):
        load_audiocaps(tmp_path, "val")
    with pytest.raises(ValueError, match="unknown audiocaps split"):
        load_audiocaps(tmp_path, "dev-clean")
