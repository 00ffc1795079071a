"""File names from a dataset stay inside their folder; a NUL byte anywhere is one line, never a traceback.

Every reader (Clotho in both layouts, AudioCaps, WavCaps, the teaching set, a folder bank) gets, on a copy of real
data (the rehearsal's miniature datasets, the shared sound bank), planted rows: ``..`` out of the audio folder,
the absolute path of a real wav outside, ``/etc/passwd``, a per-file symbolic link and a symlinked subfolder
leading outside, a letter-case variant of an escaping name, and a NUL byte. Each row is left out and named with
its reason, and the wav outside is never opened: the readers' files are watched where audio is decoded
(``soundfile``), and nothing outside appears in the loaded items or the feature cache.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import rehearsal_helpers as H
import soundfile

from hybridlib.cli import main
from hybridlib.config import ConfigError, experiments_dir, load_config
from hybridlib.data.audio_io import screen_audio
from hybridlib.data.loaders import load_split
from hybridlib.data.tables import read_csv_rows, write_csv_rows
from hybridlib.util.filenames import FolderGuard, file_inside, name_problem, nul_problem

NUL = "\x00"
CONFIG = str(experiments_dir() / "teaching" / "hybrid-late.yaml")


# ---------------------------------------------------------------- the rule
@pytest.mark.parametrize("name, why", [
    ("a.wav", None), ("sub dir/a b (1).wav", None), ("./a.wav", None), ("a..b.wav", None),
    ("", "is empty"), ("a\x00.wav", "NUL byte"), ("/etc/passwd", "absolute path"),
    ("C:\\audio\\a.wav", "absolute path"), ("C:a.wav", "absolute path"), ("\\\\host\\share\\a.wav", "absolute path"),
    ("../a.wav", "leads out"), ("sub/../../a.wav", "leads out"), ("..\\..\\a.wav", "leads out"), ("..", "leads out"),
])
def test_a_name_is_judged_by_its_text_first(name, why):
    problem = name_problem(name)
    assert (problem is None) if why is None else (why in problem), problem


def test_links_inside_the_folder_may_point_inside_and_a_linked_folder_works(tmp_path):
    real = tmp_path / "disk2" / "audio"
    real.mkdir(parents=True)
    (real / "a.wav").write_bytes(b"x")
    (real / "alias.wav").symlink_to(real / "a.wav")  # a link that stays inside
    (real / "inner").mkdir()
    (real / "inner" / "b.wav").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"x")
    (real / "out.wav").symlink_to(outside / "secret.wav")
    (real / "gone.wav").symlink_to(outside / "missing.wav")  # dangling, and outside
    (real / "sub").symlink_to(outside, target_is_directory=True)
    (real / "loop.wav").symlink_to(real / "loop.wav")
    linked = tmp_path / "data" / "audio"  # the audio folder itself a link to another disk: used as before
    linked.parent.mkdir()
    linked.symlink_to(real, target_is_directory=True)
    for folder in (real, linked):
        guard = FolderGuard(folder, "audio folder")
        for name in ("a.wav", "alias.wav", "inner/b.wav", "not-there.wav"):
            assert guard.locate(name) == (folder / name, None)
        for name in ("out.wav", "gone.wav", "sub/secret.wav"):
            path, why = guard.locate(name)
            assert path is None and "symbolic link to" in why and str(outside) in why and str(folder) in why
        assert "loop" in guard.refusal("loop.wav")
    assert file_inside(linked, "../outside/secret.wav")[0] is None


def test_nul_problem_names_where_the_byte_sits():
    assert nul_problem({"a": 1, "model": {"ckpt": ["x", "y\x00"]}}) == \
        "model.ckpt[1] contains a NUL byte (\\x00), which no file name can hold (got 'y\\x00')"
    assert nul_problem({"a": "fine", "b": [Path("x")]}) is None


# ---------------------------------------------------------------- planted datasets
@pytest.fixture
def outside(tmp_path, rehearsal_root):
    """A folder outside every dataset with a valid wav (so a reader that reached it would happily decode it)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    wav = next((rehearsal_root / "CLOTHO_v2.1" / "clotho_audio_files" / "development").glob("*.wav"))
    shutil.copyfile(wav, folder / "secret.wav")
    shutil.copyfile(wav, folder / "secret.flac")  # soundfile reads by content, not by suffix
    return folder


