"""The teaching-set generator: layout, determinism, ground truth, the metadata design, atomic creation."""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest

from hybridlib.data import DatasetError, ensure_teaching_set, load_clotho, make_teaching_set, metadata_text
from hybridlib.data.audio_io import audio_info, load_audio
from hybridlib.data.sound_synthesis import CLASSES, PLACES, synthesize
from hybridlib.data.tables import read_csv_rows
from hybridlib.data.teaching import ProceduralBank, make_captions, make_scene

TINY = (6, 3, 3)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_teaching_set(tmp_path_factory.mktemp("teach") / "set", seed=0, n_clips=TINY, progress=False)


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_procedural_bank_has_distinct_classes():
    assert len(CLASSES) >= 24
    assert len({c.label for c in CLASSES}) == len(CLASSES)
    twins = {frozenset((c.name, c.twin)) for c in CLASSES if c.twin}
    assert len(twins) == 4
    rng = np.random.default_rng(1)
    for c in CLASSES:
        a, _ = synthesize(c, rng, 8.0)
        b, _ = synthesize(c, rng, 8.0)
        assert np.isfinite(a).all() and abs(np.abs(a).max() - 1) < 1e-9 and len(a) <= 8 * 44100
        assert len(a) != len(b) or not np.allclose(a, b)  # instances vary


def test_layout_and_reader(tiny_set):
    for split, n in zip(["development", "validation", "evaluation"], TINY):
        items = load_clotho(tiny_set, split)
        assert len(items) == n and items.report.missing_audio == 0 and items.report.missing_metadata == 0
        assert all(it.dataset == "teaching" for it in items)
        for it in items:
            assert len(it.captions) == 5 and len(set(it.captions)) == 5
            assert it.keywords and len(it.keywords) >= 3 and it.tags is not None
            info = audio_info(it.audio_path)
            assert info["sample_rate"] == 44100 and info["channels"] == 1 and 5.0 <= info["duration"] <= 10.0
            assert load_audio(it.audio_path, 44100).abs().max() > 0.001
    info = json.loads((tiny_set / "teaching.json").read_text())
    assert info["seed"] == 0 and info["n_clips"] == {"development": 6, "validation": 3, "evaluation": 3}


@pytest.mark.slow
def test_same_seed_bit_identical_other_seed_differs(tiny_set, tmp_path):
    again = make_teaching_set(tmp_path / "again", seed=0, n_clips=TINY, progress=False, workers=2)
    assert _digest(again) == _digest(tiny_set)  # made by two worker processes, the same bytes as in one
    other = make_teaching_set(tmp_path / "other", seed=1, n_clips=(2, 1, 1), progress=False)
    a = (tiny_set / "CLOTHO_v2.1/clotho_audio_files/development/teach_dev_0000.wav").read_bytes()
    b = (other / "CLOTHO_v2.1/clotho_audio_files/development/teach_dev_0000.wav").read_bytes()
    assert a != b
    with pytest.raises(DatasetError, match="not empty"):
        make_teaching_set(tmp_path / "again", seed=0, n_clips=TINY, progress=False)


def test_ground_truth_matches_files(tiny_set):
    events = read_csv_rows(tiny_set / "events.csv", ["file_name", "class", "onset", "offset", "in_keywords"])
    scenes = read_csv_rows(tiny_set / "scenes.csv", ["file_name", "place", "duration"])
    assert len(scenes) == sum(TINY)
    dev = load_clotho(tiny_set, "development").by_id()
    by_class = {c.name: c for c in CLASSES}
    for row in events:
        assert 0 <= float(row["onset"]) < float(row["offset"])
        if row["file_name"] in dev and row["in_keywords"] == "1":
            words = set(dev[row["file_name"]].keywords)
            assert words & set(by_class[row["class"]].keywords)
    for s in scenes:
        assert s["place"] in PLACES and 5 <= float(s["duration"]) <= 10


@pytest.mark.slow
def test_captions_never_name_absent_events():
    bank = ProceduralBank()
    for i in range(40):
        rng = np.random.default_rng(i)
        scene = make_scene(rng, bank)
        present = {e.cls.name for e in scene["events"]}
        captions, mentions = make_captions(scene, rng)
        assert set(mentions) <= present and len(captions) == 5
        text = " ".join(captions).lower()
        for c in CLASSES:
            phrases = [*c.clauses, *c.nouns]
            if c.name not in present:
                assert not any(p in text for p in phrases), (c.name, captions)
            if c.name in mentions:
                assert any(p in text for p in phrases)


