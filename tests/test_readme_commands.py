"""The README's commands work as pasted: every command of its ```bash blocks (and of notebook 00's, which shows
the same papermill examples) is run (as written, or in a named cheaper variant that takes the same code path)
in a scratch copy of the project, or skipped for a stated reason; a command the table below does not know
fails the test, so a new README command must be classified.
Commands quoted inline in the text call the project's environment (``.venv/bin/...``), never a bare
``python``, except in sections whose commands activate an environment first (Conda, the course guide)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridlib.paths import project_root, shared_data_dir

ROOT = project_root()
README = ROOT / "README.md"
NOTEBOOK_00 = ROOT / "notebooks" / "00_setup_and_tour.ipynb"

# command as written (comment removed) -> the variant the test runs (same command, smaller work)
VARIANTS = {
    ".venv/bin/python -m hybridlib run-notebooks --only 00,06 --params my-params.yaml --out runs/mine":
        ".venv/bin/python -m hybridlib run-notebooks --only 00,06 --params my-params.yaml --out runs/mine --smoke",
    "mkdir -p runs/mine && .venv/bin/papermill --cwd notebooks notebooks/06_training_and_evaluation.ipynb "
    "runs/mine/06-seed1.ipynb -p SEED 1":
        "mkdir -p runs/mine && .venv/bin/papermill --cwd notebooks notebooks/06_training_and_evaluation.ipynb "
        "runs/mine/06-seed1.ipynb -p SEED 1 -p SMOKE True",
    ".venv/bin/python -m hybridlib make-teaching-set --out data/teaching --seed 0":
        ".venv/bin/python -m hybridlib make-teaching-set --out data/teaching --seed 0 --clips 4 2 2 --no-progress",
    ".venv/bin/python -m hybridlib extract --backbone sfx-cnn":
        ".venv/bin/python -m hybridlib extract --backbone sfx-cnn --smoke --no-progress",
    ".venv/bin/python -m hybridlib train --config experiments/teaching/hybrid-late.yaml --out runs/late --seed 0":
        ".venv/bin/python -m hybridlib train --config experiments/teaching/hybrid-late.yaml --out runs/late --seed 0 "
        "--smoke --set epochs=1 --no-progress",
    # the CPU track on real Clotho: the rehearsal's Clotho (real rows and keywords, real audio, aac-datasets layout)
    # stands in for the download at data/CLOTHO_v2.1; one seed of two epochs per row, into the scratch project's runs/
    ".venv/bin/python -m hybridlib extract --data data --dataset clotho":
        'mkdir -p data && ln -sfn "$HYBRIDLIB_REHEARSAL/CLOTHO_v2.1" data/CLOTHO_v2.1 && '
        ".venv/bin/python -m hybridlib extract --data data --dataset clotho --no-progress",
    ".venv/bin/python -m hybridlib reproduce clotho-cpu --seeds 0 1 2":
        ".venv/bin/python -m hybridlib reproduce clotho-cpu --seeds 0 --set data_root=data --set epochs=2 "
        "--out runs/reproduce --no-progress",
    ".venv/bin/python -m hybridlib reproduce clotho-cpu --report":
        ".venv/bin/python -m hybridlib reproduce clotho-cpu --report --seeds 0 --set data_root=data --set epochs=2 "
        "--out runs/reproduce",
}
# your own sounds and real datasets: the shared sound bank (the README's relative path seen from the project), a
# tiny set; the rehearsal's Clotho (HYBRIDLIB_REHEARSAL, set by the test) stands in for a downloaded data/
BANK = shared_data_dir() / "soundbank-modsounds"
VARIANTS |= {
    ".venv/bin/python -m hybridlib make-teaching-set --out data/my-sounds --bank ../shared/data/soundbank-modsounds "
    "--clips 120 30 30 --seed 1":
        f".venv/bin/python -m hybridlib make-teaching-set --out data/my-sounds --bank {BANK} --clips 6 3 3 --seed 1 "
        "--no-progress",
    ".venv/bin/python -m hybridlib train --config experiments/teaching/hybrid-late.yaml --set data_root=data/my-sounds "
    "--out runs/my-sounds":
        ".venv/bin/python -m hybridlib train --config experiments/teaching/hybrid-late.yaml "
        "--set data_root=data/my-sounds --out runs/my-sounds --seed 0 --set epochs=1 --no-progress",
    'mkdir -p runs/my-sounds && .venv/bin/papermill --cwd notebooks notebooks/06_training_and_evaluation.ipynb '
    'runs/my-sounds/06.ipynb -p DATA "$PWD/data/my-sounds"':
        'mkdir -p runs/my-sounds && .venv/bin/papermill --cwd notebooks notebooks/06_training_and_evaluation.ipynb '
        'runs/my-sounds/06.ipynb -p DATA "$PWD/data/my-sounds" -p SMOKE True',
    "printf 'DATA: %s\\n' \"$PWD/data\" > clotho-params.yaml":
        "printf 'DATA: %s\\n' \"$HYBRIDLIB_REHEARSAL/CLOTHO_v2.1\" > clotho-params.yaml",
    ".venv/bin/python -m hybridlib run-notebooks --only 01,06 --params clotho-params.yaml --out runs/clotho":
        ".venv/bin/python -m hybridlib run-notebooks --only 06 --params clotho-params.yaml --out runs/clotho --smoke",
    ".venv/bin/python -m hybridlib train --config experiments/teaching/hybrid-late.yaml --set data_root=data "
    "--set dataset=clotho --out runs/clotho-late":
        ".venv/bin/python -m hybridlib train --config experiments/teaching/hybrid-late.yaml "
        "--set data_root=$HYBRIDLIB_REHEARSAL/zenodo-clotho --set dataset=clotho --out runs/clotho-late --seed 0 "
        "--set epochs=1 --no-progress",
    ".venv/bin/torchrun --standalone --nproc_per_node=2 -m hybridlib train --config experiments/teaching/hybrid-late.yaml "
    "--out runs/late-2proc --seed 0":
        ".venv/bin/torchrun --standalone --nproc_per_node=2 -m hybridlib train --config experiments/teaching/hybrid-late.yaml "
        "--out runs/late-2proc --seed 0 --smoke --set epochs=1 --no-progress",
}
RUN_AS_WRITTEN = {
    "printf 'SEED: 1\\n\"06\":\\n  EPOCHS: 3\\n' > my-params.yaml",
    ".venv/bin/python -m hybridlib info",
    ".venv/bin/python -m hybridlib run-notebooks --smoke --only 00 --out runs/smoke",
    ".venv/bin/python -m hybridlib evaluate --run runs/late",
    '.venv/bin/python -m hybridlib search --run runs/late "a dog barks twice"',
    ".venv/bin/python -m hybridlib reproduce hybrid-table-1 --plan",
}
SKIPPED = {
    "make demo": "the whole series on the full teaching set (8+ min); `make test` runs every notebook in SMOKE mode",
    "make test": "this test suite itself (CI runs it)",
    ".venv/bin/python -m hybridlib download clotho --csv-only":
        "needs the dataset host; tests/test_data_download.py runs it against a local HTTP server",
    ".venv/bin/python -m hybridlib download clotho --root data":
        "needs the dataset host (several GB); tests/test_data_download.py runs the flow against a local HTTP server",
    ".venv/bin/python -m hybridlib download weights panns-cnn14":
        "needs the model host; tests/test_audio_weights.py checks the download with a local file",
    # the course workflow (instructor guide): tests/test_assignments_nbgrader.py builds the course, goes through
    # the exchange, autogrades, gives feedback, exports and scores it
    "make assignments": "make would set up .venv in the scratch copy; the build is `assignments build`, tested by "
                        "tests/test_assignments_nbgrader.py::test_build_command_with_a_roster",
    "make assignments ROSTER=students.csv": "needs the instructor's roster; tests/test_assignments_nbgrader.py "
                                            "builds with a roster",
    "source .venv/bin/activate && cd runs/assignments/course": "enters a built course (see the nbgrader tests)",
    "nbgrader generate_feedback 01_metrics": "needs graded submissions: tests/test_assignments_nbgrader.py",
    "nbgrader release_feedback 01_metrics": "needs graded submissions: tests/test_assignments_nbgrader.py",
    "nbgrader export": "needs a gradebook: tests/test_assignments_nbgrader.py::test_manual_grades_and_export",
    "python -m hybridlib assignments scores --course runs/assignments/course":
        "needs a gradebook: tests/test_assignments_nbgrader.py::test_scores_command",
    ".venv/bin/python -m hybridlib assignments build --course runs/assignments/course":
        "builds the nbgrader course (minutes): tests/test_assignments_nbgrader.py",
    ".venv/bin/python -m hybridlib make-rehearsal --out runs/rehearsal":
        "builds ~2 GB from the shared reference data; tests/conftest.py's rehearsal_root runs this command for "
        "tests/test_rehearsal.py",
    ".venv/bin/python -m hybridlib reproduce hybrid-table-1 --seeds 0 1 2":
        "trains a paper table (GPU days); tests/test_rehearsal.py runs `reproduce mei-table-2` on the rehearsal",
    ".venv/bin/torchrun --standalone --nproc_per_node=4 -m hybridlib train --config experiments/hybrid/clotho-late-os.yaml "
    "--out runs/late-os-4gpu": "needs 4 GPUs, Clotho and the hub weights; tests/test_training_distributed.py runs "
                               "rows of experiments/hybrid and experiments/mei with `torchrun --nproc_per_node=2` "
                               "on the rehearsal (gloo, CPU)",
    "conda env create -f environment.yml && conda activate hybrid-retrieval": "no conda on the CI machine",
    "pip install --no-deps aisfx==0.1.2 && pip install --no-deps -e .": "conda set-up (installs into the conda env)",
    'python -m ipykernel install --user --name hybrid-retrieval --display-name "Python (hybrid-retrieval)"':
        "conda set-up (registers a kernel in the user's home)",
}
BARE = re.compile(r"^(python3?|papermill|jupyter|pytest|pip|torchrun)\b")


def readme_commands(text: str) -> list[str]:
    """The commands of the README's ```bash blocks, in order, each without its trailing comment."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
            lexer.whitespace_split, lexer.commenters = True, "#"
            list(lexer)  # raises on unbalanced quotes
            commands.append(_without_comment(line))
    return commands