@pytest.fixture
def opened(monkeypatch):
    """The paths ``soundfile`` is asked to open while the test runs (every audio read of hybridlib goes there)."""
    seen: list[str] = []

    def watch(name):
        original = getattr(soundfile, name)

        def wrapper(file, *args, **kwargs):
            seen.append(str(file))
            return original(file, *args, **kwargs)
        monkeypatch.setattr(soundfile, name, wrapper)
    for name in ("info", "read", "blocks", "SoundFile"):
        watch(name)
    return seen


def _outside_paths(paths, outside: Path) -> list[str]:
    real = outside.resolve()
    return [p for p in map(str, paths) if p != "None" and (Path(p).resolve() == real
                                                        or real in Path(p).resolve().parents or p.startswith("/etc"))]


def plant_clotho(audio_dir: Path, captions_csv: Path, outside: Path) -> dict[str, str]:
    """Planted rows in a Clotho captions CSV (and the links they need in the audio folder): key -> file name."""
    (audio_dir / "link.wav").symlink_to(outside / "secret.wav")
    (audio_dir / "lower.wav").symlink_to(outside / "secret.wav")
    (audio_dir / "sub").symlink_to(outside, target_is_directory=True)
    up = os.path.relpath(outside / "secret.wav", audio_dir)
    names = {"dotdot": up, "absolute": str(outside / "secret.wav"), "passwd": "/etc/passwd", "link": "link.wav",
             "subfolder": "sub/secret.wav", "case": up.replace("secret.wav", "SECRET.wav"),
             "case-link": "LOWER.wav", "nul": f"bad{NUL}name.wav"}
    rows = read_csv_rows(captions_csv, ["file_name"])
    header = list(rows[0])
    write_csv_rows(captions_csv, header, rows + [{**rows[0], "file_name": n} for n in names.values()])
    return names


WHY = {"dotdot": "leads out of its folder", "absolute": "absolute path", "passwd": "absolute path",
       "link": "symbolic link to", "subfolder": "symbolic link to", "case": "leads out of its folder",
       "case-link": "symbolic link to", "nul": "NUL byte"}


@pytest.fixture
def planted_clotho(tmp_path, rehearsal_root, outside):
    """A copy of the rehearsal's Clotho (aac-datasets layout and flat Zenodo layout) with planted development rows."""
    root = tmp_path / "data"
    for name in ("CLOTHO_v2.1", "zenodo-clotho"):
        shutil.copytree(rehearsal_root / name, root / name, copy_function=H.mirror_file)
    clean = len(load_split("clotho", rehearsal_root, "development"))
    names = plant_clotho(root / "CLOTHO_v2.1" / "clotho_audio_files" / "development",
                         root / "CLOTHO_v2.1" / "clotho_csv_files" / "clotho_captions_development.csv", outside)
    flat = plant_clotho(root / "zenodo-clotho" / "development",
                        root / "zenodo-clotho" / "clotho_captions_development.csv", outside)
    return root, names, flat, clean


def _check_left_out_and_named(clips, names: dict[str, str], outside: Path, kept: int):
    assert len(clips) == kept and not _outside_paths([it.audio_path for it in clips], outside)
    assert {NUL not in it.clip_id for it in clips} == {True}
    for key, name in names.items():
        assert WHY[key] in clips.report.bad_audio[name], (key, clips.report.bad_audio.get(name))
    assert clips.report.excluded == len(names) and clips.report.missing_audio == 0
    assert not any("letter case" in note for note in clips.report.notes), clips.report.notes


def test_clotho_both_layouts_leave_escaping_names_out_and_name_them(planted_clotho, outside, opened):
    root, names, flat, clean = planted_clotho
    for where, planted in ((root, names), (root / "zenodo-clotho", flat)):
        for require_audio in (False, True):
            clips = load_split("clotho", where, "development", require_audio=require_audio)
            _check_left_out_and_named(clips, planted, outside, clean)
        screened = screen_audio(clips, check="full", progress=False, memo_dir=None)
        assert len(screened) == clean and set(planted.values()) <= set(screened.report.bad_audio)
    assert opened and not _outside_paths(opened, outside), opened


