"""Tables -> configs, shards, the rehearsal overrides, seed states, and the ingredient report of a training run."""

from __future__ import annotations

import json

import pytest
from training_helpers import tiny_cfg, tiny_training_data

from hybridlib import paper, runs
from hybridlib.config import load_config
from hybridlib.reproduce import (
    REHEARSAL_OVERRIDES,
    TABLES,
    rehearsal_overrides,
    row_config,
    seed_state,
    select_entries,
    table_entries,
)
from hybridlib.util.errors import UserError


@pytest.mark.parametrize("table", sorted(t for t in TABLES if "config_dir" not in TABLES[t]))  # paper tables
def test_every_table_row_has_its_config(table):
    entries = table_entries(table)
    assert [e.row for e in entries] == TABLES[table]["rows"]
    for e in entries:
        cfg = load_config(e.config)
        assert cfg.name == e.name and (cfg.paper_row == e.row or e.row == cfg.paper_row + "/bs32")
        assert paper.paper_row(e.row)


def test_mei_table_2_batch_32_rows_are_table_1_runs_and_all_has_every_config():
    t2 = {e.row: e.name for e in table_entries("mei-table-2")}
    assert t2["mei/audiocaps/frozen/nt-xent/bs32"] == "mei-audiocaps-frozen-nt-xent"
    assert t2["mei/audiocaps/frozen/nt-xent/bs128"] == "mei-audiocaps-frozen-nt-xent-bs128"
    everything = table_entries("all")
    assert len(everything) == len({e.name for e in everything}) == 40


def test_rows_and_shards_split_a_table_exactly_once():
    entries = table_entries("hybrid-table-1")
    shards = [select_entries(entries, shard=f"{i}/3") for i in (1, 2, 3)]
    assert sorted(e.row for s in shards for e in s) == sorted(e.row for e in entries)
    picked = select_entries(entries, rows=["hybrid/clotho/late-os", "hybrid-audiocaps-baseline"])
    assert [e.name for e in picked] == ["hybrid-audiocaps-baseline", "hybrid-clotho-late-os"]  # table order
    with pytest.raises(UserError, match="not in this table"):
        select_entries(entries, rows=["nope"])
    with pytest.raises(UserError, match="i/n"):
        select_entries(entries, shard="2")
    with pytest.raises(UserError, match="unknown table"):
        table_entries("table-9")


def test_rehearsal_overrides_point_at_the_stand_ins_and_change_nothing_that_defines_a_row(tmp_path):
    (tmp_path / "rehearsal.json").write_text(json.dumps({
        "weights": {"efficientat-mn40": "/w/mn40.pt", "panns-resnet38": "/w/r38.pth"},
        "text_models": {"bert-large-uncased": "/t/large", "bert-base-uncased": "/t/base"}}))
    entry = next(e for e in table_entries("all") if e.name == "hybrid-clotho-large-late-os")
    declared = load_config(entry.config)
    over = rehearsal_overrides(declared, tmp_path)
    assert over["model"] == {"audio_checkpoint": "/w/mn40.pt", "text_encoder": "/t/large"}
    flat = {k for k in over if k != "model"} | {f"model.{k}" for k in over["model"]}
    assert flat <= set(REHEARSAL_OVERRIDES)
    cfg = row_config(entry, ["epochs=3", "model.num_heads=4"], rehearsal=tmp_path)
    assert (cfg.epochs, cfg.captions_per_clip, cfg.model["num_heads"], cfg.model["text_encoder"]) == (3, 1, 4, "/t/large")
    same = {k: v for k, v in cfg.model.items() if k not in ("audio_checkpoint", "text_encoder", "num_heads")}
    assert same == {k: v for k, v in declared.model.items() if k not in ("audio_checkpoint", "text_encoder", "num_heads")}
    assert (cfg.loss, cfg.lr, cfg.schedule, cfg.batch_size, cfg.select_metric) == (
        declared.loss, declared.lr, declared.schedule, declared.batch_size, declared.select_metric)


