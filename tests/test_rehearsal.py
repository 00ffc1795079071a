"""The rehearsal: miniature real-audio datasets in the official layouts, random-weight stand-ins of the papers'
architectures, and every paper config run end to end on them (interrupted, resumed, evaluated), with each
config's declared ingredients checked in its ingredient report; the reproduce command on a whole table.

One test per config; the configs are split into two lanes (xdist groups, tests/rehearsal_helpers.py), which
``make test`` (``-n 2 --dist loadgroup``) runs in its two worker processes side by side."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import rehearsal_helpers as H
import soundfile as sf

from hybridlib import runs
from hybridlib.config import load_config
from hybridlib.data import load_audiocaps, load_clotho
from hybridlib.data.loaders import load_split
from hybridlib.data.rehearsal import read_manifest
from hybridlib.data.tables import read_csv_rows
from hybridlib.paths import project_root

ROOT = project_root()


@pytest.mark.slow  # builds the whole rehearsal (~18 s), which only the slow tests below use
def test_rehearsal_has_real_rows_and_audio_in_the_official_layouts(rehearsal_root, shared_data):
    manifest = read_manifest(rehearsal_root)
    by = {}
    for clip in manifest["clips"]:
        by.setdefault((clip["dataset"], clip["split"]), []).append(clip)
    # Clotho: both layouts give the same items; rows and keywords are the real ones
    real_captions = {r["file_name"]: r for r in read_csv_rows(
        shared_data("clotho", "v2.1") / "clotho_captions_development.csv", ["file_name"])}
    real_meta = {r["file_name"]: r for r in read_csv_rows(
        shared_data("clotho", "v1") / "clotho_metadata_development.csv", ["file_name", "keywords"])}
    for split in ("development", "validation", "evaluation"):
        aac = load_clotho(rehearsal_root, split)
        zenodo = load_clotho(rehearsal_root / "zenodo-clotho", split)
        assert [(i.clip_id, i.captions, i.keywords) for i in aac] == [(i.clip_id, i.captions, i.keywords) for i in zenodo]
        assert len(aac) == len(by["clotho", split]) and aac.report.missing_metadata == 0
        for item in aac:
            assert item.captions == [real_captions[item.clip_id][f"caption_{k}"].strip() for k in range(1, 6)]
            assert ";".join(item.keywords) == real_meta[item.clip_id]["keywords"].strip()
            info = sf.info(str(item.audio_path))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (44100, 1, "WAV", "PCM_16")
    assert "Distorted AM Radio noise.wav" in load_clotho(rehearsal_root, "development").by_id()
    (rehearsal_root / "CLOTHO_v2.1" / "clotho_csv_files" / "clotho_metadata_development.csv").read_bytes().decode(
        "iso-8859-1")  # written in the release's encoding

    # AudioCaps: CS tags joined from real AudioSet segment rows; captions are real AudioCaps rows
    segments = {line.split(",")[0]: line for line in
                (shared_data("audioset") / "balanced_train_segments.csv").read_text().splitlines()
                if not line.startswith("#")}
    for split in ("train", "val", "test"):
        real = {r["audiocap_id"]: r["caption"] for r in read_csv_rows(shared_data("audiocaps", "v1") / f"{split}.csv",
                                                                      ["audiocap_id", "caption"])}
        items = load_audiocaps(rehearsal_root, split, audioset_labels=rehearsal_root / "AUDIOCAPS")
        assert len(items) == len(by["audiocaps", split]) and items.report.missing_metadata == 0
        for item in items:
            assert item.tags and item.extra["youtube_id"] in segments
            assert item.captions == [real[a].strip() for a in item.extra["audiocap_ids"]]
            assert len(item.captions) == (1 if split == "train" else 5)
            info = sf.info(str(item.audio_path))
            assert (info.samplerate, info.channels, info.format) == (32000, 1, "FLAC")
            assert item.audio_path.name == f"{item.extra['youtube_id']}_{item.extra['start_time']}.flac"

    # WavCaps FreeSound: aac-datasets' JSON layout; the clip shared with Clotho's evaluation split is excluded
    entries = json.loads((rehearsal_root / "WavCaps" / "json_files" / "FreeSound" / "fsd_final.json").read_text())["data"]
    assert all({"id", "caption", "tags", "description", "duration"} <= set(e) for e in entries)
    by_sound = {r["sound_id"]: r for r in real_meta.values()}
    assert all(";".join(e["tags"]) == by_sound[e["id"]]["keywords"].strip() for e in entries)
    items = load_split("wavcaps-fs", rehearsal_root, "train")
    assert len(items) == len(entries) - 1 and items.report.excluded == 1
    assert "also in Clotho" in " ".join(items.report.notes)
    assert all(i.keywords and i.description and sf.info(str(i.audio_path)).samplerate == 32000 for i in items)


@pytest.mark.slow
def test_extract_fills_the_cache_for_every_rehearsal_dataset(rehearsal_root, tmp_path, capsys):
    from hybridlib.cli import main

    for dataset in ("clotho", "audiocaps", "wavcaps-fs"):
        assert main(["extract", "--data", str(rehearsal_root), "--dataset", dataset, "--backbone", "sfx-cnn",
                     "--text-encoder", "none", "--cache", str(tmp_path / "cache"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sfx-cnn: 11 clips" in out and "sfx-cnn: 12 clips" in out and "sfx-cnn: 6 clips" in out


@pytest.mark.slow
def test_stand_ins_are_the_architectures_loaded_through_the_user_path(rehearsal_root):
    from transformers import AutoTokenizer

    from hybridlib.bundled import minilm_dir
    from hybridlib.models.audio import build_audio_backbone
    from hybridlib.models.audio.checkpoints import read_checkpoint
    from hybridlib.models.audio.weights import is_standin
    from hybridlib.models.text import build_text_encoder

    manifest = read_manifest(rehearsal_root)
    assert set(manifest["weights"]) == {"efficientat-mn40", "panns-resnet38"}
    for name, path in manifest["weights"].items():
        _, extra = read_checkpoint(path)
        assert extra["format"] == ("model" if name.startswith("panns") else "state_dict")  # the official layouts
        model = build_audio_backbone(name, checkpoint=path)  # strict: every key and shape
        assert not model.checkpoint_report.missing and is_standin(path)
    reference = AutoTokenizer.from_pretrained(str(minilm_dir()))
    captions = ["A dog's bark echoes, then rain-soaked footsteps!", "Birds chirp near a busy road."]
    for name, (hidden, layers) in {"bert-base-uncased": (768, 12), "bert-large-uncased": (1024, 24)}.items():
        encoder = build_text_encoder(manifest["text_models"][name])
        config = encoder.model.config
        assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (hidden, layers, 30522)
        assert encoder.tokenizer(captions)["input_ids"] == reference(captions)["input_ids"]
        assert encoder(captions).shape == (2, hidden)


def _lanes():
    """Every paper config's name, with the xdist group of its lane (:func:`rehearsal_helpers.plan_lanes`), and
    the rows run interrupted and resumed (:func:`rehearsal_helpers.resumed_rows`)."""
    from hybridlib.reproduce import table_entries

    entries = table_entries("all")
    configs = {e.name: load_config(e.config) for e in entries}
    plan, extra = H.plan_lanes(entries, configs, extra=H.EXTRA_COSTS)
    groups = {name: pytest.mark.xdist_group(f"rehearsal-lane-{lane}") for name, lane in extra.items()}
    return plan, groups, H.resumed_rows(configs)


LANES, EXTRA_GROUP, RESUMED = _lanes()
ROWS = [pytest.param(name, id=name, marks=pytest.mark.xdist_group(f"rehearsal-lane-{i}"))
        for i, rows in enumerate(LANES) for name in rows]


@pytest.mark.xdist_group("rehearsal-plan")
def test_the_rehearsal_runs_every_paper_config_once_and_bert_large_rows_one_at_a_time(request):
    from hybridlib.reproduce import paper_configs, table_entries

    if getattr(request.config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup: groups hold
        assert request.node.nodeid.endswith("@rehearsal-plan"), request.node.nodeid

    names = [name for lane in LANES for name in lane]
    assert len(paper_configs()) == 40 and sorted(names) == sorted(e.name for e in table_entries("all"))
    large = [e.name for e in table_entries("all") if "large" in load_config(e.config).model_config().text_encoder]
    assert len(large) == 5 and LANES[0][:5] == large  # lane 0 runs them first, the other lane never does
    # every paper's every kind of row (bert-large, fine-tuning, frozen) has a row that is interrupted and resumed
    kinds = {(n.split("-")[0], H.row_memory(load_config(e.config))) for e in table_entries("all") for n in [e.name]}
    assert {(n.split("-")[0], H.row_memory(load_config(e.config))) for e in table_entries("all")
            for n in [e.name] if n in RESUMED} == kinds and len(RESUMED) == len(kinds)


@pytest.mark.slow
@EXTRA_GROUP["reproduce_command"]
def test_reproduce_command_runs_a_whole_table_on_the_rehearsal(rehearsal_root, tmp_path):
    """``python -m hybridlib reproduce mei-table-2 --seeds 0 1``: a shard interrupted, the whole table resumed and
    finished, a second call skips everything; our numbers are printed and saved beside the paper's."""
    out = tmp_path / "reproduce"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "hybridlib", "reproduce", "mei-table-2", "--rehearsal",
                               str(rehearsal_root), "--out", str(out), "--seeds", "0", "1", "--no-progress", *args],
                              capture_output=True, text=True, env=env, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    listed = subprocess.run([sys.executable, "-m", "hybridlib", "reproduce", "mei-table-2", "--list", "--shard", "1/2"],
                            capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    assert len(listed) == 4 and listed[0].startswith("mei/audiocaps/frozen/triplet-sum/bs32")
    first = cli("--shard", "1/2", "--set", "stop_after_epoch=1")
    assert first.count("0: stopped, 1: stopped") == 4
    interrupted = sorted(p.parent.parent.name for p in out.glob("*/seed-*/checkpoint.pt"))
    assert len(interrupted) == 2 * 4
    second = cli()
    assert second.count("0: finished, 1: finished") == 8 and "ingredients differ" not in second
    assert "mei/audiocaps/frozen/nt-xent/bs128 t2a_R@1" in second and "diff [pp]" in second
    # rehearsal numbers say so: a header line, a marker on every row and finding line, a CSV column, the JSON
    from hybridlib.reproduce import REHEARSAL_LABEL, REHEARSAL_MARKER

    assert REHEARSAL_LABEL in second
    compared = [line for line in second.splitlines() if line.startswith("mei/") or "batch grows" in line]
    assert len(compared) > 8 and all(line.endswith(REHEARSAL_MARKER) for line in compared)
    # the rehearsal's overrides are its known deviations from the paper, printed apart from problems
    deviations = [line for line in second.splitlines() if "the rehearsal's known deviations from the paper" in line]
    assert len(deviations) == 8 * 2 and all("epochs 2 (paper: 50)" in line for line in deviations)
    assert not list(out.glob("*/seed-*/checkpoint*.pt"))  # finished seeds keep best/ and metrics only
    third = cli("--report")
    assert third.count("0: skipped, 1: skipped") == 8
    comparison = json.loads((out / "mei-table-2-comparison.json").read_text())
    assert len(comparison["rows_finished"]) == 8
    assert comparison["label"] == REHEARSAL_LABEL and {r["rehearsal"] for r in comparison["comparison"]} == {True}
    checks = comparison["ingredients"]["mei/audiocaps/frozen/nt-xent/bs128"]
    assert all(c["problems"] == [] and "epochs 2 (paper: 50)" in c["rehearsal_deviations"] for c in checks.values())
    rows = {(r["row"], r["metric"]) for r in comparison["comparison"]}
    assert ("mei/audiocaps/frozen/triplet-max/bs128", "t2a_R@1") in rows
    with open(out / "mei-table-2-comparison.csv") as fh:
        table = list(csv.DictReader(fh))
    assert {"rehearsal", "row", "metric", "paper", "ours", "diff"} <= set(table[0])
    assert {r["rehearsal"] for r in table} == {"True"}
    aggregate = json.loads((out / "mei-audiocaps-frozen-nt-xent" / "metrics-test.json").read_text())
    assert aggregate["seeds_run"] == [0, 1] and aggregate["aggregate"]["t2a_R@1"]["n"] == 2


def _check_row(cfg, result: dict) -> None:
    from hybridlib.models.text import BERT_CONFIGS

    name = cfg.name
    m = cfg.model_config()
    ing = result["ingredients"]
    # the run: stopped after epoch 1 with a checkpoint, resumed (the rows of H.resumed_rows), finished,
    # evaluated, metrics written
    if result["interrupted"] is not None:
        assert result["interrupted"]["state"] == "stopped" and result["interrupted"]["checkpoint"], name
        assert result["interrupted"]["epochs_logged"] == 1 and not result["interrupted"]["metrics"], name
    assert result["state"] == "finished" and result["epochs_logged"] == 2 and result["train_loss_finite"], name
    split = cfg.splits()[2]
    assert result["seed_metrics"] == [f"metrics-{split}.json"] == result["row_metrics"], name
    assert result["best"] and result["checkpoints_left"] == [], name
    # the declared ingredients hold (hybridlib.training.ingredients.ingredient_problems) ...
    assert result["problems"] == {}, (name, result["problems"])
    # ... and the row's own architecture ran, from the stand-ins
    assert ing["audio"]["backbone"] == (m.audio_backbone if m.uses_audio else None)
    assert ing["audio"]["standin"] is m.uses_audio
    arch = ing["text"]["architecture"]
    published = BERT_CONFIGS[m.text_encoder]
    assert (arch["hidden_size"], arch["layers"], arch["heads"], arch["standin"]) == (
        published["hidden_size"], published["num_hidden_layers"], published["num_attention_heads"], True), name
    # examples of declared ingredients, spelled out
    coverage = ing["data"]["metadata_coverage"]
    if m.fusion in ("late", "mid"):
        assert all(c > 0.9 for c in coverage.values()), (name, coverage)
        if "audiocaps" in cfg.datasets + [cfg.benchmark] and m.fusion != "none":
            cs = [x for x in ing["data"]["loaded"] if x["dataset"] == "audiocaps"]
            assert cs and all(x["metadata_kind"] == "cs" and x["metadata_coverage"] > 0.9 for x in cs), name
    else:
        assert set(coverage.values()) == {None}, name
    frozen = not m.audio_trainable
    encoders = ing["parameters"]["audio_backbone"]["trainable"] + ing["parameters"]["text_encoder"]["trainable"]
    assert (encoders == 0) is frozen, (name, ing["parameters"])
    assert ing["audio"]["spec_augment"]["active"] is (cfg.spec_augment and not frozen), name
    if cfg.paper_row and cfg.paper_row.startswith("mei/"):
        assert (ing["text"]["mode"], ing["text"]["max_tokens"], ing["selection"]) == (
            "mei", None, {"metric": "t2a_R-sum", "on_tie": "later"}), name
        assert ing["optimisation"]["grad_clip"] == 2.0 and ing["schedule"]["name"] == "step"
        if not frozen:
            assert ing["text"]["max_length"] == 512 and arch["hidden_dropout"] == 0.2, name
    else:
        assert (ing["text"]["mode"], ing["text"]["max_tokens"], ing["schedule"]["name"], ing["selection"]) == (
            "hybrid", 32, "warmup-cosine", {"metric": "mAP@10", "on_tie": "earlier"}), name  # the assumption
    if "fs" in ing["data"]["metadata_kind"].values():
        assert ing["data"]["fs_protocol"]["descriptions"] > 0
    if not m.share_text_encoder:
        assert ing["parameters"]["metadata_text_encoder"]["trainable"] == ing["parameters"]["text_encoder"]["trainable"]
    # how batches reached the model (the DataLoader path for every trainable or train-mode backbone)
    pipeline = ing["input_pipeline"]
    if m.audio_cached:
        assert pipeline["source"] == "cached frames" and pipeline["num_workers"] == 0, (name, pipeline)
    else:
        assert pipeline["source"] == "waveforms" and pipeline["waveform_cache"] is cfg.waveform_cache, name
        assert pipeline["num_workers"] == cfg.num_workers, name
    # clip counts and exclusions are data_report.json's (ingredients.json points there, repeats none)
    assert ing["data"]["clips_and_exclusions"] == "data_report.json"
    report = result["data_report"]
    assert report["clips"] == {role: s["clips"] for role, s in ing["data"]["splits"].items()}, name
    assert report["excluded"] == {}, (name, report["excluded"])  # the rehearsal's real audio is all usable
    if cfg.dataset == "wavcaps-fs":
        wavcaps = next(r for r in report["load_reports"] if r["dataset"] == "wavcaps-fs")
        assert wavcaps["excluded"] == 1 and "also in Clotho" in " ".join(wavcaps["notes"])
        assert ing["data"]["benchmark"] == "clotho"


@pytest.mark.slow
@pytest.mark.parametrize("name", ROWS)
def test_paper_config_runs_end_to_end_on_the_rehearsal(name, rehearsal_root, tmp_path, memory_budget):
    """One config of experiments/hybrid or experiments/mei: two optimisation steps (interrupted after the first
    and resumed for the rows of RESUMED, one per paper and kind of checkpoint), validation, checkpoints, test
    evaluation, metrics files, and its declared ingredients; CPU."""
    from hybridlib.reproduce import table_entries

    entry = next(e for e in table_entries("all") if e.name == name)
    with memory_budget(H.row_memory(load_config(entry.config))):
        result = H.run_row(name, rehearsal_root, tmp_path / "runs", interrupt=name in RESUMED)
    print(f"[rehearsal] {name}: {result['wall_seconds']} s wall {result['cpu_seconds']} s CPU, "
          f"peak RSS {result['peak_rss_gb']} GB (process)")
    _check_row(load_config(entry.config), result)


@pytest.mark.slow
@EXTRA_GROUP["frozen_as_upstream"]
def test_frozen_as_upstream_keeps_frozen_encoders_in_train_mode(rehearsal_root, tmp_path):
    """``model.frozen_mode=train`` (Mei et al.'s "frozen"): nothing cached, no trainable encoder parameter, but
    the backbone's BatchNorm statistics move, its SpecAugment and the text encoder's dropout are active."""
    from hybridlib.models.audio.checkpoints import read_checkpoint
    from hybridlib.reproduce import reproduce, table_entries

    entry = next(e for e in table_entries("all") if e.name == "mei-clotho-frozen-nt-xent")
    out = tmp_path / "runs"
    result = reproduce("all", seeds=[0], out=out, rows=[entry.name], rehearsal=rehearsal_root,
                       overrides=["model.frozen_mode=train"], progress=False)
    assert result["rows"][0].problems == {}
    seed_dir = runs.seed_dir(out / "mei-clotho-frozen-nt-xent", 0)
    ing = runs.read_ingredients(seed_dir)
    assert not ing["audio"]["cached"] and not ing["text"]["cached"] and ing["audio"]["frozen_mode"] == "train"
    assert ing["parameters"]["audio_backbone"] == {"total": ing["parameters"]["audio_backbone"]["total"], "trainable": 0}
    assert ing["parameters"]["audio_backbone"]["total"] > 0 and ing["parameters"]["text_encoder"]["trainable"] == 0
    assert ing["audio"]["spec_augment"]["active"]
    from safetensors.torch import load_file

    saved = load_file(str(seed_dir / runs.BEST / "model.safetensors"))
    initial, _ = read_checkpoint(read_manifest(rehearsal_root)["weights"]["panns-resnet38"])
    assert not saved["audio_backbone.bn0.running_mean"].equal(initial["bn0.running_mean"])  # statistics updated
    assert saved["audio_backbone.conv_block1.conv1.weight"].equal(initial["conv_block1.conv1.weight"])  # frozen


@pytest.mark.slow
@EXTRA_GROUP["missing_clotho_clip"]
def test_a_clotho_clip_without_its_audio_file_is_excluded_counted_and_named(rehearsal_root, tmp_path):
    """A Clotho paper row (frozen PANNs: the feature-cache path) on the rehearsal with one development clip's
    file deleted: the run trains on the others, and its data_report.json names the clip and why."""
    import shutil

    import rehearsal_helpers as H

    root = tmp_path / "rehearsal"
    root.mkdir()
    for path in rehearsal_root.iterdir():  # everything linked, Clotho's development audio copied but one clip
        if path.name != "CLOTHO_v2.1":
            (root / path.name).symlink_to(path)
    shutil.copytree(rehearsal_root / "CLOTHO_v2.1", root / "CLOTHO_v2.1",  # hard links: a per-file symlink out
                    copy_function=H.mirror_file)                             # of the audio folder is refused
    development = load_clotho(rehearsal_root, "development")
    gone = next(iter(development)).clip_id
    (root / "CLOTHO_v2.1" / "clotho_audio_files" / "development" / gone).unlink()

    result = H.run_row("mei-clotho-frozen-triplet-max", root, tmp_path / "runs")
    assert result["state"] == "finished" and result["problems"] == {}
    report = result["data_report"]
    assert list(report["excluded"]) == ["clotho/development"]
    assert list(report["excluded"]["clotho/development"]) == [gone]
    assert "no audio file" in report["excluded"]["clotho/development"][gone]
    dev = next(r for r in report["load_reports"] if r["split"] == "development")
    assert dev["excluded"] == 1 and dev["missing_audio"] == 1
    assert report["clips"]["train"] == len(development) - 1 == result["ingredients"]["data"]["splits"]["train"]["clips"]
