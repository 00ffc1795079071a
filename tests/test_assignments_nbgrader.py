"""The exercise series through nbgrader itself, in a temporary course folder (slow: about 3 minutes).

One module-scoped course (exercise 5 in its SMOKE configuration) gets: the instructor's ``generate_assignment``;
one student through nbgrader's exchange (``release_assignment``, ``fetch_assignment``, ``submit``,
``collect``); the solutions, the unchanged student versions and every deliberate mistake of
tests/assignment_mistakes.py marked for nbgrader as submissions; then ``autograde``, ``generate_feedback`` and ``export``.
"""

from __future__ import annotations

import csv
import time
from types import SimpleNamespace

import nbformat
import pytest
from assignment_mistakes import NBGRADER_MISTAKES as MISTAKES

from hybridlib.assignments import course as C
from hybridlib.assignments import experiment as X
from hybridlib.assignments.variants import variant_seed
from hybridlib.cli import main as cli_main

pytestmark = pytest.mark.slow
EXERCISES = C.exercise_notebooks()


def _paths(course, assignment):
    name = f"{assignment}.ipynb"
    return course / "release" / assignment / name, course / "source" / assignment / name


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    from nbgrader.utils import get_username

    start = time.perf_counter()
    root = tmp_path_factory.mktemp("nbgrader")
    course, exchange, home = root / "course", root / "exchange", root / "student-home"
    exchange.mkdir()
    home.mkdir()
    C.init_course(course, exchange=exchange, parameters={"SMOKE": True})
    C.generate(course)
    user = get_username()
    students = ["solution", "blank", user, *[m.student for m in MISTAKES]]
    for student in students:  # exercise 5's bands are computed by the reference run during autograding
        X.band_path(X.experiment_for(variant_seed(student), smoke=True)).unlink(missing_ok=True)

    # a student through the exchange: the instructor releases, the student fetches, works, submits; collect
    C.nbgrader(course, "release_assignment", "01_metrics")
    student_flags = ["--course", C.COURSE_ID, f"--Exchange.root={exchange}"]
    C.nbgrader(home, "fetch_assignment", "01_metrics", *student_flags)
    fetched = home / "01_metrics" / "01_metrics.ipynb"
    nbformat.write(C.student_version(fetched, _paths(course, "01_metrics")[1]), str(fetched))
    C.nbgrader(home, "submit", "01_metrics", *student_flags)
    C.nbgrader(course, "collect", "01_metrics")

    for nb in EXERCISES:
        release, source = _paths(course, nb.stem)
        C.place_submission(course, "solution", nb.stem, C.student_version(release, source))
        C.place_submission(course, "blank", nb.stem, release)
    for m in MISTAKES:
        release, source = _paths(course, m.assignment)
        C.place_submission(course, m.student, m.assignment, C.student_version(release, source, m.replacements))
    t0 = time.perf_counter()
    C.autograde(course)
    autograde_seconds = time.perf_counter() - t0
    C.generate_feedback(course)
    # back through the exchange (only exchange submissions have the secret it needs; the others are placed by hand)
    C.nbgrader(course, "release_feedback", "01_metrics", "--student", user)
    C.nbgrader(home, "fetch_feedback", "01_metrics", *student_flags)
    grades = C.export(course)
    rows = C.scores(course)
    return SimpleNamespace(course=course, home=home, user=user, rows=rows, totals=C.totals(rows), grades=grades,
                           seconds=time.perf_counter() - start, autograde_seconds=autograde_seconds)


def _cells(graded, assignment, student, kind="autograded"):
    return {r["cell"]: r for r in graded.rows if r["assignment"] == assignment and r["student"] == student
            and r["kind"] == kind}


