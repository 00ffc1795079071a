"""The CPU track on real ClothoV2.1 (``experiments/clotho-cpu``, ``reproduce clotho-cpu``): frozen bundled encoders
and cached features, every row trained and evaluated, results labelled as frozen-encoder numbers everywhere.

The configs and the track's table are checked here without data; the end-to-end test runs the whole track as a
user does (``reproduce clotho-cpu``, then ``--report``) on the rehearsal's Clotho folders (real caption rows and
keywords, real audio, the aac-datasets layout) and one row on the extracted Zenodo layout, and reads each run's
ingredient report: frozen encoders, the row's metadata kind, the FS protocol."""

from __future__ import annotations

import csv
import json

import pytest

from hybridlib import paper
from hybridlib.config import experiments_dir, load_config
from hybridlib.reproduce import FROZEN_ENCODER_SETTING, TABLES, table_entries

TRACK = experiments_dir() / "clotho-cpu"
CONFIGS = sorted(p for p in TRACK.glob("[!_]*.yaml"))
# config name -> (fusion, metadata kind the model reads, the paper row printed beside it)
ROWS = {
    "clotho-cpu-baseline": ("none", None, "hybrid/clotho/baseline"),
    "clotho-cpu-metadata-only": ("metadata-only", "os", None),
    "clotho-cpu-late-os": ("late", "os", "hybrid/clotho/late-os"),
    "clotho-cpu-mid-os": ("mid", "os", "hybrid/clotho/mid-os"),
    "clotho-cpu-late-fs": ("late", "fs", "hybrid/clotho/late-fs"),
}


def test_the_track_has_the_five_rows_and_the_table_lists_every_config():
    names = [load_config(p).name for p in CONFIGS]
    assert sorted(names) == sorted(ROWS)
    assert TABLES["clotho-cpu"]["rows"] == list(ROWS)
    assert TABLES["clotho-cpu"]["reference"] == {name: row for name, (_, _, row) in ROWS.items() if row}
    entries = table_entries("clotho-cpu")
    assert [e.name for e in entries] == [e.row for e in entries] == list(ROWS)
    assert all(e.config.parent == TRACK for e in entries)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_clotho_cpu_configs_are_frozen_encoder_cpu_rows_on_clotho(path):
    cfg = load_config(path)
    m = cfg.model_config()
    fusion, kind, row = ROWS[cfg.name]
    assert (cfg.dataset, cfg.splits(), cfg.device, cfg.amp) == (
        "clotho", ("development", "validation", "evaluation"), "cpu", False)
    assert (m.audio_backbone, m.text_encoder, m.audio_trainable, m.text_trainable) == ("sfx-cnn", "minilm", False, False)
    assert m.audio_cached  # features extracted once, read from the cache
    assert m.fusion == fusion and cfg.paper_row is None  # beside a paper row, reproducing none
    if kind:
        assert m.metadata_kind == kind
    if row:  # the paper row beside it is the same model family: fusion and metadata kind
        ref = paper.paper_row(row)
        assert (ref["fusion"], ref["metadata"]) == ((None, None) if fusion == "none" else (fusion, kind))
    # every epoch visits all captions, the paper's batch and loss; the deviations are stated
    assert (cfg.captions_per_clip, cfg.batch_size, cfg.loss) == (None, 32, "nt-xent")
    assert "not the papers' setting" in cfg.notes and "not tuned on Clotho" in cfg.notes
    assert "frozen" in cfg.notes.lower() and str(cfg.epochs) in cfg.notes