def test_a_symlinked_audio_folder_keeps_working(tmp_path, rehearsal_root):
    root = tmp_path / "data"
    shutil.copytree(rehearsal_root / "CLOTHO_v2.1", root / "CLOTHO_v2.1", symlinks=True,
                    ignore=shutil.ignore_patterns("development"))
    (root / "CLOTHO_v2.1" / "clotho_audio_files" / "development").symlink_to(
        rehearsal_root / "CLOTHO_v2.1" / "clotho_audio_files" / "development", target_is_directory=True)
    clips = load_split("clotho", root, "development", require_audio=True)
    assert len(clips) == len(load_split("clotho", rehearsal_root, "development")) and not clips.report.bad_audio
    whole = tmp_path / "linked-root"  # and a data root that is a link
    whole.symlink_to(rehearsal_root, target_is_directory=True)
    assert len(load_split("audiocaps", whole, "train")) == len(load_split("audiocaps", rehearsal_root, "train"))


def test_audiocaps_leaves_escaping_ids_and_links_out_and_names_them(tmp_path, rehearsal_root, outside, opened):
    base = tmp_path / "data" / "AUDIOCAPS"
    shutil.copytree(rehearsal_root / "AUDIOCAPS", base, copy_function=H.mirror_file)
    audio = base / "audio_32000Hz" / "train"
    clean = len(load_split("audiocaps", rehearsal_root, "train"))
    (audio / "LinkToOut000_0.flac").symlink_to(outside / "secret.flac")
    planted = {"LinkToOut000": "symbolic link to", os.path.relpath(outside / "secret", audio): "leads out of its folder",
               str(outside / "secret"): "absolute path", f"bad{NUL}id": "NUL byte"}
    rows = read_csv_rows(base / "csv_files_v1" / "train.csv", ["youtube_id"])
    write_csv_rows(base / "csv_files_v1" / "train.csv", list(rows[0]), rows + [
        {"audiocap_id": str(900 + i), "youtube_id": y, "start_time": "0", "caption": "planted"}
        for i, y in enumerate(planted)])
    for require_audio in (True, False):
        clips = load_split("audiocaps", tmp_path / "data", "train", require_audio=require_audio)
        assert len(clips) == clean and not _outside_paths([it.audio_path for it in clips], outside)
        for ytid, why in planted.items():
            assert why in clips.report.bad_audio[f"{ytid}_0"]
        assert not any("not on disk" in n for n in clips.report.notes)
    screen_audio(clips, check="full", progress=False, memo_dir=None)
    assert opened and not _outside_paths(opened, outside)


def test_wavcaps_leaves_escaping_ids_and_links_out_and_names_them(tmp_path, rehearsal_root, outside, opened):
    base = tmp_path / "data" / "WavCaps"
    shutil.copytree(rehearsal_root / "WavCaps", base, copy_function=H.mirror_file)
    clean = len(load_split("wavcaps-fs", rehearsal_root, "train"))
    (base / "Audio" / "FreeSound" / "990001.flac").symlink_to(outside / "secret.flac")
    planted = {"990001": "symbolic link to", "../../../outside/secret": "leads out of its folder",
               str(outside / "secret"): "absolute path", f"99{NUL}02": "NUL byte", "990003": "audio file not found"}
    json_path = base / "json_files" / "FreeSound" / "fsd_final.json"
    payload = json.loads(json_path.read_text())
    payload["data"] += [{"id": clip, "caption": "planted", "tags": ["x"]} for clip in planted]
    json_path.write_text(json.dumps(payload))
    clips = load_split("wavcaps-fs", tmp_path / "data", "train")
    assert len(clips) == clean and not _outside_paths([it.audio_path for it in clips], outside)
    for clip, why in planted.items():
        assert why in clips.report.bad_audio[clip], (clip, clips.report.bad_audio)
    screen_audio(clips, check="full", progress=False, memo_dir=None)
    assert opened and not _outside_paths(opened, outside)


