"""Every notebook of the series follows the conventions and runs in its SMOKE configuration.

The smoke runs write their executed copies to ``runs/test-smoke/``; `make test` then re-executes those
copies with ``pytest --nbval-lax`` and compares the cells tagged ``nbval-check-output``.
"""

from __future__ import annotations

import ast
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


@pytest.fixture(scope="module")
def smoke_out():
    shutil.rmtree(SMOKE_OUT, ignore_errors=True)
    SMOKE_OUT.mkdir(parents=True)
    return SMOKE_OUT


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_smoke_run(path, smoke_out):
    run = runner.run_notebook(path, smoke_out, {"SMOKE": True})
    assert run.ok, f"{path.name}: {run.error} (executed copy: {run.output})"
    results = json.loads((smoke_out / path.stem / "results.json").read_text())
    assert results["_run"]["parameters"]["SMOKE"] is True
    own = {k: v for k, v in results.items() if not k.startswith("_")}
    assert own, f"{path.name}: the notebook saved no results of its own to results.json"
