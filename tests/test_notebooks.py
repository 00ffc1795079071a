"""Every notebook of the series follows the conventions, runs in its SMOKE configuration, and its
``results.json`` holds what it claims (trained models beat chance, the documented keys exist, ...).

The smoke runs write their executed copies to ``runs/test-smoke/``; `make test` then re-executes those
copies with ``pytest --nbval-lax`` and compares the cells tagged ``nbval-check-output``. The first run
fills the (session's empty) feature cache, the re-execution reads it, so that pass checks that the
notebooks' numbers do not depend on whether the features were computed or cached.
"""

from __future__ import annotations

import ast
import contextlib
import json
import shutil

import nbformat
import pytest

from hybridlib import notebook_format, runner
from hybridlib.paths import notebooks_dir, project_root

NOTEBOOKS = runner.list_notebooks(notebooks_dir())
SMOKE_OUT = project_root() / "runs" / "test-smoke"
REQUIRED_PARAMETERS = {"SMOKE", "SEED", "OUT_DIR"}


def _read(path):
    return nbformat.read(str(path), as_version=4)


def test_series_is_complete():
    numbers = [p.stem[:2] for p in NOTEBOOKS]
    assert numbers == sorted(set(numbers)), "notebook numbers must be unique"
    assert numbers and numbers[0] == "00"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_conventions(path):
    nb = _read(path)
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.lstrip().startswith("#"), "starts with a title"
    assert "runtime" in cells[0].source.lower(), "the first markdown cell states the runtime"
    code = [c for c in cells if c.cell_type == "code"]
    for cell in code:
        assert not cell.get("outputs"), f"{path.name}: committed with outputs"
        assert cell.get("execution_count") is None, f"{path.name}: committed with execution counts"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    params_index = tagged[0]
    # right after the imports: the only code cell before it is the imports cell
    before = [c for c in cells[:params_index] if c.cell_type == "code"]
    assert len(before) == 1, f"{path.name}: the parameters cell follows the imports cell"
    tree = ast.parse(before[0].source)
    assert all(isinstance(n, (ast.Import, ast.ImportFrom)) or isinstance(n, ast.Expr) for n in tree.body), (
        f"{path.name}: the first code cell holds only imports"
    )
    params_tree = ast.parse(cells[params_index].source)
    names = set()
    for node in params_tree.body:
        assert isinstance(node, (ast.Assign, ast.AnnAssign)), f"{path.name}: parameters cell holds assignments only"
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            assert isinstance(target, ast.Name) and target.id.isupper(), f"{path.name}: UPPER_CASE parameters"
            names.add(target.id)
    assert REQUIRED_PARAMETERS <= names, f"{path.name}: missing {REQUIRED_PARAMETERS - names}"
    checks = [c for c in code if "nbval-check-output" in c.metadata.get("tags", [])]
    assert checks, f"{path.name}: at least one cell tagged nbval-check-output"
    # the project kernel, as JupyterLab saves it (tests/test_notebook_format.py checks the whole form)
    assert nb.metadata.get("kernelspec", {}).get("name") == notebook_format.KERNEL_NAME


def _chance(n_clips: int) -> float:
    from hybridlib.evaluation import chance_map_at_k

    return chance_map_at_k(n_clips)


def _recalls_ordered(m: dict) -> bool:
    return m["t2a_R@1"] <= m["t2a_R@5"] <= m["t2a_R@10"] and m["a2t_R@1"] <= m["a2t_R@5"] <= m["a2t_R@10"]


def claims_00(r):
    assert all(r["models_found"].values())
    assert r["notebooks"] == [p.name for p in NOTEBOOKS]