def _without_comment(line: str) -> str:
    """``line`` up to an unquoted ``#`` that starts a word."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def documented_commands() -> list[str]:
    """The README's commands, then notebook 00's that the README does not already hold (each once)."""
    import nbformat

    markdown = "\n".join(c.source for c in nbformat.read(str(NOTEBOOK_00), as_version=4).cells
                         if c.cell_type == "markdown")
    return list(dict.fromkeys(readme_commands(README.read_text()) + readme_commands(markdown)))


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.splitlines()[0].strip(): p for p in parts[1:]} | {"": parts[0]}


def test_every_readme_command_is_classified():
    commands = documented_commands()
    known = set(VARIANTS) | RUN_AS_WRITTEN | set(SKIPPED)
    unknown = [c for c in commands if c not in known]
    assert not unknown, f"README commands not classified in {Path(__file__).name}: {unknown}"
    stale = sorted(known - set(commands))
    assert not stale, f"classified commands no longer in the README: {stale}"


ACTIVATION = re.compile(r"```bash\n[^`]*(source \.venv/bin/activate|conda activate)", re.S)


def test_inline_commands_use_the_project_environment():
    for title, body in sections(README.read_text()).items():
        if ACTIVATION.search(body):
            continue  # the section activates an environment in its commands first (Conda, the course guide)
        prose = re.sub(r"```.*?```", "", body, flags=re.S)
        bare = [span for span in re.findall(r"`([^`]+)`", prose) if BARE.match(span)]
        bare = [b for b in bare if b != "python"]  # "type plain `python` after activating"
        assert not bare, f"section {title!r}: commands without .venv/bin/: {bare}"
    activated = {title for title, body in sections(README.read_text()).items() if ACTIVATION.search(body)}
    exempt = {c for title in activated for c in readme_commands(sections(README.read_text())[title])}
    for command in documented_commands():
        if command not in exempt:
            assert not BARE.match(command), command


def _scratch_project(tmp_path: Path) -> Path:
    """A scratch copy of the project: the sources linked, ``.venv`` the environment running the tests, and
    its own ``data/`` and ``runs/`` for the commands' relative output paths."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("hybridlib", "notebooks", "experiments", "pyproject.toml", "README.md", "Makefile"):
        (project / name).symlink_to(ROOT / name)
    (project / ".venv").symlink_to(Path(sys.prefix))
    (project / "data").mkdir()
    return project


