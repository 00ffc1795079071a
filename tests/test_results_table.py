"""The README's results block is generated from a run's results.json: every number, verdict and the machine come
from the files (checked on a SMOKE run of notebook 07 in tests/test_notebooks.py, here on a small run folder)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from hybridlib import info
from hybridlib.paths import project_root
from hybridlib.results_table import END, START, results_block, update_readme
from hybridlib.util.errors import UserError


def check_block(block: str, r07: dict, machine: dict) -> None:
    """What a results block must say, given the results.json of notebook 07 it was made from."""
    assert block.startswith(START) and block.endswith(END)
    for name, agg in r07["hybrid"].items():
        value = agg["t2a_mAP@10"]
        assert f"{value['mean']:.2f} ± {value['std']:.2f} |" in block, name
    assert f"chance {r07['chance_mAP@10']:.2f}" in block
    assert f"{machine['cpu_cores']} CPU cores" in block
    for key in ("hybrid_findings", "mei_findings"):
        found = r07.get(key) or []
        if found:
            assert f"{sum(f['holds'] for f in found)} of {len(found)} findings held" in block
    for name, gap in r07["gaps_mAP@10"].items():
        assert f"{name.replace(' - ', ' − ')} {gap['mean']:+.2f} ± {gap['std']:.2f}" in block
    if r07["_run"]["parameters"].get("SMOKE"):
        assert "a SMOKE run" in block
    numbers = re.findall(r"[-+]?\d+\.\d\d", block)
    assert numbers  # the block is made of numbers from the files, none typed by hand


def make_run(folder, r07: dict, machine: dict | None = None):
    (folder / "07_results").mkdir(parents=True, exist_ok=True)
    (folder / "00_setup_and_tour").mkdir(parents=True, exist_ok=True)
    (folder / "07_results" / "results.json").write_text(json.dumps(r07))
    (folder / "00_setup_and_tour" / "results.json").write_text(json.dumps({"machine": machine or info.machine()}))
    return folder


def agg(mean, std, values):
    return {"t2a_mAP@10": {"mean": mean, "std": std, "values": values}}


R07 = {
    "_run": {"parameters": {"SMOKE": False}, "finished": "2026-12-01T12:00:00", "source": "abc1234"},
    "seeds": [0, 1, 2],
    "test_split": {"clips": 150, "captions": 750},
    "chance_mAP@10": 1.95,
    "hybrid": {"baseline": agg(46.28, 0.91, [46, 47, 45.8]), "hybrid-late": agg(52.83, 1.15, [53, 52, 53.5])},
    "gaps_mAP@10": {"late - baseline": {"mean": 6.55, "std": 1.42, "per_seed": [7.71, 4.97, 6.96]}},
    "hybrid_findings": [{"claim": "hybrid > baseline", "our_gap": 6.55, "holds": True},
                        {"claim": "late >= mid", "our_gap": -0.5, "holds": False}],
    # as results.json stores them: keys sorted as text, so bs128 comes before bs24
    "losses": {"nt-xent/bs128": agg(48.5, 0, [48.5]), "nt-xent/bs24": agg(47.5, 0, [47.5]),
               "triplet-max/bs128": agg(4.7, 0, [4.7]), "triplet-max/bs24": agg(14.7, 0, [14.7])},
    "metadata_sweep": [{"knob": "remove_metadata", "value": 1.0, "missing_metadata": "learned", "finished": True,
                        "t2a_mAP@10_mean": 47.13}],
    "baseline_seed_mAP@10": 46.45,
}


def test_block_from_a_run(tmp_path):
    machine = {"cpu_cores": 2, "cpu": "Test CPU", "memory_gib": 24.0, "gpus": [], "platform": "Linux-x"}
    block = results_block(make_run(tmp_path / "run", R07, machine))
    check_block(block, R07, machine)
    assert "2 CPU cores (Test CPU), 24 GiB memory, no GPU, Linux-x" in block
    assert "2026-12-01 12:00, commit abc1234 on 2 CPU cores" in block and "150 clips / 750 captions" in block
    assert "1 of 2 findings held: hybrid > baseline (+6.55). Did not hold: late >= mid (-0.50)." in block
    assert "at batch 24 / 128): NT-Xent 47.5 / 48.5, triplet-max 14.7 / 4.7." in block
    assert "`learned` policy: 100%: 47.13" in block


def test_update_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{START}\nold\n{END}\n\nrest\n")
    block = results_block(make_run(tmp_path / "run", R07))
    assert update_readme(readme, block) is True
    assert readme.read_text() == f"intro\n\n{block}\n\nrest\n"
    assert update_readme(readme, block) is False
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(UserError, match="no <!-- results-table:start -->"):
        update_readme(tmp_path / "plain.md", block)


def test_project_readme_has_the_markers():
    text = (project_root() / "README.md").read_text()
    assert text.count(START) == 1 and text.count(END) == 1


def test_cli(tmp_path):
    run = make_run(tmp_path / "run", R07)
    readme = tmp_path / "README.md"
    shutil.copy(project_root() / "README.md", readme)
    cmd = [sys.executable, "-m", "hybridlib", "results-table", str(run), "--update", str(readme)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=project_root(), timeout=120)
    assert result.returncode == 0 and "results block updated" in result.stdout, result.stderr
    assert "| hybrid, late fusion (OS) | 52.83 ± 1.15 |" in readme.read_text()
    missing = subprocess.run([sys.executable, "-m", "hybridlib", "results-table", str(tmp_path / "nope")],
                             capture_output=True, text=True, cwd=project_root(), timeout=120)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
