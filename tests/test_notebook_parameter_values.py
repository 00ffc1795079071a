"""Notebook parameter values: one rule set, checked in each notebook's first cell after its parameters."""

from __future__ import annotations

import ast
import math

import nbformat
import pytest

from hybridlib import runner
from hybridlib.notebook_parameters import (
    PARAMETER_RULES,
    ParameterError,
    check_parameter_values,
    parameter_problem,
)
from hybridlib.paths import notebooks_dir, teaching_dir

NOTEBOOKS = runner.list_notebooks(notebooks_dir())


def _parameters(path) -> tuple[dict, list]:
    nb = nbformat.read(str(path), as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    values = {}
    for node in ast.parse(nb.cells[index].source).body:
        if isinstance(node, ast.Assign):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values, nb.cells[index + 1:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_checks_its_parameter_values_first_and_its_defaults_pass(path):
    values, after = _parameters(path)
    first_code = next(c for c in after if c.cell_type == "code")
    assert first_code.source.startswith(f'check_parameters(globals(), "{path.stem}")'), path.name
    check_parameter_values(values)
    check_parameter_values({**values, "SMOKE": True})
    assert {"SMOKE", "SEED", "OUT_DIR"} <= set(PARAMETER_RULES)


@pytest.mark.parametrize("name, value, words", [
    ("SEED", -3, "non-negative integer"),
    ("SEED", True, "not a boolean"),
    ("SEED", 1.5, "non-negative integer"),
    ("EPOCHS", "abc", "positive integer or None"),
    ("EPOCHS", 0, "positive integer"),
    ("LR", math.nan, "is NaN"),
    ("LR", -1e-3, "positive number"),
    ("TAU", math.inf, "is infinity"),
    ("BATCH_SIZE", 1, ">= 2"),
    ("SMOKE", "yes", "true or false"),
    ("DATA", "/no/such/folder", "does not exist"),
    ("CHECKPOINT", "/no/such/file.pth", "does not exist"),
    ("OUT_DIR", 3, "must be a path"),
    ("FUSIONS", ["late", "fancy"], "item 1 must be one of"),
    ("LOSSES", ["nt-xent", "hinge"], "item 1 must be one of"),
    ("BATCH_SIZES", [], "must not be empty"),
    ("STRENGTHS", [0.5, math.nan], "item 1 is NaN"),
    ("SWEEP_REMOVE", [1.5], "item 0 must be a number >= 0 and <= 1"),
    ("METADATA_KIND", "tags", "must be one of ['os', 'cs', 'fs']"),
    ("SPLIT", "val", "must be one of"),
])
def test_values_that_should_not_pass(name, value, words):
    problem = parameter_problem(name, value)
    assert problem and words in problem, problem
    with pytest.raises(ParameterError) as info:
        check_parameter_values({name: value})
    assert str(info.value).startswith(f"{name}: ") and "\n" not in str(info.value)


def test_several_bad_values_in_one_line_and_names_without_rules_ignored(tmp_path):
    with pytest.raises(ParameterError, match=r"^SEED: .*; EPOCHS: .*boolean"):
        check_parameter_values({"SEED": -1, "EPOCHS": True, "NOT_A_RULE": object()})
    check_parameter_values({"DATA": str(tmp_path), "CHECKPOINT": None, "EPOCHS": None, "LR": 1e-3})
    # the teaching set's own default folder may not exist yet: it is generated there
    check_parameter_values({"DATA": str(teaching_dir(True)), "SMOKE": True})


@pytest.mark.slow
def test_papermill_refuses_a_negative_seed_in_one_line(tmp_path):
    """``papermill -p SEED -3`` stops in the first cell after the parameters, naming the parameter."""
    import papermill as pm

    out = tmp_path / "out.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(notebooks_dir() / "00_setup_and_tour.ipynb"), str(out),
                            parameters={"SEED": -3, "OUT_DIR": str(tmp_path / "o")}, progress_bar=False,
                            cwd=str(notebooks_dir()))
    assert info.value.ename == "ParameterError"
    assert info.value.evalue == "SEED: must be a non-negative integer up to 4294967295 (got -3)"
    assert not (tmp_path / "o").exists()  # stopped before anything ran