def test_seed_states(tmp_path):
    from hybridlib.training import train

    cfg = tiny_cfg(epochs=2)
    assert seed_state(cfg, tmp_path) == "new"
    train(cfg.replace(stop_after_epoch=1), tmp_path, data=tiny_training_data(cfg), model=_tiny(), progress=False)
    assert seed_state(cfg, tmp_path) == "interrupted"
    train(cfg, tmp_path, data=tiny_training_data(cfg), model=_tiny(), resume=True, progress=False)
    assert seed_state(cfg, tmp_path) == "finished"
    with pytest.raises(runs.ConfigChanged, match="another config"):
        seed_state(cfg.replace(lr=1e-2), tmp_path)


def _tiny():
    from training_helpers import TinyModel

    return TinyModel()


def test_training_writes_the_ingredient_report(tmp_path):
    from hybridlib.training import train
    from hybridlib.training.ingredients import ingredient_problems

    cfg = tiny_cfg(epochs=4)
    data = tiny_training_data(cfg)
    train(cfg, tmp_path, data=data, model=_tiny(), progress=False)
    report = runs.read_ingredients(tmp_path)
    steps = data.train.n_training_batches(cfg.batch_size)
    sched = report["schedule"]
    assert (sched["total_steps"], sched["lr_peak"]) == (4 * steps, cfg.lr)
    assert sched["lr_last_step"] == pytest.approx(cfg.lr_min)
    assert sched["lr_first_step"] == pytest.approx(cfg.lr / steps)  # linear warm-up over the first epoch
    assert report["parameters"]["all"]["trainable"] == sum(p.numel() for p in _tiny().parameters())
    assert report["data"]["metadata_coverage"] == {"train": None, "val": None, "test": None}  # content-only
    assert report["optimisation"]["global_batch"] == cfg.batch_size and report["optimisation"]["processes"] == 1
    assert ingredient_problems(cfg, report) == []
    # the check can fail: a fusion row whose metadata never arrived, a frozen encoder with trainable weights
    late = cfg.replace(model={"fusion": "late"})
    report["data"]["metadata_coverage"] = {"train": 0.0, "val": 1.0, "test": 1.0}
    report["parameters"]["text_encoder"]["trainable"] = 10
    problems = ingredient_problems(late, report)
    assert any("coverage of train is 0.0" in p for p in problems)
    assert any("text encoder should be frozen" in p for p in problems)


def test_readme_reproduction_table_is_generated_from_the_configs():
    from hybridlib.gpu_plan import reproduction_table_markdown
    from hybridlib.paths import project_root

    readme = (project_root() / "README.md").read_text()
    block = readme.split("<!-- reproduction-table:start -->\n")[1].split("<!-- reproduction-table:end -->")[0]
    assert block == reproduction_table_markdown("all"), "regenerate: .venv/bin/python -m hybridlib reproduce all --plan"
    assert block.count("\n| `") == 40


def test_gpu_estimates_follow_the_rows_ingredients():
    from hybridlib.gpu_plan import estimate, reproduction_rows

    rows = {r["name"]: r for r in reproduction_rows("all")}
    late, large = rows["hybrid-clotho-late-os"], rows["hybrid-clotho-large-late-os"]
    assert large["gpu_hours"] > late["gpu_hours"] > rows["hybrid-clotho-baseline"]["gpu_hours"]
    assert large["memory_gb"] > late["memory_gb"]
    frozen, tuned = rows["mei-audiocaps-frozen-nt-xent"], rows["mei-audiocaps-finetune-nt-xent"]
    assert frozen["gpu_hours"] < 0.05 * tuned["gpu_hours"] and frozen["memory_gb"] < tuned["memory_gb"]
    assert rows["mei-audiocaps-frozen-nt-xent-bs128"]["memory_gb"] == frozen["memory_gb"]  # heads only
    assert late["command"] == ".venv/bin/python -m hybridlib reproduce hybrid-table-1 --rows hybrid-clotho-late-os --seeds 0 1 2"
    assert late["metrics"] == "runs/reproduce/hybrid-clotho-late-os/metrics-evaluation.json"
    cfg = load_config(next(e.config for e in table_entries("all") if e.name == "hybrid-clotho-late-os"))
    assert estimate(cfg.replace(epochs=50))["gpu_hours"] > 1.9 * estimate(cfg)["gpu_hours"]


