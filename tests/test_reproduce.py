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