@pytest.mark.slow
def test_metadata_design_statistics(tmp_path):
    """Metadata and audio each hold what the other lacks (checked on the ground truth of 80 scenes)."""
    root = make_teaching_set(tmp_path / "stats", seed=3, n_clips=(60, 10, 10), progress=False)
    events = read_csv_rows(root / "events.csv", ["class", "in_keywords", "mentioned"])
    scenes = read_csv_rows(root / "scenes.csv", ["place_in_keywords"])
    tagged = np.mean([r["in_keywords"] == "1" for r in events])
    mentioned = np.mean([int(r["mentioned"]) > 0 for r in events])
    untagged_but_mentioned = np.mean([r["in_keywords"] == "0" and int(r["mentioned"]) > 0 for r in events])
    assert 0.3 < tagged < 0.8  # keywords miss events ...
    assert mentioned > 0.8 and untagged_but_mentioned > 0.15  # ... that captions (and audio) have
    place_tagged = np.mean([s["place_in_keywords"] == "1" for s in scenes])
    assert 0.6 < place_tagged < 0.9  # metadata knows the place, audio does not
    twins = {c.name for c in CLASSES if c.twin}
    assert sum(r["class"] in twins for r in events) > 10
    dev = load_clotho(root, "development")
    assert all(metadata_text(it, "os") for it in dev)
    assert sum(metadata_text(it, "cs") is not None for it in dev) > 50


def test_folder_bank_with_real_sounds(shared_data, tmp_path):
    bank = shared_data("soundbank-modsounds")
    root = make_teaching_set(tmp_path / "real", seed=0, n_clips=(3, 1, 1), bank=bank, progress=False)
    dev = load_clotho(root, "development")
    assert len(dev) == 3 and all(load_audio(it.audio_path, 44100).abs().max() > 0 for it in dev)
    attribution = (root / "ATTRIBUTION.md").read_text()
    assert "| file | label | author | license | source |" in attribution
    assert attribution.count("sounds/") >= 3
    assert all(it.extra["license"] for it in dev)
    manifest = {r["file"]: r for r in read_csv_rows(bank / "manifest.csv", ["file", "label", "license"])}
    rows = [ln for ln in attribution.splitlines() if ln.startswith("| sounds/")]
    for ln in rows:
        file = ln.split("|")[1].strip()
        assert manifest[file]["license"] in ln


@pytest.mark.slow
def test_folder_bank_in_worker_processes_gives_the_same_files(shared_data, tmp_path):
    bank = shared_data("soundbank-modsounds")
    one = make_teaching_set(tmp_path / "one", seed=0, n_clips=(4, 2, 2), bank=bank, progress=False, workers=1)
    two = make_teaching_set(tmp_path / "two", seed=0, n_clips=(4, 2, 2), bank=bank, progress=False, workers=2)
    assert _digest(one) == _digest(two)


def test_bad_bank_is_named(tmp_path):
    with pytest.raises(ValueError, match="manifest.csv"):
        make_teaching_set(tmp_path / "x", n_clips=(1, 1, 1), bank=tmp_path / "nowhere", progress=False)


