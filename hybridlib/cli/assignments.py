"""``hybridlib assignments <action>``: build the nbgrader course, check it, show scores, reference bands.

* ``build``  - course folder with ``source/`` (instructor version) and ``release/`` (``nbgrader generate_assignment``);
  with ``--roster`` also the students in the gradebook and personal copies with each student's variant seed;
* ``check``  - self-test in a course folder: every solution is autograded to full marks, every unchanged student
  version to zero (exit 1 otherwise);
* ``scores`` - the gradebook as a table (autograded and manual points per student and assignment);
* ``band``   - exercise 5's reference band(s): for one experiment (what autograding calls) or for every student
  of a roster ahead of autograding.

The course operations live in :mod:`hybridlib.assignments.course`; this module parses and prints.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hybridlib.assignments.course import COURSE_ID

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="course folder: source/ and release/ (nbgrader generate_assignment)")
    build.add_argument("--course", default=None, help="course folder (default: runs/assignments/course)")
    build.add_argument("--course-id", default=COURSE_ID)
    build.add_argument("--roster", default=None, help="CSV with an 'id' column: import the students and write "
                                                      "personalised/<student>/ copies with their variant seed")
    build.add_argument("--exchange", default=None, help="nbgrader exchange folder (for release_assignment/collect)")
    build.add_argument("--smoke", action="store_true", help="exercise 5 on the tiny smoke teaching set (seconds)")
    build.add_argument("--only", default=None, help="comma-separated exercise numbers, e.g. 01,05")

    check = sub.add_parser("check", help="autograde every solution (full marks) and every blank (zero)")
    check.add_argument("--course", default=None, help="course folder (default: a temporary one)")
    check.add_argument("--smoke", action="store_true")
    check.add_argument("--only", default=None)

    scores = sub.add_parser("scores", help="print the gradebook")
    scores.add_argument("--course", default=None, help="course folder (default: runs/assignments/course)")

    band = sub.add_parser("band", help="compute exercise 5's reference band(s)")
    band.add_argument("--experiment", default=None, help="one experiment as JSON (MetadataExperiment fields)")
    band.add_argument("--roster", default=None, help="CSV with an 'id' column: the bands of every student")
    band.add_argument("--smoke", action="store_true")
    band.add_argument("--seeds", type=int, default=None, help="reference seeds (default: experiment.BAND_SEEDS)")


def _existing(path: str, option: str) -> str:
    """``path`` when it is a file, else an error naming the option (before any work starts)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{option} {path}: no such file (a CSV with an 'id' column, one row per student)")
    return path


def default_course() -> Path:
    from hybridlib.paths import runs_dir

    return runs_dir() / "assignments" / "course"


def build(course: Path, course_id: str, roster: str | None, exchange: str | None, smoke: bool, only) -> int:
    from hybridlib.assignments import course as C

    start = time.perf_counter()
    students = C.read_roster(_existing(roster, "--roster")) if roster else None  # inputs first, then the build
    notebooks = C.exercise_notebooks(only=only)
    C.init_course(course, notebooks, course_id=course_id, exchange=exchange, parameters={"SMOKE": True} if smoke else None)
    C.generate(course)
    print(f"[assignments] source (instructor version): {course / 'source'}")
    print(f"[assignments] release (student version):   {course / 'release'}  ({len(notebooks)} assignments)")
    if students is not None:
        C.nbgrader(course, "db", "student", "import", str(Path(roster).resolve()))
        out = C.personalise(course, students)
        print(f"[assignments] {len(students)} students imported; personal copies and variants.csv: {out}")
    print(f"[assignments] built in {time.perf_counter() - start:.1f} s; next: cd {course} && nbgrader release_assignment "
          f"{notebooks[0].stem}  (see the README's instructor guide)")
    return 0


def check(course: Path, smoke: bool, only) -> int:
    from hybridlib.assignments import course as C

    start = time.perf_counter()
    notebooks = C.exercise_notebooks(only=only)
    C.init_course(course, notebooks, parameters={"SMOKE": True} if smoke else None)
    C.generate(course)
    for nb in notebooks:
        release = course / "release" / nb.stem / nb.name
        source = course / "source" / nb.stem / nb.name
        C.place_submission(course, "solution", nb.stem, C.student_version(release, source))
        C.place_submission(course, "blank", nb.stem, release)
    C.autograde(course)
    totals = C.totals(C.scores(course))
    ok = True
    print(f"{'assignment':24s} {'solution':>10s} {'blank':>10s}")
    for nb in notebooks:
        sol, blank = totals[(nb.stem, "solution")], totals[(nb.stem, "blank")]
        good = sol[0] == sol[1] and blank[0] == 0
        ok &= good
        print(f"{nb.stem:24s} {sol[0]:>5g}/{sol[1]:<4g} {blank[0]:>5g}/{blank[1]:<4g} {'ok' if good else 'FAILED'}")
    print(f"[assignments] {'all solutions full marks, all blanks zero' if ok else 'check FAILED'} "
          f"({time.perf_counter() - start:.0f} s; autograded notebooks in {course / 'autograded'})")
    return 0 if ok else 1


def show_scores(course: Path) -> int:
    from hybridlib.assignments import course as C

    if not (course / "gradebook.db").is_file():
        print(f"error: no gradebook in {course}; run nbgrader autograde there first", file=sys.stderr)
        return 2
    rows = C.scores(course)
    auto = C.totals(rows, autograded_only=True)
    every = C.totals(rows, autograded_only=False)
    pending = {(r["assignment"], r["student"]) for r in rows if r["needs_manual_grade"]}
    width = max([16, *(len(k[1]) for k in every)])
    print(f"{'assignment':24s} {'student':{width}s} {'autograded':>11s} {'total':>11s}  manual grading")
    for key in sorted(every):
        a, s = auto.get(key, (0.0, 0.0)), every[key]
        print(f"{key[0]:24s} {key[1]:{width}s} {a[0]:>5g}/{a[1]:<5g} {s[0]:>5g}/{s[1]:<5g}  "
              f"{'pending' if key in pending else 'done'}")
    return 0


def bands(experiment: str | None, roster: str | None, smoke: bool, seeds: int | None) -> int:
    from hybridlib.assignments import experiment as X
    from hybridlib.assignments.course import read_roster
    from hybridlib.assignments.variants import variant_seed

    n_seeds = seeds or X.BAND_SEEDS
    if experiment:
        exps = [X.experiment_from_json(experiment)]
    elif roster:
        exps = [X.experiment_for(variant_seed(s), smoke=smoke) for s in read_roster(_existing(roster, "--roster"))]
    else:
        print("error: give --experiment JSON or --roster CSV", file=sys.stderr)
        return 2
    for exp in exps:
        if X.band_path(exp, n_seeds).is_file():
            print(f"[band] cached: {exp.describe()}")
            continue
        path = X.write_band(exp, n_seeds)
        print(f"[band] {exp.describe()} -> {path}")
    return 0


def run(args) -> int:
    only = args.only.split(",") if getattr(args, "only", None) else None
    try:
        if args.action == "build":
            return build(Path(args.course) if args.course else default_course(), args.course_id, args.roster,
                         args.exchange, args.smoke, only)
        if args.action == "check":
            if args.course:
                return check(Path(args.course), args.smoke, only)
            with tempfile.TemporaryDirectory(prefix="hybrid-course-") as tmp:
                return check(Path(tmp), args.smoke, only)
        if args.action == "scores":
            return show_scores(Path(args.course) if args.course else default_course())
        return bands(args.experiment, args.roster, args.smoke, args.seeds)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