def claims_01(r):
    assert [(s["split"], s["clips"], s["captions"]) for s in r["teaching_summary"]] == [
        ("development", 32, 160), ("validation", 16, 80), ("evaluation", 16, 80)]
    # "every clip has five captions and uploader-style keywords"
    assert all(s["captions"] == 5 * s["clips"] and s["without metadata"] == 0 and s["mean keywords"] >= 3
               for s in r["teaching_summary"])
    # "CS tags are almost complete": the clips without any are counted, and how many of them hold one event
    untagged = sum(s["without CS tags"] for s in r["teaching_summary"])
    assert r["clips_without_cs_tags"] == untagged and 0 <= r["single_event_clips_without_cs_tags"] <= untagged
    assert untagged < 0.25 * sum(s["clips"] for s in r["teaching_summary"])
    assert all(0.0 <= v <= 1.0 for k, v in r["teaching_design"].items() if k not in ("events", "mean events per clip"))
    assert len(r["fig4_top15"]) == 15
    assert 0 < r["top_caption_word_share"] <= 1
    # real Clotho from the tables `download clotho --csv-only` leaves (the smoke run passes them as CLOTHO_ROOT;
    # the v1 keywords stand in for v2.1's and cover 2893 of the 3839 development clips)
    assert r["real_clotho"] == "Clotho development" and r["fig4_source"] == "Clotho development"
    assert (r["real_report"]["clips"], r["real_report"]["missing_metadata"]) == (3839, 946)


def claims_02(r):
    zero = {row["metadata"]: row["mAP@10"] for row in r["zero_shot_teaching"]}
    random = next(v for k, v in zero.items() if k.startswith("none"))
    assert all(zero[k] > random + 10 for k in ("OS", "CS", "FS")), zero  # metadata alone beats random ranking
    sweep = [row for row in r["degradation_sweep"] if row["knob"] == "drop_tags"]
    assert sweep[0]["strength"] == 0.0 and sweep[-1]["mAP@10"] < sweep[0]["mAP@10"]  # fewer tags, worse
    # "real uploaders give more keywords per clip, from a far larger vocabulary, than the teaching set"
    real, teach = r["tag_stats"]["Clotho OS"], r["tag_stats"]["teaching OS"]
    assert real["mean tags"] > teach["mean tags"] and real["vocabulary"] > 10 * teach["vocabulary"]
    clotho = {row["metadata"]: row["mAP@10"] for row in r["zero_shot_clotho"]}
    assert clotho["OS"] > 3 * next(v for k, v in clotho.items() if k.startswith("none"))  # far above random


def claims_03(r):
    assert (r["embed_dim"], r["text_dim"]) == (512, 384)
    assert r["knn_main_class_accuracy"] > r["knn_chance"]  # frozen frames already group similar sounds
    assert all(0.0 < v <= 1.0 + 1e-6 for v in r["attention_spread"].values())  # the entropy ratio the text defines


def claims_04(r):
    assert set(r["test_metrics"]) == {"none", "late", "mid"}
    for name, m in r["test_metrics"].items():
        assert m["t2a_mAP@10"] > _chance(16), name
        assert _recalls_ordered(m), name
    assert all(0.0 < w < 1.0 for w in r["mid_metadata_weight"].values())


def claims_05(r):
    assert all(v > 0 for v in r["hand_batch_losses"].values())
    for row in r["bootstrap_ci"]:
        lo, hi = (float(x) for x in row["95% CI"].strip("[]").split(","))
        assert lo <= row["value"] <= hi, row


def claims_06(r):
    assert set(r["test_metrics"]) == {"baseline", "hybrid-late"}
    for name, m in r["test_metrics"].items():
        assert m["t2a_mAP@10"] > _chance(16) and _recalls_ordered(m), name
    gap = r["test_metrics"]["hybrid-late"]["t2a_mAP@10"] - r["test_metrics"]["baseline"]["t2a_mAP@10"]
    assert r["hybrid_minus_baseline_mAP@10"] == pytest.approx(gap)
    # "the plotted curve peaks at lr and ends at lr_min" (a SMOKE run has two steps: no room for the decay;
    # test_06_lr_schedule_claim checks the full teaching config)
    lr = r["lr_schedule"]
    assert lr["peak"] == pytest.approx(lr["lr"]) and lr["end"] <= lr["peak"]
    if lr["steps"] >= 3:
        assert lr["end"] == pytest.approx(lr["lr_min"])
    # "each example is a different clip"; good ones ranked first by the hybrid model, bad ones worse
    for kind in ("good", "bad"):
        clips = [e["clip"] for e in r["examples"] if e["kind"] == kind]
        assert clips and len(set(clips)) == len(clips), kind
    assert all(e["rank (hybrid-late)"] == 1 for e in r["examples"] if e["kind"] == "good")
    assert min(e["rank (hybrid-late)"] for e in r["examples"] if e["kind"] == "bad") > 1