def test_ensure_teaching_set_is_atomic_under_concurrency(tmp_path):
    root = tmp_path / "shared-root"
    results, errors = [], []

    def call():
        try:
            results.append(ensure_teaching_set(root, seed=0, n_clips=(2, 1, 1), progress=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and results == [root] * 3
    assert len(load_clotho(root, "development")) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp folders cleaned up
    assert ensure_teaching_set(root, seed=0, n_clips=(2, 1, 1)) == root  # existing set reused
    with pytest.raises(DatasetError, match="seed: 0 there, 5 asked for"):
        ensure_teaching_set(root, seed=5, n_clips=(2, 1, 1))
    # every generation setting is checked, not only the seed
    with pytest.raises(DatasetError, match=r"n_clips: .*'development': 2.*'development': 3"):
        ensure_teaching_set(root, seed=0, n_clips=(3, 1, 1))
    with pytest.raises(DatasetError, match="bank: 'procedural' there"):
        ensure_teaching_set(root, seed=0, n_clips=(2, 1, 1), bank=tmp_path / "other-bank")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="not a complete teaching set"):
        ensure_teaching_set(tmp_path / "junk")


def test_cli_make_teaching_set(tmp_path, capsys):
    from hybridlib.cli import main

    out = tmp_path / "cli"
    assert main(["make-teaching-set", "--out", str(out), "--clips", "1", "1", "1", "--no-progress"]) == 0
    assert "written to" in capsys.readouterr().out
    assert len(load_clotho(out, "validation")) == 1
    assert main(["make-teaching-set", "--out", str(out), "--clips", "1", "1", "1", "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["make-teaching-set", "--out", str(out), "--clips", "2", "1", "1", "--no-progress", "--force"]) == 0
    assert len(load_clotho(out, "development")) == 2
    mine = tmp_path / "mine"  # --force replaces a teaching set, never a folder it did not write
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    assert main(["make-teaching-set", "--out", str(mine), "--clips", "1", "1", "1", "--no-progress", "--force"]) == 2
    assert "holds no teaching set (no teaching.json)" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_twins_share_their_audio():
    by_name = {c.name: c for c in CLASSES}
    for a, b in [("rain", "frying"), ("car_engine", "boat_motor"), ("knocking", "hammering"), ("stream", "faucet")]:
        x, _ = synthesize(by_name[a], np.random.default_rng(7), 6.0)
        y, _ = synthesize(by_name[b], np.random.default_rng(7), 6.0)
        assert np.array_equal(x, y)  # same recipe and seed: identical audio ...
        assert not set(by_name[a].keywords) & set(by_name[b].keywords)  # ... different words
        assert by_name[a].label != by_name[b].label


@pytest.fixture
def bad_bank(shared_data, tmp_path):
    """Three real sound effects plus a silent placeholder, an unreadable file and a file listed but absent."""
    import shutil

    import soundfile as sf

    real = shared_data("soundbank-modsounds")
    bank = tmp_path / "bank"
    (bank / "sounds").mkdir(parents=True)
    rows = ["file,label,license"]
    for name, label in (("sounds_airplane_prop.ogg", "airplane"), ("sounds_apple_bite.ogg", "apple bite"),
                        ("sounds_ar_burst_01.ogg", "gunshot")):
        shutil.copy(real / "sounds" / name, bank / "sounds" / name)
        rows.append(f"sounds/{name},{label},CC0")
    sf.write(bank / "sounds" / "placeholder.wav", np.zeros(22050), 44100, subtype="PCM_16")
    (bank / "sounds" / "broken.ogg").write_bytes(b"OggS\x00\x02garbage")
    rows += ["sounds/placeholder.wav,door,CC0", "sounds/broken.ogg,door,CC0", "sounds/gone.ogg,dog,CC0"]
    (bank / "manifest.csv").write_text("\n".join(rows) + "\n")
    return bank


def test_folder_bank_excludes_and_reports_every_bad_file_at_once(bad_bank, tmp_path):
    root = make_teaching_set(tmp_path / "set", seed=0, n_clips=(4, 1, 1), bank=bad_bank, progress=False)
    info = json.loads((root / "teaching.json").read_text())
    excluded = info["bank_excluded"]
    assert set(excluded) == {"sounds/placeholder.wav", "sounds/broken.ogg", "sounds/gone.ogg"}
    assert "silent" in excluded["sounds/placeholder.wav"] and "not found" in excluded["sounds/gone.ogg"]
    assert set(info["classes"]) == {"airplane", "apple bite", "gunshot"}  # labels with no usable file dropped
    assert len(load_clotho(root, "development")) == 4


def test_folder_bank_error_policy_names_all_and_leaves_nothing(bad_bank, tmp_path):
    from hybridlib.data.audio_io import BadAudioError

    out = tmp_path / "set"
    with pytest.raises(BadAudioError) as info:
        make_teaching_set(out, n_clips=(2, 1, 1), bank=bad_bank, progress=False, bad_audio="error")
    assert "3 clip(s) with unusable audio" in str(info.value) and "gone.ogg" in str(info.value)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_generation_leaves_nothing_half_made(tmp_path, monkeypatch):
    from hybridlib.data import teaching

    written = []
    real_write = teaching.sf.write

    def flaky_write(path, *args, **kwargs):
        if len(written) == 3:
            raise OSError("disk full")
        written.append(path)
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(teaching.sf, "write", flaky_write)
    out = tmp_path / "set"
    with pytest.raises(OSError, match="disk full"):
        make_teaching_set(out, n_clips=(4, 1, 1), progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no partial folder, no temp folder
    monkeypatch.undo()
    assert len(load_clotho(make_teaching_set(out, n_clips=(4, 1, 1), progress=False), "development")) == 4


def test_cli_make_teaching_set_reports_excluded_bank_files(bad_bank, tmp_path, capsys):
    from hybridlib.cli import main

    out = tmp_path / "cli"
    assert main(["make-teaching-set", "--out", str(out), "--clips", "2", "1", "1", "--bank", str(bad_bank),
                 "--no-progress"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "excluded" in ln]
    assert len(lines) == 1 and "3 clip(s) with unusable audio" in lines[0] and "placeholder.wav" in lines[0]
    assert main(["make-teaching-set", "--out", str(tmp_path / "strict"), "--clips", "2", "1", "1",
                 "--bank", str(bad_bank), "--bad-audio", "error", "--no-progress"]) == 2
    assert "broken.ogg" in capsys.readouterr().err and not (tmp_path / "strict").exists()


@pytest.mark.slow
def test_a_script_without_main_guard_falls_back_to_one_process(tmp_path):
    """Spawned workers re-import the script; without `if __name__ == "__main__":` they fail at start-up, and the
    set is made in the calling process instead (the same files)."""
    import subprocess
    import sys

    script = tmp_path / "make.py"
    script.write_text("from hybridlib.data.teaching import make_teaching_set\n"
                      f"make_teaching_set({str(tmp_path / 'out')!r}, n_clips=(2, 1, 1), progress=False, workers=2)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "generating in this process" in done.stdout
    serial = make_teaching_set(tmp_path / "serial", n_clips=(2, 1, 1), progress=False, workers=1)
    assert _digest(tmp_path / "out") == _digest(serial)