@pytest.mark.slow
def test_cost_constants_are_what_the_flop_counter_measures():
    from hybridlib.gpu_plan import COSTS, measure_costs

    measured = measure_costs()
    for name, values in COSTS.items():
        for key, value in values.items():
            assert measured[name][key] == pytest.approx(value, rel=0.01), (name, key)


def test_gpu_check_on_a_cpu_says_it_needs_cuda_and_exits_0():
    import os
    import subprocess
    import sys

    from hybridlib.paths import project_root

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(project_root())}
    proc = subprocess.run([sys.executable, str(project_root() / "benchmarks" / "gpu_check.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "needs a CUDA GPU" in proc.stdout


# ---------------------------------------------------------------------------------------------------- ingredients
def _report(cfg, model=None, world_size: int = 1):
    from hybridlib.training.ingredients import ingredient_report

    data = tiny_training_data(cfg)
    return ingredient_report(cfg, model or _tiny(), data, data.train.n_training_batches(cfg.batch_size), world_size)


def test_a_cpu_run_records_amp_off_and_keeps_the_configured_value():
    from hybridlib.training.ingredients import amp_in_effect

    report = _report(tiny_cfg(amp=True))
    assert (report["optimisation"]["amp"], report["optimisation"]["amp_config"]) == (False, True)
    assert report["optimisation"]["device"] == "cpu"
    assert amp_in_effect(tiny_cfg(amp=True), "cuda:0") and not amp_in_effect(tiny_cfg(amp=False), "cuda")


def test_the_model_section_is_read_from_the_built_model():
    """A Mei et al. model records no metadata path, no transformer pooling, layers or heads; a late-fusion model
    records the pooling it was built with, whatever the defaults say."""
    from training_helpers import DA, DT

    from hybridlib.models.config import ModelConfig
    from hybridlib.models.retrieval import RetrievalModel

    dims = {"audio_dim": DA, "text_dim": DT, "retrieval_dim": 8}
    mei_cfg = tiny_cfg(model={"fusion": "mei", **dims})
    report = _report(mei_cfg, RetrievalModel(ModelConfig(**mei_cfg.model)))
    model = report["model"]
    assert model["fusion"] == "mei" and model["metadata"] is False and model["missing_metadata"] is None
    assert model["pooling"] == {"kind": "max-mean over frames (no parameters)", "width": DA}
    assert "metadata_kind" not in model and "num_layers" not in model and "num_heads" not in model
    assert model["item_projection"].startswith("mlp") and model["retrieval_dim"] == 8
    assert set(report["data"]["metadata_kind"].values()) == {None}
    late_cfg = tiny_cfg(model={"fusion": "late", "num_layers": 1, "num_heads": 2, **dims})
    late = _report(late_cfg, RetrievalModel(ModelConfig(**late_cfg.model)))["model"]
    assert late["pooling"] == {"kind": "transformer", "layers": 1, "heads": 2, "width": DT}
    assert late["metadata"] is True and late["missing_metadata"] == "learned" and late["item_projection"] == "linear"
    mid_cfg = tiny_cfg(model={"fusion": "mid", "num_layers": 3, "num_heads": 3, **dims})
    mid = _report(mid_cfg, RetrievalModel(ModelConfig(**mid_cfg.model)))["model"]
    assert mid["pooling"]["layers"] == 3 and mid["query_projection"] == "gated embedding units"
    assert mid["retrieval_dim"] == 8
    assert _report(tiny_cfg())["model"]["pooling"] is None  # a model without a pooling module records none


def _paper_cfg(**changes):
    """A tiny config claiming Table I's Clotho baseline, with the paper's optimisation settings."""
    base = dict(paper_row="hybrid/clotho/baseline", batch_size=32, epochs=25, lr=2e-5, lr_min=1e-7)
    return tiny_cfg(**{**base, **changes})


def _settings(differences):
    return {d["setting"] for d in differences}


def test_a_paper_row_is_compared_with_the_papers_settings():
    from hybridlib.training.ingredients import ingredient_problems, paper_differences

    cfg = _paper_cfg()
    same = _settings(paper_differences(cfg, _report(cfg)))
    # the tiny stand-in model is not the paper's (encoders), but the optimisation settings are
    assert {"audio encoder", "text encoder"} <= same
    assert not same & {"batch", "learning rate", "epochs", "schedule", "warm-up epochs", "final learning rate", "loss"}
    assert _settings(paper_differences(cfg.replace(paper_row=None), _report(cfg))) == set()  # not a paper row
    # an edited batch, an edited learning rate, another schedule: each flagged as a problem
    for edit, setting, text in ((dict(batch_size=16), "batch", "batch 16 over 1 process(es) (paper: 32)"),
                                (dict(lr=1e-4), "learning rate", "learning rate 0.0001 (paper: 2e-05)"),
                                (dict(epochs=10), "epochs", "epochs 10 (paper: 25)"),
                                (dict(schedule="constant"), "schedule", "schedule 'constant'"),
                                (dict(captions_per_clip=2), "captions per clip and epoch", "captions per clip")):
        edited = _paper_cfg(**edit)
        differences = paper_differences(edited, _report(edited))
        assert _settings(differences) - same == {setting}, edit
        assert any(p.startswith(text) for p in ingredient_problems(edited, _report(edited))), edit
    # a Mei et al. row: the loss hyperparameter the paper states
    mei = tiny_cfg(paper_row="mei/clotho/frozen/triplet-max", loss="triplet-max", loss_kwargs={"margin": 0.5},
                   batch_size=24, lr=1e-4, epochs=50, schedule="step", warmup_epochs=0)
    assert "loss margin 0.5 (paper: 0.2)" in ingredient_problems(mei, _report(mei))


def test_several_processes_are_compared_by_their_global_batch():
    """The config's batch is the global batch whatever the number of processes: two processes with the paper's batch
    hold the paper's setting, a batch doubled for two processes does not, and a report written under the old rule
    (a per-process batch with ``world_size``) is compared by batch x processes."""
    from hybridlib.training.ingredients import paper_differences

    cfg = _paper_cfg()
    report = _report(cfg, world_size=2)  # the paper's 32, split 16 + 16
    assert report["optimisation"]["processes"] == 2 and "batch" not in _settings(paper_differences(cfg, report))
    doubled = cfg.replace(batch_size=64)
    batch = [d for d in paper_differences(doubled, _report(doubled, world_size=2)) if d["setting"] == "batch"]
    assert [(d["ours"], d["paper"]) for d in batch] == [(64, 32)] and "over 2 process(es)" in batch[0]["text"]
    old = {**report["optimisation"], "world_size": 2}
    for key in ("processes", "global_batch", "batch_per_process"):
        old.pop(key)
    batch = [d for d in paper_differences(cfg, {**report, "optimisation": old}) if d["setting"] == "batch"]
    assert [(d["ours"], d["paper"]) for d in batch] == [(64, 32)]


def test_the_rehearsals_overrides_are_known_deviations_not_problems(tmp_path):
    from hybridlib.reproduce import deliberate_settings
    from hybridlib.training.ingredients import deliberate_deviations, ingredient_problems

    cfg = _paper_cfg(epochs=2, captions_per_clip=1)
    report = _report(cfg)
    deliberate = {"epochs": 2, "captions_per_clip": 1}
    problems = ingredient_problems(cfg, report, deliberate=deliberate)
    deviations = deliberate_deviations(cfg, report, deliberate)
    assert "epochs 2 (paper: 25)" in deviations and not any(p.startswith("epochs") for p in problems)
    assert any(d.startswith("captions per clip") for d in deviations)
    assert "epochs 2 (paper: 25)" in ingredient_problems(cfg, report)  # not a rehearsal: a problem
    # a user's edit on top of the rehearsal is not the rehearsal's deviation
    edited = cfg.replace(epochs=3)
    assert "epochs 3 (paper: 25)" in ingredient_problems(edited, _report(edited), deliberate=deliberate)
    # the rehearsal's settings, flattened as the ingredient check reads them
    (tmp_path / "rehearsal.json").write_text(json.dumps({"weights": {"efficientat-mn40": "/w/mn40.pt"},
                                                         "text_models": {"bert-base-uncased": "/t/base"}}))
    declared = load_config(next(e.config for e in table_entries("all") if e.name == "hybrid-clotho-late-os"))
    flat = deliberate_settings(declared, tmp_path)
    assert flat["model.audio_checkpoint"] == "/w/mn40.pt" and flat["model.text_encoder"] == "/t/base"
    assert set(flat) <= set(REHEARSAL_OVERRIDES) and flat["epochs"] == 2


def _fake_finished_row(out, name, rehearsal, metrics):
    """Seed 0 of row ``name`` as a finished run leaves it (its config and test metrics; numbers given)."""
    entry = next(e for e in table_entries("all") if e.name == name)
    cfg = row_config(entry, rehearsal=rehearsal).replace(seed=0)
    seed_dir = runs.seed_dir(out / cfg.name, 0)
    runs.save_config(cfg, seed_dir)
    runs.write_seed_metrics(seed_dir, cfg, metrics, cfg.splits()[2])


@pytest.mark.parametrize("rehearsal", [True, False], ids=["rehearsal", "real"])
def test_reproduce_labels_rehearsal_numbers_in_the_console_csv_and_json(rehearsal, tmp_path, capsys):
    """``reproduce mei-table-2 --report`` over finished seeds: with ``--rehearsal`` a header line, a marker on every
    row and finding line, a ``rehearsal`` column in the CSV and the JSON say the numbers are stand-ins."""
    import csv

    from hybridlib.cli import main
    from hybridlib.reproduce import REHEARSAL_LABEL, REHEARSAL_MARKER

    root = tmp_path / "rehearsal"
    root.mkdir()
    (root / "rehearsal.json").write_text(json.dumps({"weights": {"panns-resnet38": "/w/r38.pth"},
                                                     "text_models": {"bert-base-uncased": "/t/base"}}))
    out = tmp_path / "reproduce"
    values = {"t2a_R@1": 61.11, "t2a_R@5": 70.0, "t2a_R@10": 80.0, "a2t_R@1": 50.0}
    for name in ("mei-audiocaps-frozen-nt-xent", "mei-audiocaps-frozen-nt-xent-bs128"):
        _fake_finished_row(out, name, root if rehearsal else None, values)
    args = ["reproduce", "mei-table-2", "--out", str(out), "--seeds", "0", "--report", "--no-progress",
            "--rows", "mei-audiocaps-frozen-nt-xent", "mei-audiocaps-frozen-nt-xent-bs128"]
    assert main(args + (["--rehearsal", str(root)] if rehearsal else [])) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("mei/")]
    findings = [line for line in printed.splitlines() if "stable when the batch grows" in line]
    assert len(rows) == 2 * 2 and len(findings) == 1  # t2a_R@1 and R@10 of the bs32 and bs128 rows; one finding
    assert (REHEARSAL_LABEL in printed) is rehearsal
    assert all(line.endswith(REHEARSAL_MARKER) is rehearsal for line in rows + findings)
    with open(out / "mei-table-2-comparison.csv") as fh:
        table = list(csv.DictReader(fh))
    assert table and {r["rehearsal"] for r in table} == {str(rehearsal)}
    saved = json.loads((out / "mei-table-2-comparison.json").read_text())
    assert (saved["label"] == REHEARSAL_LABEL) is rehearsal and (saved["rehearsal"] is not None) is rehearsal
    assert {r["rehearsal"] for r in saved["comparison"] + saved["findings"]} == {rehearsal}