def test_06_lr_schedule_claim():
    """Notebook 06: the warm-up + cosine curve of the teaching config peaks at `lr` and ends at `lr_min`."""
    import matplotlib

    matplotlib.use("Agg")
    from hybridlib.config import teaching_config
    from hybridlib.viz.training import plot_lr_schedule

    cfg = teaching_config("hybrid-late")
    fig = plot_lr_schedule(cfg, steps_per_epoch=19)  # 600 clips, one caption each, batch 32
    curve = fig.axes[0].lines[0].get_ydata()
    assert max(curve) == pytest.approx(cfg.lr) and curve[-1] == pytest.approx(cfg.lr_min)
    assert cfg.lr > 2e-5 and cfg.lr_min > 1e-7  # "they start higher and stop higher" than the paper's 2e-5 -> 1e-7


def claims_07(r):
    assert r["chance_mAP@10"] == pytest.approx(_chance(16))
    for name, agg in {**r["hybrid"], **r["losses"]}.items():
        if not name.startswith(("triplet-max", "triplet-weighted")):  # hard-negative losses may not learn in 2 epochs
            assert agg["t2a_mAP@10"]["mean"] > r["chance_mAP@10"], name
    gap = r["gaps_mAP@10"]["late - baseline"]
    assert gap["mean"] == pytest.approx(r["hybrid"]["hybrid-late"]["t2a_mAP@10"]["mean"]
                                        - r["hybrid"]["baseline"]["t2a_mAP@10"]["mean"])
    assert all(f["holds"] == ((f["our_gap"] > 0) == (f["paper_gap"] > 0)) for f in r["hybrid_findings"])
    keys = {f["key"] for f in r["hybrid_findings"]}
    assert {"shared>separate", "generated-captions:content>hybrid"} <= keys  # findings 4 and 5 of section V
    for gap, (better, worse) in {"shared - separate text layer": ("hybrid-late-text-shared", "hybrid-late-text-separate"),
                                 "content - late, generated captions": ("baseline-generated-captions",
                                                                        "hybrid-late-generated-captions")}.items():
        runs = {**r["text_sharing"], **r["generated_captions"]}
        assert r["gaps_mAP@10"][gap]["mean"] == pytest.approx(runs[better]["t2a_mAP@10"]["mean"]
                                                              - runs[worse]["t2a_mAP@10"]["mean"])
    match = r["caption_metadata_match"]  # captions generated from the keywords match them far better
    assert match["training, generated captions"]["mean_cosine"] > match["evaluation, dataset captions"]["mean_cosine"]
    assert match["training, generated captions"]["t2a_mAP@10"] > match["training, dataset captions"]["t2a_mAP@10"]
    for name, rel in r["metadata_reliance"].items():
        assert rel["metadata_gain"]["mean"] == pytest.approx(rel["t2a_mAP@10"]["mean"]
                                                             - rel["t2a_mAP@10_audio_alone"]["mean"]), name
    assert {row["knob"] for row in r["metadata_sweep"]} == {"remove_metadata", "drop_tags"}
    assert all(row["finished"] for row in r["metadata_sweep"])
    # the seven findings, each answered with its verdict (whatever it is on the smoke set)
    from hybridlib import paper

    head = {h["finding"]: h for h in r["headline_findings"]}
    assert list(head) == [h["finding"] for h in paper.HEADLINE_FINDINGS]
    for h, ref in zip(r["headline_findings"], paper.HEADLINE_FINDINGS):
        assert h["parts"] and {p["key"] for p in h["parts"]} == set(ref["keys"]), h["finding"]
        assert h["n_seeds"] == len(r["seeds"]) if ref["paper"] == "hybrid" else h["n_seeds"] == r["loss_seeds"]
        assert h["verdict"] == paper.combine_verdicts([p["verdict"] for p in h["parts"]])
        for part in h["parts"]:
            assert part["verdict"] == paper.gap_verdict(part["our_gap"], part["our_gap_std"], part["n_seeds"],
                                                        next(f.tolerance for f in paper.HYBRID_FINDINGS
                                                             + paper.MEI_FINDINGS if f.key == part["key"]))[1]
    new = [head["a shared text encoder beats separate ones"], head["captions generated from metadata hurt the hybrid model"]]
    assert [n["parts"][0]["paper_gap"] for n in new] == [pytest.approx(29.16 - 28.05), pytest.approx(30.35 - 27.67)]
    assert new[0]["parts"][0]["our_gap"] == pytest.approx(r["gaps_mAP@10"]["shared - separate text layer"]["mean"])
    assert new[1]["parts"][0]["our_gap"] == pytest.approx(r["gaps_mAP@10"]["content - late, generated captions"]["mean"])
    assert set(r["metadata_reliance"]) == {"late, dataset captions", "late, generated captions",
                                           "mid, dataset captions", "mid, generated captions"}
    assert all("metadata_weight" in r["metadata_reliance"][k] for k in ("mid, dataset captions", "mid, generated captions"))