def test_list_and_plan_of_the_track(capsys):
    from hybridlib.cli import main
    from hybridlib.gpu_plan import cpu_estimate, steps_per_epoch

    assert main(["reproduce", "clotho-cpu", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(ROWS)
    assert all("experiments/clotho-cpu/" in line for line in listed)
    assert main(["reproduce", "clotho-cpu", "--plan"]) == 0
    plan = capsys.readouterr().out
    assert FROZEN_ENCODER_SETTING in plan and "est. CPU min / seed" in plan and "GPU" not in plan.split("\n", 1)[1]
    assert plan.count("\n| `clotho-cpu-") == 5
    base = load_config(TRACK / "baseline.yaml")
    fs = load_config(TRACK / "late-fs.yaml")
    # 19,195 development captions in batches of 32 (last incomplete one dropped); FS: 4 of 5 captions are queries
    assert (steps_per_epoch(base), steps_per_epoch(fs)) == (19195 // 32, (19195 - 3839) // 32)
    assert cpu_estimate(base)["steps"] == 10 * 599 and cpu_estimate(base)["cpu_minutes"] > 0
    assert "| `clotho-cpu-late-fs` | `hybrid/clotho/late-fs` |" in plan and "| 4,790 |" in plan


def test_the_comparison_of_a_track_keeps_rows_without_a_paper_row_and_says_what_the_numbers_are(capsys):
    ours = {"clotho-cpu-baseline": {"t2a_mAP@10": {"mean": 10.0, "std": 1.0}, "t2a_R@1": 5.0, "t2a_R@10": 30.0},
            "clotho-cpu-metadata-only": {"t2a_mAP@10": 7.0, "t2a_R@1": 3.0, "t2a_R@10": 20.0},
            "clotho-cpu-late-os": {"t2a_mAP@10": 12.5, "t2a_R@1": 6.0, "t2a_R@10": 33.0}}
    refs = {name: ROWS[name][2] for name in ours}
    cmp = paper.compare(ours, ("t2a_mAP@10",), reference=refs)
    assert list(cmp["row"]) == list(ours) and [r if r == r else None for r in cmp["paper_row"]] == [refs[r] for r in ours]
    assert cmp["paper"].isna().iloc[1] and cmp["diff"].isna().iloc[1] and cmp["ours"].iloc[1] == 7.0  # ours only
    assert cmp["diff"].iloc[0] == pytest.approx(10.0 - 26.8)
    text = paper.side_by_side(ours, metrics=("t2a_mAP@10",), reference=refs, label=FROZEN_ENCODER_SETTING)
    lines = text.splitlines()
    assert lines[0] == FROZEN_ENCODER_SETTING
    meta = next(line for line in lines if line.startswith("clotho-cpu-metadata-only"))
    assert meta.split()[2] == "-" and meta.split()[3] == "7.00" and meta.rstrip().endswith("-")
    # findings are checked on the paper rows the track's rows stand beside
    assert "hybrid late fusion (OS tags) beats the content-only" in text and "+2.50" in text
    assert paper.by_paper_row(ours, refs) == {"hybrid/clotho/baseline": ours["clotho-cpu-baseline"],
                                              "hybrid/clotho/late-os": ours["clotho-cpu-late-os"]}
    assert paper.by_paper_row(ours) is ours


@pytest.mark.slow
def test_the_track_trains_every_row_on_real_clotho_folders_and_labels_its_table(rehearsal_root, tmp_path, capsys):
    """``reproduce clotho-cpu`` on the rehearsal's Clotho (aac-datasets layout), 2 epochs: every row trains and is
    evaluated, its ingredients are the config's, and the table (console, CSV, JSON; again with ``--report``) says
    these are frozen-encoder numbers with the paper's beside them; one row again on the Zenodo layout."""
    from hybridlib import runs
    from hybridlib.cli import main
    from hybridlib.data import load_clotho
    from hybridlib.training.ingredients import ingredient_problems

    out = tmp_path / "reproduce"
    common = ["--seeds", "0", "--out", str(out), "--set", f"data_root={rehearsal_root}", "--set", "epochs=2",
              "--no-progress"]
    assert main(["reproduce", "clotho-cpu", *common]) == 0
    printed = capsys.readouterr().out
    assert FROZEN_ENCODER_SETTING in printed and "ingredients differ" not in printed
    n_train = len(load_clotho(rehearsal_root, "development"))
    for name, (fusion, kind, _) in ROWS.items():
        seed_dir = out / name / "seed-0"
        metrics = json.loads((out / name / "metrics-evaluation.json").read_text())["seeds"]["0"]
        assert 0 <= metrics["t2a_mAP@10"] <= 100 and len(runs.read_log(seed_dir)) == 2
        cfg = runs.read_config(seed_dir)
        used = runs.read_ingredients(seed_dir)
        assert ingredient_problems(cfg, used) == []
        if fusion == "metadata-only":  # no audio at all: items are their keywords
            assert used["audio"]["backbone"] is None and used["parameters"]["audio_backbone"]["total"] == 0
        else:
            assert (used["audio"]["backbone"], used["audio"]["trainable"], used["audio"]["cached"]) == (
                "sfx-cnn", False, True)
        assert (used["text"]["encoder"], used["text"]["trainable"], used["text"]["cached"]) == ("minilm", False, True)
        assert used["parameters"]["audio_backbone"]["trainable"] == used["parameters"]["text_encoder"]["trainable"] == 0
        assert (used["model"]["fusion"], used["paper_row"]) == (fusion, None)
        assert used["data"]["splits"]["train"]["clips"] == n_train
        if fusion == "none":
            assert used["data"]["metadata_coverage"]["train"] is None
        else:
            assert used["data"]["metadata_kind"] == {"clotho": kind}
            assert used["data"]["metadata_coverage"] == {"train": 1.0, "val": 1.0, "test": 1.0}
        if kind == "fs":  # the FS protocol: one caption of every clip became its description and left the queries
            fs = used["data"]["fs_protocol"]
            assert fs["descriptions"] == fs["queries_removed"] > 0 and fs["single_caption_clips"] == 0
            assert used["data"]["splits"]["train"]["captions"] == 4 * n_train
        else:
            assert used["data"]["fs_protocol"] is None and used["data"]["splits"]["train"]["captions"] == 5 * n_train
    with open(out / "clotho-cpu-comparison.csv", newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert {line["setting"] for line in lines} == {FROZEN_ENCODER_SETTING}
    assert {line["row"]: line["paper_row"] for line in lines} == {name: row or "" for name, (_, _, row) in ROWS.items()}
    meta = [line for line in lines if line["row"] == "clotho-cpu-metadata-only"]
    assert meta and all(line["paper"] == "" and line["paper_row"] == "" for line in meta)
    late = next(line for line in lines if line["row"] == "clotho-cpu-late-os" and line["metric"] == "t2a_mAP@10")
    assert float(late["paper"]) == paper.paper_row("hybrid/clotho/late-os")["t2a_mAP@10"]
    saved = json.loads((out / "clotho-cpu-comparison.json").read_text())
    assert saved["label"] == FROZEN_ENCODER_SETTING and saved["rows_finished"] == sorted(ROWS)
    assert main(["reproduce", "clotho-cpu", "--report", *common]) == 0  # the table again, nothing trained
    report = capsys.readouterr().out
    assert FROZEN_ENCODER_SETTING in report and "clotho-cpu-late-fs t2a_mAP@10" in report
    assert all(f"{name}: 0: skipped" in report for name in ROWS)

    # the flat Zenodo layout reads the same clips
    zen = tmp_path / "zenodo"
    assert main(["train", "--config", str(TRACK / "late-os.yaml"), "--out", str(zen), "--seed", "0",
                 "--set", f"data_root={rehearsal_root / 'zenodo-clotho'}", "--set", "epochs=1", "--no-progress"]) == 0
    assert runs.read_ingredients(zen / "seed-0")["data"]["splits"]["train"]["clips"] == n_train
    assert main(["evaluate", "--run", str(zen), "--no-progress"]) == 0


@pytest.mark.slow
def test_a_rehearsal_with_realistic_lengths_has_clothos_15_to_30_s_clips(shared_data, tmp_path):
    """What the CPU track's step times were measured on (and benchmarks/gpu_check.py runs): Clotho clips of 15-30 s
    within every split (each clip of a split used to get the same length), 22.5 s on average as Clotho's."""
    import soundfile as sf

    from hybridlib.data.rehearsal import make_rehearsal_data

    shared_data("soundbank-modsounds")
    make_rehearsal_data(tmp_path, sizes={"clotho": {"development": 16, "validation": 16, "evaluation": 16}},
                        realistic_lengths=True)
    for split in ("development", "validation", "evaluation"):
        lengths = [sf.info(str(p)).duration for p in (tmp_path / "CLOTHO_v2.1" / "clotho_audio_files" / split).glob("*.wav")]
        assert len(lengths) == 16 and min(lengths) >= 15 - 1e-3 and max(lengths) <= 30 + 1e-3
        assert len({round(x) for x in lengths}) >= 8 and 20 <= sum(lengths) / len(lengths) <= 25


def test_make_rehearsal_clotho_clips_are_checked_before_anything_is_built(tmp_path, capsys):
    from hybridlib.cli import main

    assert main(["make-rehearsal", "--out", str(tmp_path / "r"), "--clotho-clips", "0", "3", "3"]) == 2
    assert "error: --clotho-clips must be positive" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_make_rehearsal_never_replaces_a_folder_it_did_not_write(shared_data, tmp_path, capsys):
    """`make-rehearsal --out data` (a real data folder, e.g. by mistake): the rehearsal replaces the dataset folders
    of its own folder, so a non-empty folder without a rehearsal in it is refused in one line and left as it is."""
    from hybridlib.cli import main

    shared_data("soundbank-modsounds")
    clip = tmp_path / "data" / "CLOTHO_v2.1" / "clotho_audio_files" / "development" / "mine.wav"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"a user's clip")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["make-rehearsal", "--out", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not empty and holds no rehearsal (no rehearsal.json)" in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before and clip.read_bytes() == b"a user's clip"


@pytest.mark.slow
def test_captions_without_audio_are_named_as_missing_audio_not_missing_metadata(rehearsal_root, tmp_path, capsys):
    """A user who ran ``download clotho --csv-only`` and then the track: every row says the audio is missing (one
    ``error:`` line, exit 1), not that 0 of 0 clips have keywords."""
    import shutil

    from hybridlib.cli import main

    csv_only = tmp_path / "data" / "CLOTHO_v2.1"
    shutil.copytree(rehearsal_root / "CLOTHO_v2.1" / "clotho_csv_files", csv_only / "clotho_csv_files")
    code = main(["reproduce", "clotho-cpu", "--seeds", "0", "--set", f"data_root={tmp_path / 'data'}",
                 "--set", "epochs=1", "--out", str(tmp_path / "runs"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in captured.err
    assert "no audio file on disk" in errors[0] and "not the audio: download it" in errors[0]
    assert "0 of 0" not in captured.out + captured.err
