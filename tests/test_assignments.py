"""The exercise series (notebooks/exercises): conventions, nbgrader metadata, and the checks in-process.

The fast tests here run every solution and every deliberate mistake (tests/assignment_mistakes.py) through the
notebooks' own test cells in this process; tests/test_assignments_nbgrader.py does the same with nbgrader
itself in a temporary course (release, collect, autograde, feedback, export).
"""

from __future__ import annotations

import ast
import linecache
import re

import nbformat
import pytest
from assignment_mistakes import MISTAKES

from hybridlib.assignments import course as C
from hybridlib.assignments import experiment as X
from hybridlib.assignments import variants as V
from hybridlib.assignments.checks import AnswerError
from hybridlib.assignments.checks.common import python_loops, reference_blocked

EXERCISES = C.exercise_notebooks()
BY_NAME = {p.stem: p for p in EXERCISES}
# cells that train models (exercise 5) or only demonstrate: run by the nbgrader tests, not in-process
TRAINING_CELLS = {"run", "plot", "answers", "test_gain_pp", "test_retained", "experiment", "demo"}


def _read(path):
    return nbformat.read(str(path), as_version=4)


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_series_is_complete():
    assert [p.stem[:2] for p in EXERCISES] == ["01", "02", "03", "04", "05", "06"]
    # the tutorial runner globs notebooks/NN_*.ipynb only, so the exercises are not run as tutorials
    from hybridlib import runner

    assert not set(runner.list_notebooks()) & set(EXERCISES)


@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_conventions_and_nbgrader_metadata(path):
    nb = _read(path)
    cells = nb.cells
    first = cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# Exercise"), "starts with a title"
    runtime = re.search(r"\*\*Runtime:\*\*([^·\n]*)", first.source)
    assert runtime and re.search(r"\d+\s*(s|min)\b", runtime.group(1)), "the first cell states the measured runtime"
    for cell in cells:
        assert not cell.get("outputs") and cell.get("execution_count") is None, "committed without outputs"
        meta = _nbgrader(cell)
        assert meta.get("grade_id") and meta.get("schema_version") == 3, "every cell has nbgrader metadata"
    ids = [_nbgrader(c)["grade_id"] for c in cells]
    assert len(ids) == len(set(ids)), "grade ids are unique"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one parameters cell"
    before = [c for c in cells[: tagged[0]] if c.cell_type == "code"]
    assert len(before) == 1 and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.parse(before[0].source).body)
    params = ast.parse(cells[tagged[0]].source).body
    names = {n.targets[0].id for n in params if isinstance(n, ast.Assign)}
    assert len(names) == len(params) and all(n.isupper() for n in names) and "SEED" in names
    points = 0.0
    for cell in cells:
        meta = _nbgrader(cell)
        if meta.get("grade") and not meta.get("solution"):  # autograded test cell
            assert meta["locked"] and meta["points"] > 0
            visible, _, hidden = cell.source.partition("### BEGIN HIDDEN TESTS")
            assert visible.strip() and "### END HIDDEN TESTS" in hidden, f"{meta['grade_id']}: visible + hidden tests"
        elif meta.get("solution") and cell.cell_type == "code":
            assert all(m in cell.source for m in C.SOLUTION_MARKERS), f"{meta['grade_id']}: solution region marked"
        elif not meta.get("solution"):
            assert meta.get("locked"), f"{meta['grade_id']}: instructions and code cells are read-only"
        points += float(meta.get("points", 0) if meta.get("grade") else 0)
    stated = re.search(r"\*\*Points:\*\*\s*(\d+)", first.source)
    assert stated and float(stated.group(1)) == points, "the stated points add up"
    assert nb.metadata["kernelspec"]["name"] == "hybrid-retrieval"  # the project kernel, as the tutorials


def _exec_cell(source: str, namespace: dict, name: str) -> None:
    filename = f"<exercise-cell {name}>"  # registered like IPython does, so inspect.getsource works
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


def run_in_process(path, replacements: dict | None = None, seed: int = 7) -> dict[str, BaseException | None]:
    """Execute a notebook's solution (or ``replacements``) and its test cells here; ``{test grade_id: error}``."""
    namespace: dict = {}
    results: dict[str, BaseException | None] = {}
    for cell in _read(path).cells:
        meta = _nbgrader(cell)
        gid = meta.get("grade_id")
        if cell.cell_type != "code" or gid in TRAINING_CELLS:
            continue
        source = cell.source
        if "parameters" in cell.metadata.get("tags", []):
            source = f"SEED = {seed}\nSMOKE = True"
        elif meta.get("solution"):
            source = (replacements or {}).get(gid, C.solution_text(cell.source))
        if meta.get("grade") and not meta.get("solution"):
            try:
                _exec_cell(source, namespace, gid)
                results[gid] = None
            except AssertionError as exc:
                results[gid] = exc
        else:
            _exec_cell(source, namespace, gid)
    return results