def test_a_teaching_set_with_planted_rows(tmp_path, outside, opened):
    from hybridlib.data import ensure_teaching_set

    source = ensure_teaching_set(smoke=True, progress=False)
    root = tmp_path / "teaching"
    shutil.copytree(source, root, copy_function=H.mirror_file)
    csv_dir = root / "CLOTHO_v2.1" / "clotho_csv_files"
    names = plant_clotho(root / "CLOTHO_v2.1" / "clotho_audio_files" / "validation",
                         csv_dir / "clotho_captions_validation.csv", outside)
    meta = read_csv_rows(csv_dir / "clotho_metadata_validation.csv", ["file_name"])  # NUL in the metadata too
    write_csv_rows(csv_dir / "clotho_metadata_validation.csv", list(meta[0]),
                   meta + [{**meta[0], "file_name": f"bad{NUL}name.wav"}])
    clips = load_split("teaching", root, "validation")
    assert clips.report.dataset == "teaching"
    _check_left_out_and_named(clips, names, outside, 16)
    screen_audio(clips, check="full", progress=False, memo_dir=None)
    assert opened and not _outside_paths(opened, outside)


@pytest.fixture
def planted_bank(tmp_path, shared_data, outside):
    source = shared_data("soundbank-modsounds")
    rows = read_csv_rows(source / "manifest.csv", ["file", "label", "license"])
    labels = sorted({r["label"] for r in rows})[:2]
    keep = [r for r in rows if r["label"] in labels]
    bank = tmp_path / "bank"
    for r in keep:
        (bank / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        H.mirror_file(source / r["file"], bank / r["file"])
    (bank / "sounds" / "link.ogg").symlink_to(outside / "secret.wav")
    planted = {"../outside/secret.wav": "leads out of its folder", str(outside / "secret.wav"): "absolute path",
               "/etc/passwd": "absolute path", "sounds/link.ogg": "symbolic link to", f"bad{NUL}.ogg": "NUL byte"}
    write_csv_rows(bank / "manifest.csv", list(rows[0]), keep + [{**keep[0], "file": f, "label": "planted"}
                                                                  for f in planted])
    return bank, planted, keep


def test_a_folder_bank_leaves_escaping_files_out_and_names_them(planted_bank, outside, opened, tmp_path, capsys):
    from hybridlib.data.teaching import FolderBank

    bank, planted, kept = planted_bank
    loaded = FolderBank(bank)
    assert "planted" not in loaded.files and sum(map(len, loaded.files.values())) == len(kept)
    for file, why in planted.items():
        assert why in loaded.excluded[file], loaded.excluded
    assert opened and not _outside_paths(opened, outside)
    out = tmp_path / "set"  # the command: generated from the usable files, the others named in one line
    assert main(["make-teaching-set", "--out", str(out), "--bank", str(bank), "--clips", "2", "1", "1",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "bank: excluded 5 clip(s)" in printed and "'bad\\x00.ogg' (file name contains a NUL byte" in printed
    assert NUL not in printed
    assert set(json.loads((out / "teaching.json").read_text())["bank_excluded"]) == set(planted)
    assert not _outside_paths(opened, outside)


# ---------------------------------------------------------------- end to end
def test_extract_on_a_planted_clotho_set_reports_and_never_opens_outside(planted_clotho, outside, opened, tmp_path,
                                                                        capsys):
    root, names, _, clean = planted_clotho
    cache = tmp_path / "cache"
    assert main(["extract", "--data", str(root), "--dataset", "clotho", "--splits", "development",
                 "--text-encoder", "none", "--cache", str(cache), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    line = next(ln for ln in printed.splitlines() if ln.startswith("[extract]"))
    assert f"[extract] {clean} clips to encode; excluded {len(names)} clip(s)" in line and NUL not in line
    report = json.loads(next(cache.rglob("extract_report-data.json")).read_text())
    assert {f"development/{n}" for n in names.values()} == set(report["excluded"])
    assert report["figures"]["clips"] == clean
    assert opened and not _outside_paths(opened, outside)


def test_extract_on_a_set_whose_every_name_escapes_is_one_line(tmp_path, rehearsal_root, outside, capsys):
    root = tmp_path / "data"
    shutil.copytree(rehearsal_root / "zenodo-clotho", root, copy_function=H.mirror_file)
    captions = root / "clotho_captions_development.csv"
    rows = read_csv_rows(captions, ["file_name"])
    write_csv_rows(captions, list(rows[0]), [{**r, "file_name": f"../{r['file_name']}"} for r in rows])
    assert main(["extract", "--data", str(root), "--splits", "development", "--text-encoder", "none",
                 "--cache", str(tmp_path / "cache"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no clips with usable audio") and err.count("\n") == 1


@pytest.mark.parametrize("argv, option", [
    (["make-teaching-set", "--out", "set\x00x"], "--out"),
    (["make-teaching-set", "--out=set\x00x"], "--out"),
    (["make-teaching-set", "--bank", "b\x00"], "--bank"),
    (["train", "--config", CONFIG + "\x00"], "--config"),
    (["train", "--config", CONFIG, "--out", "run\x00x"], "--out"),
    (["train", "--config", CONFIG, "--set", "data_root=a\x00b"], "--set"),
    (["extract", "--data", "d\x00"], "--data"),
    (["extract", "--cache", "c\x00"], "--cache"),
    (["evaluate", "--run", "r\x00"], "--run"),
    (["search", "--run", "r\x00", "dog"], "--run"),
    (["download", "clotho", "--root", "d\x00"], "--root"),
    (["run-notebooks", "--out", "n\x00"], "--out"),
])
def test_a_nul_byte_on_the_command_line_is_one_line(argv, option, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option} contains a NUL byte (\\x00)") and err.count("\n") == 1 and NUL not in err
    assert not any(tmp_path.iterdir())  # nothing made before the refusal


def test_a_nul_byte_in_a_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "nul.yaml"
    config.write_text(f'extends: {CONFIG}\ndata_root: "{tmp_path}/a\\0b"\n')  # YAML's escape for the byte
    assert main(["train", "--config", str(config), "--smoke", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config}: field data_root contains a NUL byte") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
    assert main(["train", "--config", CONFIG, "--smoke", "--out", str(tmp_path / "run"),
                 "--set", 'data_root="a\\0b"']) == 2  # the same escape in --set
    assert "field data_root contains a NUL byte" in capsys.readouterr().err
    for values in ({"cache_dir": "c\x00"}, {"model": {"audio_checkpoint": "w\x00.pt"}}):
        with pytest.raises(ConfigError, match=r"field (cache_dir|model\.audio_checkpoint) contains a NUL byte"):
            load_config(CONFIG, **values)
    (tmp_path / "child.yaml").write_text('extends: "a\\0b.yaml"\n')
    with pytest.raises(ConfigError, match="config file name contains a NUL byte"):
        load_config(tmp_path / "child.yaml")


def test_a_nul_byte_in_a_notebook_parameter_is_one_line():
    from hybridlib.notebook_parameters import ParameterError, check_parameter_values

    for name in ("OUT_DIR", "DATA", "BACKBONE"):
        with pytest.raises(ParameterError, match=f"^{name}: contains a NUL byte"):
            check_parameter_values({name: "x\x00y"})


@pytest.mark.slow
def test_train_on_a_planted_teaching_set_reports_the_refused_rows(tmp_path, outside, opened, capsys):
    """``train`` end to end: the run finishes on the usable clips, its printed line and data_report.json name every
    refused row, and the wav outside is never decoded."""
    from hybridlib import runs
    from hybridlib.data import ensure_teaching_set

    source = ensure_teaching_set(smoke=True, progress=False)
    root = tmp_path / "teaching"
    shutil.copytree(source, root, copy_function=H.mirror_file)
    names = plant_clotho(root / "CLOTHO_v2.1" / "clotho_audio_files" / "development",
                         root / "CLOTHO_v2.1" / "clotho_csv_files" / "clotho_captions_development.csv", outside)
    out = tmp_path / "run"
    assert main(["train", "--config", CONFIG, "--smoke", "--out", str(out), "--seed", "0", "--set", "epochs=1",
                 "--set", "tensorboard=false", "--set", f"data_root={root}", "--no-progress"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[data]"))
    assert f"excluded {len(names)} clip(s)" in line and NUL not in line
    report = json.loads((out / "seed-0" / runs.DATA_REPORT).read_text())
    assert set(report["excluded"]["teaching/development"]) == set(names.values())
    assert report["clips"]["train"] == 32
    assert opened and not _outside_paths(opened, outside)