def _outputs(graded, assignment, student) -> str:
    nb = nbformat.read(str(graded.course / "autograded" / student / assignment / f"{assignment}.ipynb"), as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("evalue", "") + "".join(out.get("text", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_solutions_get_full_marks(graded, path):
    score, max_score = graded.totals[(path.stem, "solution")]
    assert max_score > 0 and score == max_score, _cells(graded, path.stem, "solution")


def test_the_student_who_went_through_the_exchange_gets_full_marks_and_feedback(graded):
    assert graded.totals[("01_metrics", graded.user)] == (10.0, 10.0)
    fetched = list((graded.home / "01_metrics" / "feedback").glob("*/01_metrics.html"))
    assert len(fetched) == 1 and "passed: mAP@k" in fetched[0].read_text()


@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_unchanged_student_versions_get_zero_on_every_autograded_part(graded, path):
    cells = _cells(graded, path.stem, "blank")
    assert cells and all(c["score"] == 0 for c in cells.values()), cells
    manual = _cells(graded, path.stem, "blank", kind="manual")
    assert all(c["score"] == 0 and not c["needs_manual_grade"] for c in manual.values()), "an empty answer scores 0"


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.student for m in MISTAKES])
def test_wrong_answers_lose_points(graded, mistake):
    score, max_score = graded.totals[(mistake.assignment, mistake.student)]
    assert score < max_score
    cells = _cells(graded, mistake.assignment, mistake.student)
    for name, cell in cells.items():
        if name in mistake.loses:
            assert cell["score"] == 0, name
        elif name not in mistake.may_lose:
            assert cell["score"] == cell["max_score"], f"{name} should keep its points"
    assert mistake.message in _outputs(graded, mistake.assignment, mistake.student)
    feedback = graded.course / "feedback" / mistake.student / mistake.assignment / f"{mistake.assignment}.html"
    assert feedback.is_file() and "AnswerError" in feedback.read_text()


def test_exercise_5_is_graded_on_the_submitters_variant_and_band(graded):
    exp = X.experiment_for(variant_seed("solution"), smoke=True)
    text = _outputs(graded, "05_metadata_experiment", "solution")
    assert exp.describe() in text and "inside the reference band" in text
    assert X.band_path(exp).is_file(), "the reference band was computed and cached while autograding"


def test_manual_grades_and_export(graded):
    with open(graded.grades) as fh:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(fh)}
    assert float(rows[("06_research_question", "solution")]["score"]) == 3.0  # autograded part only, so far
    manual = _cells(graded, "06_research_question", "solution", kind="manual")
    assert set(manual) == {"experiment", "written_answer"} and all(c["needs_manual_grade"] for c in manual.values())
    for name, cell in manual.items():  # what the instructor enters in Formgrader
        C.set_manual_score(graded.course, "06_research_question", "06_research_question", "solution", name,
                           cell["max_score"])
    C.export(graded.course)
    with open(graded.grades) as fh:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(fh)}
    assert float(rows[("06_research_question", "solution")]["score"]) == 9.0
    regraded = _cells(SimpleNamespace(rows=C.scores(graded.course)), "06_research_question", "solution", kind="manual")
    assert regraded.keys() == manual.keys() and not any(c["needs_manual_grade"] for c in regraded.values())
    print(f"\n[assignments] nbgrader course: {len(graded.totals)} graded submissions in {graded.seconds:.0f} s "
          f"(autograde {graded.autograde_seconds:.0f} s)")


def test_scores_command(graded, capsys):
    assert cli_main(["assignments", "scores", "--course", str(graded.course)]) == 0
    out = capsys.readouterr().out
    assert "01_metrics" in out and "mistake-map-no-cutoff" in out and "pending" in out


def test_build_command_with_a_roster(tmp_path, capsys):
    roster = tmp_path / "students.csv"
    roster.write_text("id,first_name,last_name,email\nalice,Alice,A,a@example.org\nbob,Bob,B,b@example.org\n")
    course = tmp_path / "course"
    assert cli_main(["assignments", "build", "--course", str(course), "--only", "01,05", "--smoke", "--roster", str(roster)]) == 0
    assert sorted(p.name for p in (course / "release").iterdir()) == ["01_metrics", "05_metadata_experiment"]
    listed = C.nbgrader(course, "db", "student", "list")
    assert "alice" in listed and "bob" in listed
    for student in ("alice", "bob"):
        copy = nbformat.read(str(course / "personalised" / student / "05_metadata_experiment" /
                                 "05_metadata_experiment.ipynb"), as_version=4)
        assert C.injected_parameters(copy) == {"SMOKE": True, "SEED": variant_seed(student)}
    with open(course / "personalised" / "variants.csv") as fh:
        variants = {r["student"]: r for r in csv.DictReader(fh)}
    assert int(variants["bob"]["seed"]) == variant_seed("bob")
    # alice works in her personal copy and hands it in by hand: it grades like any other submission
    personal = course / "personalised" / "alice" / "01_metrics" / "01_metrics.ipynb"
    C.place_submission(course, "alice", "01_metrics", C.student_version(personal, _paths(course, "01_metrics")[1]))
    C.autograde(course, "01_metrics")
    assert C.totals(C.scores(course))[("01_metrics", "alice")] == (10.0, 10.0)
    graded_copy = (course / "autograded" / "alice" / "01_metrics" / "01_metrics.ipynb").read_text()
    assert f"your variant: SEED = {variant_seed('alice')}" in graded_copy
    assert cli_main(["assignments", "build", "--course", str(course), "--only", "99"]) == 2
    assert "error: no exercise matches ['99']" in capsys.readouterr().err


def test_check_command(tmp_path, capsys):
    assert cli_main(["assignments", "check", "--course", str(tmp_path / "course"), "--only", "04"]) == 0
    assert "04_fusion" in capsys.readouterr().out