@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_solutions_pass_every_check_in_process(path, capsys):
    results = run_in_process(path)
    assert results and all(e is None for e in results.values()), {k: str(e)[:300] for k, e in results.items() if e}
    assert "passed:" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.student for m in MISTAKES])
def test_mistakes_fail_with_an_actionable_message(mistake):
    results = run_in_process(BY_NAME[mistake.assignment], mistake.replacements)
    trained = mistake.loses & {"test_gain_pp", "test_retained"}  # those need the nbgrader run (training)
    failed = {gid for gid, e in results.items() if e is not None}
    assert failed - mistake.may_lose == mistake.loses - trained, {k: str(e)[:200] for k, e in results.items() if e}
    messages = " ".join(str(results[g]) for g in failed)
    assert mistake.message in messages
    assert all(isinstance(results[g], AnswerError) for g in failed), "a check's message, not a bare assert"


def test_reference_implementations_are_blocked():
    import torch

    from hybridlib.assignments.checks import metrics as check
    from hybridlib.metrics import text_to_audio

    def map_at_k(sim, relevant, k=10):  # "solves" the exercise by calling the reference
        return text_to_audio(sim, relevant, map_k=k)[f"mAP@{k}"]

    with pytest.raises(AnswerError, match="reference implementation"):
        check.visible_map(map_at_k)
    assert text_to_audio(torch.eye(3), torch.arange(3))["R@1"] == 100.0  # restored afterwards
    from hybridlib.assignments.checks import fusion as fusion_check
    from hybridlib.models.fusion import MidFusion

    with reference_blocked([], fusion_check.REFERENCES, "fusion"):
        pass
    assert isinstance(MidFusion.__dict__["score"], staticmethod), "a blocked staticmethod is restored as one"


def test_python_loops_are_found():
    src = "def f(x):\n    total = 0\n    for v in x:\n        total += v\n    return [t for t in x]\n"
    namespace: dict = {}
    _exec_cell(src, namespace, "loops")
    found = python_loops(namespace["f"])
    assert len(found) == 2 and "for v in x" in found[0]


def test_variant_seeds(monkeypatch, tmp_path):
    assert V.variant_seed("alice") == V.variant_seed(" alice ") != V.variant_seed("bob")
    assert 0 <= V.variant_seed("alice") < V.SEED_RANGE
    with pytest.raises(ValueError):
        V.variant_seed("")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("JUPYTERHUB_USER", "carol")
    assert V.resolve_seed(None) == V.variant_seed("carol")  # a student in JupyterHub
    assert V.resolve_seed(42) == 42  # a personal copy (papermill-injected seed)
    with pytest.raises(ValueError):
        V.resolve_seed(-1)
    graded = tmp_path / "autograded" / "dave" / "05_metadata_experiment"
    graded.mkdir(parents=True)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    notes = []
    assert V.resolve_seed(42, cwd=graded, echo=notes.append) == V.variant_seed("dave")  # the submitter's variant
    assert "dave's variant" in notes[0]
    assert V.resolve_seed(None, cwd=tmp_path) == V.variant_seed("carol")  # not nbgrader's layout: the user's


def test_experiment_variants_and_band():
    exp = X.experiment_for(1234)
    assert exp == X.experiment_for(1234) and exp.asked in X.ASKED and exp.fractions == X.FRACTIONS
    assert {X.experiment_for(v).asked for v in range(3)} == set(X.ASKED)
    assert X.experiment_from_json(__import__("json").dumps(__import__("dataclasses").asdict(exp))) == exp
    assert X.band_of([1.0, 2.0, 4.0]) == (-0.5, 5.5)
    assert X.band_path(exp) == X.band_path(X.experiment_for(1234)) != X.band_path(X.experiment_for(1235))
    assert X.retained_gain(X.gain_curve({0.0: 50.0, 0.5: 47.0}, 46.0), 0.5) == 0.25
    with pytest.raises(ValueError, match="gains nothing"):
        X.retained_gain({0.0: 0.0, 0.5: 1.0}, 0.5)
    with pytest.raises(ValueError):
        X.train_point(exp, "mid")


def test_research_reference_measurements():
    import torch

    from hybridlib.assignments import research as R
    from hybridlib.losses import nt_xent, triplet_max

    sim = torch.full((5, 5), 0.1).fill_diagonal_(0.6)
    assert abs(R.effective_negatives(nt_xent, sim) - 4.0) < 1e-6  # equal negatives: all four count
    sim[0, 3] = 0.5
    assert R.effective_negatives(triplet_max, sim) < R.effective_negatives(nt_xent, sim)
    # row 0's hardest negative is column 3 (same concept); row 3's negatives tie and argmax takes column 0 (same)
    assert R.near_duplicate_rate(sim, torch.tensor([0, 1, 2, 0, 3])) == 0.4
