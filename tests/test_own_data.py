"""Off the default path: your own sounds (a teaching set from a folder bank, another size or seed) and real
datasets (the rehearsal's Clotho in both layouts, AudioCaps with AudioSet labels) in the command line and in
the notebooks, recognised from the folder (:mod:`hybridlib.data.detect`, :func:`hybridlib.nbutils.open_data`).

Everything runs on small real data: the shared sound bank as a folder bank and the rehearsal's layouts.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import require_shared

from hybridlib import runner
from hybridlib.cli import main
from hybridlib.data import DatasetError
from hybridlib.data.detect import detect_dataset, find_datasets
from hybridlib.data.teaching import use_teaching_set
from hybridlib.nbutils import open_data
from hybridlib.paths import notebooks_dir

CONFIG = "experiments/teaching/hybrid-late.yaml"
BANK_CLIPS = ("6", "3", "3")
REHEARSAL_CLOTHO = {"development": 5, "validation": 3, "evaluation": 3}
REHEARSAL_AUDIOCAPS = {"train": 6, "val": 3, "test": 3}


@pytest.fixture(scope="session")
def bank_set() -> Path:
    """A teaching set made from the shared sound bank as a folder bank (tiny, seed 3), through the command a
    user runs; built once per session below the session folder (parallel workers wait on a file lock)."""
    import fcntl

    bank = require_shared("soundbank-modsounds")
    base = Path(os.environ["HYBRIDLIB_TEST_ROOT"])
    base.mkdir(parents=True, exist_ok=True)
    root = base / "bank-teaching-set"
    with open(base / "bank-teaching-set.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "teaching.json").is_file():
            assert main(["make-teaching-set", "--out", str(root), "--bank", str(bank), "--clips", *BANK_CLIPS,
                         "--seed", "3", "--no-progress"]) == 0
    return root


# ------------------------------------------------------------------ recognising a folder
def test_every_rehearsal_layout_is_recognised(rehearsal_root, bank_set):
    clotho = detect_dataset(rehearsal_root / "CLOTHO_v2.1")
    assert (clotho.dataset, clotho.label) == ("clotho", "Clotho (aac-datasets layout)")
    zenodo = detect_dataset(rehearsal_root / "zenodo-clotho")
    assert (zenodo.dataset, zenodo.label) == ("clotho", "Clotho (Zenodo layout)")
    audiocaps = detect_dataset(rehearsal_root / "AUDIOCAPS")
    assert audiocaps.dataset == "audiocaps" and audiocaps.audioset_labels == rehearsal_root / "AUDIOCAPS"
    assert detect_dataset(rehearsal_root / "WavCaps").dataset == "wavcaps-fs"
    assert detect_dataset(bank_set).dataset == "teaching"  # its Clotho layout is not also listed as Clotho
    # the rehearsal's own folder holds three datasets: the user names one
    assert [f.dataset for f in find_datasets(rehearsal_root)] == ["clotho", "audiocaps", "wavcaps-fs"]
    with pytest.raises(DatasetError, match="holds several datasets .* name one") as info:
        detect_dataset(rehearsal_root)
    assert "\n" not in str(info.value)
    assert detect_dataset(rehearsal_root, "audiocaps").dataset == "audiocaps"
    assert detect_dataset(bank_set, "clotho").dataset == "clotho"  # a teaching set read as plain Clotho


def test_an_unknown_folder_is_one_line_naming_what_was_looked_for(tmp_path, rehearsal_root):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hello\n")
    with pytest.raises(DatasetError) as info:
        detect_dataset(tmp_path / "stuff")
    message = str(info.value)
    assert "no dataset recognised" in message and "\n" not in message
    for looked_for in ("teaching.json", "clotho_captions_<split>.csv", "AUDIOCAPS/csv_files_v1", "fsd_final.json"):
        assert looked_for in message
    with pytest.raises(DatasetError, match="does not exist"):
        detect_dataset(tmp_path / "typo")
    with pytest.raises(DatasetError, match="holds Clotho .* not AudioCaps"):
        detect_dataset(rehearsal_root / "CLOTHO_v2.1", "audiocaps")


def test_a_named_teaching_set_is_used_as_it_is_and_a_dataset_download_is_named(bank_set, rehearsal_root, tmp_path):
    assert use_teaching_set(bank_set) == bank_set  # seed 3, 6/3/3 clips, a folder bank: not the defaults
    with pytest.raises(DatasetError) as info:
        use_teaching_set(rehearsal_root / "CLOTHO_v2.1")
    message = str(info.value)
    assert "holds Clotho (aac-datasets layout), not a teaching set: read it with --set dataset=clotho" in message
    assert "delete" not in message  # someone's download is not to be deleted
    half = tmp_path / "half"
    (half / "CLOTHO_v2.1").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not a complete teaching set .* empty it first") as info:
        use_teaching_set(half)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ the command line
@pytest.mark.slow
def test_cli_trains_on_a_teaching_set_made_from_a_folder_bank(bank_set, tmp_path, capsys):
    """make-teaching-set --bank DIR --clips ... --seed 3, then train --set data_root=SET (issue 19, move 1)."""
    out = tmp_path / "run"
    start = time.perf_counter()
    assert main(["train", "--config", CONFIG, "--out", str(out), "--seed", "0", "--set", "epochs=1",
                 "--set", "tensorboard=false", "--set", f"data_root={bank_set}", "--no-progress"]) == 0
    seconds = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert "teaching/development: 6 clips, 30 captions" in printed, printed
    metrics = json.loads((out / "seed-0" / "metrics-evaluation.json").read_text())["metrics"]
    _check_metrics(metrics)
    config = yaml.safe_load((out / "seed-0" / "config.yaml").read_text())
    assert config["data_root"] == str(bank_set) and config["dataset"] == "teaching"
    print(f"train on the folder-bank set: {seconds:.1f} s")


def test_cli_on_a_clotho_folder_with_a_teaching_config_names_the_setting(rehearsal_root, tmp_path, capsys):
    root = rehearsal_root / "CLOTHO_v2.1"
    assert main(["train", "--config", CONFIG, "--out", str(tmp_path / "run"), "--set", f"data_root={root}",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "holds Clotho (aac-datasets layout), not a teaching set: read it with --set dataset=clotho" in err


@pytest.mark.slow
def test_cli_trains_on_clotho_with_a_teaching_config_and_dataset_clotho(rehearsal_root, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--config", CONFIG, "--out", str(out), "--seed", "0", "--set", "epochs=1",
                 "--set", "tensorboard=false", "--set", f"data_root={rehearsal_root / 'zenodo-clotho'}",
                 "--set", "dataset=clotho", "--no-progress"]) == 0
    assert yaml.safe_load((out / "seed-0" / "config.yaml").read_text())["dataset"] == "clotho"


# ------------------------------------------------------------------ the notebooks' data choice
def test_open_data_says_what_it_uses_and_records_it(rehearsal_root, tmp_path, capsys):
    choice = open_data(rehearsal_root / "CLOTHO_v2.1", out=tmp_path)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("dataset: Clotho (aac-datasets layout)")
    assert "development 5, validation 3, evaluation 3" in first
    assert choice.splits == REHEARSAL_CLOTHO and choice.roles["test"] == "evaluation"
    recorded = json.loads((tmp_path / "results.json").read_text())["dataset"]
    assert recorded["name"] == "clotho" and recorded["splits"] == REHEARSAL_CLOTHO
    cfg = choice.config("hybrid-late", smoke=True)
    assert (cfg.dataset, cfg.data_root) == ("clotho", str(rehearsal_root / "CLOTHO_v2.1"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hybridlib.nbutils import save_figure

    fig, _ = plt.subplots()
    save_figure(fig, tmp_path, "a")
    save_figure(fig, tmp_path, "b")  # labelled once
    assert [t.get_text() for t in fig.texts] == ["data: Clotho (aac-datasets layout)"]
    assert (tmp_path / "a.png").is_file()
    plt.close(fig)


def test_open_data_on_audiocaps_reads_tags_and_skips_what_it_cannot(rehearsal_root, tmp_path, capsys):
    choice = open_data(rehearsal_root / "AUDIOCAPS")
    assert choice.splits == REHEARSAL_AUDIOCAPS and choice.metadata["os"] == 0 and choice.metadata["cs"] > 0
    late = choice.config("hybrid-late", smoke=True)  # OS keywords: AudioCaps has tags instead
    assert late.metadata_by_dataset == {"audiocaps": "cs"}
    assert late.audioset_labels == str(rehearsal_root / "AUDIOCAPS")
    assert choice.load("test")[0].tags
    capsys.readouterr()
    kept = choice.configs(["baseline", "hybrid-late-fs", "hybrid-late-generated-captions"], smoke=True)
    assert list(kept) == ["baseline"]
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("hybrid-late-fs: skipped on AudioCaps (full-sentence") for line in lines)
    assert any("captions generated from keywords need keywords" in line for line in lines)
    # without AudioSet's label files AudioCaps has no metadata at all: a hybrid config stops in one line
    bare = tmp_path / "AUDIOCAPS"
    shutil.copytree(rehearsal_root / "AUDIOCAPS", bare, ignore=shutil.ignore_patterns("*.csv"))
    shutil.copytree(rehearsal_root / "AUDIOCAPS" / "csv_files_v1", bare / "csv_files_v1", dirs_exist_ok=True)
    choice = open_data(bare)
    assert choice.audioset_labels is None and "no AudioSet label files" in str(choice)
    with pytest.raises(DatasetError, match="has no metadata: no clip with keywords or tags .*AudioSet"):
        choice.config("hybrid-late", smoke=True)
    assert choice.config("baseline", smoke=True).dataset == "audiocaps"


def test_open_data_on_a_bank_set_uses_it_as_it_is(bank_set, capsys):
    choice = open_data(str(bank_set))
    assert choice.dataset == "teaching" and not choice.default and choice.ground_truth
    assert choice.splits == {"development": 6, "validation": 3, "evaluation": 3}
    assert choice.config_values() == {"dataset": "teaching", "data_root": str(bank_set)}
    labels, n_events, source = choice.clip_labels(choice.load("train"))
    assert len(labels) == 6 and sum(n_events.values()) >= 6 and source.startswith("ground truth")


# ------------------------------------------------------------------ the notebooks on real folders (SMOKE)
def _roots(rehearsal_root: Path, bank_set: Path) -> dict[str, tuple[Path, str, dict]]:
    """root name -> (DATA, the dataset's name in the first output, its split sizes)."""
    bank = {"development": 6, "validation": 3, "evaluation": 3}
    return {"clotho": (rehearsal_root / "CLOTHO_v2.1", "Clotho (aac-datasets layout)", REHEARSAL_CLOTHO),
            "zenodo": (rehearsal_root / "zenodo-clotho", "Clotho (Zenodo layout)", REHEARSAL_CLOTHO),
            "audiocaps": (rehearsal_root / "AUDIOCAPS", "AudioCaps (with AudioSet labels)", REHEARSAL_AUDIOCAPS),
            "bank": (bank_set, "teaching set", bank)}


# every notebook that reads data on a non-default root, every layout at least once; AudioCaps (closed-set tags
# from AudioSet) where tags are used: 01/02 (tag statistics, CS zero-shot), 08 (mid fusion on tags). Notebook 00
# is the tour and 05 works on toy embeddings only: neither reads a dataset.
MATRIX = [("01", "audiocaps"), ("02", "audiocaps"), ("03", "zenodo"), ("04", "zenodo"), ("06", "clotho"),
          ("06", "bank"), ("07", "clotho"), ("08", "audiocaps"), ("09", "clotho")]


def _first_output(nb) -> str:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                return out["text"]
    return ""


def _check_metrics(metrics: dict) -> None:
    assert all(0 <= metrics[k] <= 100 for k in ("t2a_mAP@10", "t2a_R@1", "t2a_R@10"))
    assert metrics["t2a_R@1"] <= metrics["t2a_R@5"] <= metrics["t2a_R@10"]


@pytest.mark.notebooks
@pytest.mark.parametrize("number,root_name", MATRIX, ids=[f"{n}-{r}" for n, r in MATRIX])
def test_notebook_runs_on_a_real_folder(number, root_name, rehearsal_root, bank_set, tmp_path, memory_budget):
    import contextlib

    from test_notebooks import output_noise

    data, label, sizes = _roots(rehearsal_root, bank_set)[root_name]
    path = next(p for p in runner.list_notebooks(notebooks_dir()) if p.stem.startswith(number))
    # notebook 09 fine-tunes both encoders and starts a torchrun pair
    with memory_budget("notebook 09") if number == "09" else contextlib.nullcontext():
        run = runner.run_notebook(path, tmp_path, {"SMOKE": True, "DATA": str(data)})
    assert run.ok, f"{path.name} on {root_name}: {run.error} (executed copy: {run.output})"
    print(f"{path.stem} on {root_name}: {run.seconds:.1f} s")
    nb = nbformat.read(str(run.output), as_version=4)
    assert output_noise(nb) == []
    first = _first_output(nb)  # the first thing the notebook says: the dataset and its split sizes
    assert first.startswith(f"dataset: {label} in {data}")
    assert "clips per split: " + ", ".join(f"{s} {n}" for s, n in sizes.items()) in first
    results = json.loads((tmp_path / path.stem / "results.json").read_text())
    assert results["dataset"]["label"] == label and results["dataset"]["splits"] == sizes
    if number == "04":
        assert set(results["test_metrics"]) == {"none", "late", "mid"}
        for metrics in results["test_metrics"].values():
            _check_metrics(metrics)
    if number == "06":
        assert set(results["test_metrics"]) == {"baseline", "hybrid-late"}
        for name, cfg in results["configs"].items():
            assert cfg["dataset"] == ("teaching" if root_name == "bank" else "clotho"), name
            assert cfg["data_root"] == str(data), name
            _check_metrics(results["test_metrics"][name])
    if number == "07":
        assert results["test_split"]["clips"] == sizes["evaluation"]
        assert {"baseline", "hybrid-late", "hybrid-mid", "hybrid-late-fs"} <= set(results["hybrid"])
        assert {row["knob"] for row in results["metadata_sweep"]} == {"remove_metadata", "drop_tags"}
    if number == "08":
        assert results["n_clips"] == sizes["test"] and results["fusion"] == "mid"
        assert results["agreement"]["same_rank"] == results["agreement"]["captions"]
    if number == "09":  # fine-tuned and frozen on the folder's clips (all of them: fewer than the miniature's)
        assert results["encoders_trained"] == {"audio": {"name": "sfx-cnn", "trained": True},
                                               "text": {"name": "minilm", "trained": True}}
        assert results["scale"]["scale"] == "miniature" and results["device"] == "cpu"
        assert set(results["test_metrics"]) == {"frozen", "fine-tuned"}
        for metrics in results["test_metrics"].values():
            _check_metrics(metrics)
        assert results["ddp"]["2"]["processes"] == 2 and results["ddp"]["1"]["processes"] == 1
    if number == "02":
        kinds = {row["metadata"] for row in results["zero_shot_teaching"]}
        assert "CS" in kinds and "OS" not in kinds and results["sweep_metadata"] == "cs"  # AudioCaps: tags only


def test_cli_configs_find_audiocaps_tags_in_the_folder_the_user_names(rehearsal_root):
    """``--set data_root=<AudioCaps folder> --set dataset=audiocaps`` reads AudioSet's label files kept in that folder
    (as the notebooks do through open_data), and in the aac-datasets place below a parent folder."""
    from hybridlib.config import load_config
    from hybridlib.features.prepare import audioset_labels_dir

    config = Path(__file__).resolve().parents[1] / "experiments" / "teaching" / "hybrid-late-cs.yaml"
    named = load_config(config, overrides=["dataset=audiocaps", f"data_root={rehearsal_root / 'AUDIOCAPS'}"])
    assert audioset_labels_dir(named) == rehearsal_root / "AUDIOCAPS"
    parent = load_config(config, overrides=["dataset=audiocaps", f"data_root={rehearsal_root}"])
    assert audioset_labels_dir(parent) == rehearsal_root / "AUDIOCAPS"


def test_the_default_teaching_sets_line_is_the_same_on_every_machine():
    """nbval compares the notebooks' first output between the smoke run (data in the test session's folder) and
    its re-execution (data in the project): the default set is named by its folder, not the machine's path."""
    from hybridlib.paths import data_dir

    line = str(open_data(None, smoke=True, show=False))
    assert line.startswith("dataset: teaching set in its default folder teaching-smoke/ | clips per split:")
    assert str(data_dir()) not in line