def claims_08(r):
    top, alone = r["top"], r["top_audio_alone"]
    assert len(top) == len(alone) == r["k"] == 10 and r["n_clips"] == 16
    assert [h["rank"] for h in top] == sorted(h["rank"] for h in top)
    assert [h["score"] for h in top] == sorted((h["score"] for h in top), reverse=True)
    assert r["parts_max_abs_error"] < 1e-5
    assert all(abs(sum(h["parts"].values()) - h["score"]) < 1e-5 for h in top + alone)
    a = r["agreement"]  # every caption typed as a query: the scores and ranks of evaluation
    assert a["max_abs_score_diff"] == 0.0 and a["same_rank"] == a["captions"] == 80
    assert a["t2a_mAP@10_search"] == a["t2a_mAP@10_evaluation"] > _chance(16)
    assert r["cache_hit_second_load"] is True
    if r["fusion"] == "mid":
        assert sum(r["query_weights"]) == pytest.approx(1.0) and set(top[0]["parts"]) == {"audio", "metadata"}


def claims_09(r):
    from hybridlib.training.performance import finetune_verdict, pipeline_verdict

    assert r["device"] in ("cpu", "cuda") and r["dtype"] in ("float32", "float16", "bfloat16")
    assert r["scale"]["scale"] == ("miniature" if r["device"] == "cpu" else "teaching")
    assert r["encoders_trained"]["audio"]["trained"] and r["encoders_trained"]["text"]["trained"]
    pipeline, model = r["throughput"]["input_pipeline"], r["throughput"]["model"]
    assert [p["num_workers"] for p in pipeline] == [0, 2] and all(p["clips_per_second"] > 0 for p in pipeline)
    assert model["steps_per_second"] > 0 and model["timed_steps"] == r["scale"]["timed_steps"]
    # the texts are made from the numbers they state
    assert r["pipeline_verdict"] == pipeline_verdict(pipeline, model["clips_per_second"])
    assert r["finetune_verdict"] == finetune_verdict(r["test_metrics"]["frozen"], r["test_metrics"]["fine-tuned"])
    assert [p["precision"] for p in r["precisions"]][:1] == ["float32"] and r["precisions"][0]["max_abs_diff"] == 0.0
    if r["device"] == "cpu":
        assert [p["precision"] for p in r["precisions"]] == ["float32", "bfloat16"]
        assert r["precisions"][1]["max_abs_diff"] > 0  # bfloat16 changes the numbers, a little
    assert r["peak_memory"]["measured_mb"] > 0 and r["peak_memory"]["estimate_mb"] > 0
    fits = r["largest_batch"]  # a larger card fits a larger batch
    for key in [k for k in fits[0] if k != "card (GB)"]:
        assert [f[key] for f in fits] == sorted(f[key] for f in fits)
    assert r["profile_top"] and all(row["calls"] >= 1 for row in r["profile_top"])
    for name, m in r["test_metrics"].items():
        assert _recalls_ordered(m), name
    g = r["gathered_loss"]  # each caption meets every clip of the global batch once gathered
    assert g["negatives_per_caption"]["gathered"] == g["global_batch"] - 1 and sum(g["per_process"]) == g["global_batch"]
    one, two = r["ddp"]["1"], r["ddp"]["2"]
    assert (one["processes"], two["processes"]) == (1, 2) and one["global_batch"] == two["global_batch"]
    assert sum(two["batch_per_process"]) == two["global_batch"]
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)  # no dropout: the same training
    assert r["plan_totals"]["rows"] == 17 and r["plan_totals"]["gpu_hours"] > 0