@pytest.mark.slow
@pytest.mark.notebooks
def test_readme_commands_run(tmp_path, rehearsal_root):
    project = _scratch_project(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYBRIDLIB_PROGRESS": "off",
           "HYBRIDLIB_REHEARSAL": str(rehearsal_root)}
    timings = []
    for command in documented_commands():
        if command in SKIPPED:
            continue
        run = VARIANTS.get(command, command)
        start = time.perf_counter()
        result = subprocess.run(["bash", "-c", run], cwd=project, env=env, capture_output=True, text=True,
                                timeout=900)
        timings.append((round(time.perf_counter() - start, 1), command))
        assert result.returncode == 0, f"{run}\nstdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, (run, result.stderr[-3000:])
    print("\n".join(f"{s:6.1f} s  {c}" for s, c in timings))
    # what the commands promise to leave behind
    assert (project / "runs" / "mine" / "06_training_and_evaluation" / "results.json").is_file()
    injected = json.loads((project / "runs/mine/06_training_and_evaluation/results.json").read_text())["_run"]
    assert injected["parameters"]["SEED"] == 1 and injected["parameters"]["EPOCHS"] == 3  # the params file
    assert (project / "runs" / "mine" / "06-seed1.ipynb").is_file()
    from hybridlib.notebook_html import remote_references

    page = project / "runs" / "smoke" / "html" / "00_setup_and_tour.html"
    assert page.is_file() and remote_references(page.read_text()) == []  # offline page
    assert (project / "data" / "teaching" / "teaching.json").is_file()
    # your own sounds and a real Clotho folder, through the CLI and a notebook
    assert json.loads((project / "data" / "my-sounds" / "teaching.json").read_text())["seed"] == 1
    assert list((project / "runs" / "my-sounds").glob("metrics-*.json"))
    clotho = json.loads((project / "runs" / "clotho" / "06_training_and_evaluation" / "results.json").read_text())
    assert clotho["dataset"]["name"] == "clotho" and clotho["configs"]["hybrid-late"]["dataset"] == "clotho"
    assert list((project / "runs" / "clotho-late").glob("metrics-*.json"))
    assert list((project / "runs" / "late").glob("metrics-*.json"))
    # the CPU track: five rows trained, the table labelled frozen-encoder numbers
    from hybridlib.reproduce import FROZEN_ENCODER_SETTING, TABLES

    saved = json.loads((project / "runs" / "reproduce" / "clotho-cpu-comparison.json").read_text())
    assert saved["label"] == FROZEN_ENCODER_SETTING
    assert saved["rows_finished"] == sorted(TABLES["clotho-cpu"]["rows"])
    two = json.loads((project / "runs/late-2proc/seed-0/ingredients.json").read_text())["optimisation"]
    assert (two["processes"], two["global_batch"]) == (2, min(two["batch_size"], two["epoch_captions"]))
