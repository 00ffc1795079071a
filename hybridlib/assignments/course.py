"""An nbgrader course folder for the exercise series, driven through nbgrader's own commands.

The layout is nbgrader's (``CourseDirectory`` defaults): ``nbgrader_config.py``, ``source/<assignment>/``
(instructor version with solutions and hidden tests), ``release/<assignment>/`` (``nbgrader
generate_assignment``), ``submitted/<student>/<assignment>/`` (``nbgrader collect`` or copied in by hand),
``autograded/``, ``feedback/`` and ``gradebook.db``. Each exercise notebook ``notebooks/exercises/NN_name.ipynb``
is one assignment ``NN_name``. Every step runs ``python -m nbgrader ...`` in the course folder, exactly the
commands of the README's instructor guide; this module only adds what nbgrader does not do: copying the
exercises into ``source/`` (optionally with papermill parameters), personal copies with each student's
variant seed, and reading the gradebook into plain rows.
"""

from __future__ import annotations

import ast
import csv
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import nbformat

COURSE_ID = "hybrid-retrieval"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
# exercise 5 trains models inside the notebook: nbgrader's default of 30 s per cell is far too short
EXECUTE_TIMEOUT = 1800

CONFIG_TEMPLATE = '''# nbgrader configuration of the hybrid-retrieval exercise course (written by python -m hybridlib assignments build).
# Run every nbgrader command from this folder.
c = get_config()
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = "."
# exercise 5 trains small models while it is autograded; allow each cell up to {timeout} s (default 30 s)
c.Execute.timeout = {timeout}
{exchange}'''


class CourseError(RuntimeError):
    """An nbgrader command failed; the message holds the command and the end of its output."""


def exercises_dir() -> Path:
    from hybridlib.paths import notebooks_dir

    return notebooks_dir() / "exercises"


def exercise_notebooks(folder: str | Path | None = None, only: list[str] | None = None) -> list[Path]:
    """The exercise series (``NN_*.ipynb``), optionally only the numbers or stems in ``only``."""
    folder = Path(folder) if folder else exercises_dir()
    books = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {w.strip() for w in only if w.strip()}
        books = [p for p in books if p.stem[:2] in wanted or p.stem in wanted]
        missing = wanted - {p.stem[:2] for p in books} - {p.stem for p in books}
        if missing:
            raise FileNotFoundError(f"no exercise matches {sorted(missing)} in {folder}")
    return books


def nbgrader(root: str | Path, *args: str, check: bool = True) -> str:
    """Run ``python -m nbgrader <args>`` in the course folder ``root``; return its output."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    env = os.environ.copy()
    # nbgrader runs the `alembic` script when it creates a gradebook: it must be on PATH (the venv's bin)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run(cmd, cwd=str(root), capture_output=True, text=True, env=env)
    output = done.stdout + done.stderr
    if check and done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-25:])
        raise CourseError(f"`nbgrader {' '.join(args)}` failed in {root} (exit {done.returncode}):\n{tail}")
    return output


def write_config(root: Path, course_id: str = COURSE_ID, exchange: str | Path | None = None) -> Path:
    exchange_line = f"c.Exchange.root = {str(Path(exchange).resolve())!r}\n" if exchange else ""
    path = root / "nbgrader_config.py"
    path.write_text(CONFIG_TEMPLATE.format(course_id=course_id, timeout=EXECUTE_TIMEOUT, exchange=exchange_line))
    return path


def _parameterise(src: Path, dest: Path, parameters: dict) -> None:
    """Copy ``src`` to ``dest`` with ``parameters`` injected by papermill (a read-only cell after ``parameters``)."""
    import papermill as pm

    declared = pm.inspect_notebook(str(src))
    values = {k: v for k, v in parameters.items() if k in declared}
    if not values:
        shutil.copyfile(src, dest)
        return
    values = {**injected_parameters(nbformat.read(str(src), as_version=4)), **values}
    pm.execute_notebook(str(src), str(dest), parameters=values, prepare_only=True, progress_bar=False,
                        log_output=False)
    nb = nbformat.read(str(dest), as_version=4)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.metadata["editable"] = False
            cell.metadata["deletable"] = False
    nbformat.write(nb, str(dest))


def injected_parameters(nb) -> dict:
    """The values of a notebook's papermill ``injected-parameters`` cell (empty when it has none)."""
    values = {}
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def init_course(root: str | Path, notebooks: list[Path] | None = None, course_id: str = COURSE_ID,
                exchange: str | Path | None = None, parameters: dict | None = None) -> Path:
    """Create (or refresh) the course folder: ``nbgrader_config.py`` and ``source/<assignment>/<assignment>.ipynb``.

    ``parameters`` (e.g. ``{"SMOKE": True}``) are injected with papermill into every notebook that declares them.
    """
    root = Path(root)
    (root / "source").mkdir(parents=True, exist_ok=True)
    write_config(root, course_id, exchange)
    for nb in notebooks or exercise_notebooks():
        dest = root / "source" / nb.stem / nb.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        _parameterise(nb, dest, parameters or {})
    return root


def assignments(root: str | Path) -> list[str]:
    return sorted(p.name for p in (Path(root) / "source").iterdir() if p.is_dir())


def generate(root: str | Path, assignment: str = "*") -> str:
    """``nbgrader generate_assignment``: the student version in ``release/`` (solutions and hidden tests removed)."""
    return nbgrader(root, "generate_assignment", assignment, "--force")