CLAIMS = {"00": claims_00, "01": claims_01, "02": claims_02, "03": claims_03, "04": claims_04, "05": claims_05,
          "06": claims_06, "07": claims_07, "08": claims_08, "09": claims_09}


def test_every_notebook_has_claims_checked():
    assert sorted(CLAIMS) == [p.stem[:2] for p in NOTEBOOKS]


def clotho_tables():
    """What `download clotho --csv-only` leaves, made from the shared reference CSVs: the v2.1 caption tables
    and, as the development metadata, the v1 keywords (2893 of the 3839 clips; the v2.1 tables are not shared).
    Kept in the session's test folder, which the nbval pass of `make test` still sees."""
    import os
    import tempfile
    from pathlib import Path

    from conftest import require_shared

    v21, v1 = require_shared("clotho", "v2.1"), require_shared("clotho", "v1")
    folder = Path(os.environ["HYBRIDLIB_TEST_ROOT"]) / "clotho-tables"
    if not folder.is_dir():
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".clotho-tables-"))
        csv_dir = staging / "CLOTHO_v2.1" / "clotho_csv_files"
        csv_dir.mkdir(parents=True)
        for split in ("development", "validation", "evaluation"):
            shutil.copy(v21 / f"clotho_captions_{split}.csv", csv_dir)
        shutil.copy(v1 / "clotho_metadata_development.csv", csv_dir)
        try:
            staging.rename(folder)  # atomic: a parallel worker sees all of it or nothing
        except OSError:
            shutil.rmtree(staging)
    return folder


def output_noise(nb) -> list[str]:
    """What a reader should not meet in an executed copy: stderr boxes (warnings, log lines), ``PosixPath(...)``
    reprs of returned paths, widget outputs that freeze as text (progress bars). A cell tagged
    ``interactive-widget`` (notebook 08's search box) shows a widget on purpose: its widget output is no noise."""
    noise = []
    for index, cell in enumerate(nb.cells):
        wanted_widget = "interactive-widget" in cell.get("metadata", {}).get("tags", [])
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                noise.append(f"cell {index}: stderr {out['text'][:200]!r}")
            data = out.get("data", {})
            if "PosixPath(" in data.get("text/plain", ""):
                noise.append(f"cell {index}: {data['text/plain'][:120]}")
            if "application/vnd.jupyter.widget-view+json" in data and not wanted_widget:
                noise.append(f"cell {index}: widget output {data.get('text/plain', '')[:80]!r}")
    return noise


# notebooks that read real Clotho when it is there: their smoke runs get the tables a user downloads
REAL_CLOTHO = {"01", "02"}


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_smoke_run(path, memory_budget):
    with memory_budget("notebook 09") if path.stem.startswith("09") else contextlib.nullcontext():
        _smoke_run(path)


def _smoke_run(path):
    # no shared fixture cleans SMOKE_OUT (notebooks may run in parallel workers): each run replaces its own files
    shutil.rmtree(SMOKE_OUT / path.stem, ignore_errors=True)
    (SMOKE_OUT / path.name).unlink(missing_ok=True)
    SMOKE_OUT.mkdir(parents=True, exist_ok=True)
    params = {"SMOKE": True}
    if path.stem[:2] in REAL_CLOTHO:
        params["CLOTHO_ROOT"] = str(clotho_tables())
    run = runner.run_notebook(path, SMOKE_OUT, params)
    assert run.ok, f"{path.name}: {run.error} (executed copy: {run.output})"
    results = json.loads((SMOKE_OUT / path.stem / "results.json").read_text())
    assert results["_run"]["parameters"]["SMOKE"] is True
    assert output_noise(_read(run.output)) == []
    CLAIMS[path.stem[:2]]({k: v for k, v in results.items() if not k.startswith("_")})
    if path.stem[:2] == "07":  # the README's results block, generated from this smoke run's results.json
        import tempfile
        from pathlib import Path

        from test_results_table import check_block, make_run

        from hybridlib import info
        from hybridlib.results_table import results_block

        machine = info.machine()
        with tempfile.TemporaryDirectory() as tmp:
            check_block(results_block(make_run(Path(tmp), results, machine)), results, machine)
