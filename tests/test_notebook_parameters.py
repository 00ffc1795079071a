"""Notebook parameters are never dropped silently: read with Python's parser, names checked before
``run-notebooks`` starts a kernel and inside the notebook for plain papermill runs; executed copies are quiet."""

from __future__ import annotations

import json

import nbformat
import papermill as pm
import pytest

from hybridlib import notebook_format, runner
from hybridlib.notebook_parameters import (
    ParameterNameError,
    check_names,
    check_parameter_names,
    declared_parameters,
    format_problems,
    notebook_parameters,
    parameters_source,
)
from hybridlib.paths import notebooks_dir

SERIES = runner.list_notebooks(notebooks_dir())
CELL = '''SMOKE = False
SEED = 0  # seed
OUT_DIR = None
KIND = "os"  # os = open-set keywords, cs = closed-set tags
EPOCHS: int = 3
'''


def test_declared_parameters_reads_every_line():
    found = declared_parameters(CELL)
    assert list(found) == ["SMOKE", "SEED", "OUT_DIR", "KIND", "EPOCHS"]
    assert found["KIND"].default == "os" and found["KIND"].comment.startswith("os = open-set")
    assert found["EPOCHS"].default == 3 and found["SEED"].line == 2
    with pytest.raises(ParameterNameError, match="line 1 is not a `NAME = value`"):
        declared_parameters("print(1)\n")
    with pytest.raises(ParameterNameError, match="not valid Python"):
        declared_parameters("X = (\n")


def test_format_problems_name_what_papermill_cannot_read(tmp_path):
    problems = format_problems(CELL)
    assert len(problems) == 1 and "line 4" in problems[0] and "more than one '='" in problems[0]
    book = _write_notebook(tmp_path / "probe.ipynb", CELL)
    assert "KIND" not in pm.inspect_notebook(str(book)) and "KIND" in notebook_parameters(book)  # the old bug
    assert format_problems("A = [1,\n     2]\n") == [
        "parameters cell: A spans lines 1-2 (keep each parameter on one line)"]
    assert format_problems("A = 1  # fine\nB = 'x'\n") == []


@pytest.mark.parametrize("path", SERIES, ids=[p.stem for p in SERIES])
def test_series_parameters_cells_read_the_same_by_papermill(path):
    ours = notebook_parameters(path)
    assert format_problems(parameters_source(path), path.name) == []
    assert list(pm.inspect_notebook(str(path))) == list(ours)  # papermill reads every parameter we read


def _write_notebook(path, parameters: str, *cells: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(notebook_format.KERNELSPEC)
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell("import json"), params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, str(path))
    return path


def _series(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    _write_notebook(folder / "00_a.ipynb", "SMOKE = False\nSEED = 0\nOUT_DIR = None\n")
    _write_notebook(folder / "01_b.ipynb", "SMOKE = False\nSEED = 0\nOUT_DIR = None\nEPOCHS = 2\n")
    return folder


def test_check_params_names_notebook_and_name(tmp_path):
    folder = _series(tmp_path)
    books = runner.list_notebooks(folder)
    runner.check_params({"SEED": 1, "EPOCHS": 3, "01": {"EPOCHS": 4}}, books)  # EPOCHS reaches 01 only: fine
    with pytest.raises(ParameterNameError, match=r"unknown parameter EPOCH \(did you mean EPOCHS\?\)"):
        runner.check_params({"EPOCH": 3}, books)
    with pytest.raises(ParameterNameError, match=r"00_a: unknown parameter EPOCHS; this notebook's parameters are "
                                                 r"SMOKE, SEED, OUT_DIR"):
        runner.check_params({"00": {"EPOCHS": 3}}, books)
    with pytest.raises(ParameterNameError, match="section 07 names no notebook"):
        runner.check_params({"07": {"SEED": 3}}, books)
    with pytest.raises(ParameterNameError, match="01_b: unknown parameter"):
        check_names(folder / "01_b.ipynb", ["SEED", "N_SEEDS"])


def test_run_notebooks_rejects_names_before_any_kernel(tmp_path):
    folder = _series(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(ParameterNameError, match="EPOCH"):
        runner.run_notebooks(params={"01_b": {"EPOCH": 3}}, folder=folder, out=out)
    with pytest.raises(ParameterNameError, match="01_b: unknown parameter EPOCH"):
        runner.run_notebooks(params={1: {"EPOCH": 3}}, folder=folder, out=out)  # YAML reads `01:` as 1
    assert not out.exists()  # nothing ran, nothing written


def test_load_params_errors(tmp_path):
    from hybridlib.util.errors import UserError

    with pytest.raises(UserError, match="parameter file not found"):
        runner.load_params(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [\n")
    with pytest.raises(UserError, match="bad.yaml: not valid YAML"):
        runner.load_params(tmp_path / "bad.yaml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="expected a mapping"):
        runner.load_params(tmp_path / "list.json")


def test_check_parameter_names_reads_the_injected_cell():
    params = "SMOKE = False\nEPOCHS = 2  # a = b\n"
    check_parameter_names({"In": ["", "import x", params, "check()"]}, "nb")  # nothing injected: Lab
    check_parameter_names({"In": ["", params, "# Parameters\nEPOCHS = 3\n", "check()"]}, "nb")
    with pytest.raises(ParameterNameError, match=r"^nb: unknown parameter EPOCH \(did you mean EPOCHS\?\)"):
        check_parameter_names({"In": ["", params, "# Parameters\nEPOCH = 3\nSMOKE = True\n", "check()"]}, "nb")
    check_parameter_names({}, "nb")  # outside IPython


@pytest.mark.slow
def test_papermill_runs_check_names_and_inject_every_value(tmp_path, capfd):
    """A plain papermill run with a misspelt name fails naming it; run_notebook injects a value whose line
    holds '=' in its comment (papermill's reader skips that line); the executed copy has text progress bars
    in their final state and the kernel runs without the TCP transport warning."""
    book = _write_notebook(
        tmp_path / "00_probe.ipynb",
        'SMOKE = False\nSEED = 0\nOUT_DIR = None\nKIND = "os"  # os = open-set, cs = closed-set\n',
        'from hybridlib.notebook_parameters import check_parameter_names\ncheck_parameter_names(globals(), "00_probe")',
        "from hybridlib.util.progress import progress_bar\n"
        "for _ in progress_bar(range(3), desc='epochs'):\n"
        "    for _ in progress_bar(range(2), leave=False, desc='batches'):\n        pass",
        'import pathlib\npathlib.Path(OUT_DIR, "kind.json").write_text(json.dumps(KIND))',
    )
    with pytest.raises(pm.PapermillExecutionError, match="00_probe: unknown parameter KINDS"):
        pm.execute_notebook(str(book), str(tmp_path / "plain.ipynb"), parameters={"KINDS": "cs"},
                            progress_bar=False, cwd=str(tmp_path))
    capfd.readouterr()
    run = runner.run_notebook(book, tmp_path / "out", {"KIND": "cs", "SMOKE": True})
    assert run.ok, run.error
    assert json.loads((run.out_dir / "kind.json").read_text()) == "cs"
    assert "without encryption" not in capfd.readouterr().err
    assert (tmp_path / "out" / "logs" / "00_probe.kernel.log").is_file()  # the kernel's own lines go there
    executed = nbformat.read(str(run.output), as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    streams = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "epochs: 100%" in streams and "batches" not in streams  # final state kept, transient bars not drawn