def read_roster(path: str | Path) -> list[str]:
    """Student ids from a CSV with an ``id`` column (nbgrader's ``db student import`` format)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "id" not in rows[0]:
        raise ValueError(f"{path}: a roster is a CSV file with an 'id' column (and optionally first_name, "
                         "last_name, email), one row per student")
    ids = [r["id"].strip() for r in rows if r["id"].strip()]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: student ids must be unique")
    return ids


def personalise(root: str | Path, students: list[str]) -> Path:
    """Personal copies of the release with each student's variant seed injected by papermill.

    Writes ``personalised/<student>/<assignment>/<notebook>.ipynb`` and ``personalised/variants.csv``.
    """
    from hybridlib.assignments.experiment import experiment_for
    from hybridlib.assignments.variants import variant_seed

    root = Path(root)
    out = root / "personalised"
    rows = []
    for student in students:
        seed = variant_seed(student)
        exp = experiment_for(seed)
        rows.append({"student": student, "seed": seed, "exercise5_fraction": exp.asked,
                     "exercise5_training_seed": exp.seed})
        for assignment in assignments(root):
            for nb in sorted((root / "release" / assignment).glob("*.ipynb")):
                dest = out / student / assignment / nb.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                _parameterise(nb, dest, {"SEED": seed})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "variants.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["student", "seed"])
        writer.writeheader()
        writer.writerows(rows)
    return out


def solution_text(source: str) -> str:
    """A solution cell's source as a student would have typed it (nbgrader's markers removed)."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in SOLUTION_MARKERS)


def student_version(release_nb: Path, source_nb: Path, replacements: dict[str, str] | None = None):
    """The release notebook with every solution cell answered: the source's solution, or ``replacements[grade_id]``."""
    source = nbformat.read(str(source_nb), as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: solution_text(c.source) for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    unknown = set(replacements or {}) - set(answers)
    if unknown:
        raise KeyError(f"{source_nb.name} has no solution cells {sorted(unknown)}; solution cells: {sorted(answers)}")
    nb = nbformat.read(str(release_nb), as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = (replacements or {}).get(meta["grade_id"], answers[meta["grade_id"]])
    return nb


def place_submission(root: str | Path, student: str, assignment: str, nb, name: str | None = None) -> Path:
    """Put a submitted notebook where ``nbgrader autograde`` reads it (``submitted/<student>/<assignment>/``),
    with nbgrader's ``timestamp.txt``: what ``nbgrader collect`` does for the exchange, for files that came
    another way (e-mail, a learning platform)."""
    folder = Path(root) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or assignment}.ipynb"
    if isinstance(nb, (str, Path)):
        shutil.copyfile(nb, path)
    else:
        nbformat.write(nb, str(path))
    (folder / "timestamp.txt").write_text(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z"))
    return path


def autograde(root: str | Path, assignment: str = "*") -> str:
    return nbgrader(root, "autograde", assignment, "--force")


def generate_feedback(root: str | Path, assignment: str = "*") -> str:
    return nbgrader(root, "generate_feedback", assignment, "--force")


def export(root: str | Path) -> Path:
    """``nbgrader export``: ``grades.csv`` (one row per student and assignment) in the course folder."""
    nbgrader(root, "export")
    return Path(root) / "grades.csv"


def db_url(root: str | Path) -> str:
    return f"sqlite:///{(Path(root) / 'gradebook.db').resolve()}"


def scores(root: str | Path) -> list[dict]:
    """One row per (assignment, student, graded cell) from the gradebook: auto/manual/max score."""
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(db_url(root)) as gb:
        for assignment in gb.assignments:
            for submission in gb.assignment_submissions(assignment.name):
                for nb in submission.notebooks:
                    manual = {c.name for c in nb.notebook.solution_cells} | {c.name for c in nb.notebook.task_cells}
                    for grade in nb.grades:
                        rows.append({"assignment": assignment.name, "student": submission.student_id,
                                     "notebook": nb.name, "cell": grade.name,
                                     "kind": "manual" if grade.name in manual else "autograded",
                                     "auto_score": grade.auto_score,
                                     "manual_score": grade.manual_score, "score": grade.score,
                                     "max_score": grade.max_score, "needs_manual_grade": grade.needs_manual_grade})
    return rows


def totals(rows: list[dict], autograded_only: bool = True) -> dict[tuple[str, str], tuple[float, float]]:
    """``{(assignment, student): (score, max_score)}`` over the autograded test cells (or all graded cells)."""
    out: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if autograded_only and r["kind"] != "autograded":
            continue
        score, max_score = out.setdefault((r["assignment"], r["student"]), [0.0, 0.0])
        out[(r["assignment"], r["student"])] = [score + (r["score"] or 0.0), max_score + r["max_score"]]
    return {k: (v[0], v[1]) for k, v in out.items()}


def set_manual_score(root: str | Path, assignment: str, notebook: str, student: str, cell: str, score: float) -> None:
    """Enter a manual grade (what the instructor types into Formgrader) through nbgrader's gradebook API."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url(root)) as gb:
        grade = gb.find_grade(cell, notebook, assignment, student)
        grade.manual_score = float(score)
        grade.needs_manual_grade = False  # as Formgrader's grade API does
        gb.db.commit()

