"""One variant seed per student, so that numeric answers differ between students.

Every exercise notebook has one ``parameters`` cell holding ``SEED = None``; its first code after that cell
calls :func:`resolve_seed`, which picks the seed in this order:

1. **during ``nbgrader autograde``** (nbgrader sets ``NBGRADER_EXECUTION=autograde`` and runs the kernel in
   ``<course>/autograded/<student>/<assignment>/``, its default ``directory_structure``): the seed of the
   student whose submission is graded. A notebook (or a typed-in answer) copied from another student is
   therefore graded on the submitter's own variant;
2. a seed written into the notebook: ``python -m hybridlib.assignments build --roster students.csv`` gives
   every student a personal copy in which papermill has injected ``SEED = variant_seed(student)`` (for
   courses that hand out files, e.g. through a learning platform or to offline laptops);
3. otherwise the seed of the user running the notebook: ``JUPYTERHUB_USER`` (JupyterHub), else the login
   name, which is the student id nbgrader's exchange submits under (``nbgrader submit``).

The seed is a hash of the student id (:func:`variant_seed`), so the instructor can recompute any student's
variant and nothing has to be stored.
"""

from __future__ import annotations

import getpass
import hashlib
import os
from pathlib import Path

SEED_RANGE = 1_000_000
AUTOGRADED_DIR = "autograded"  # nbgrader's CourseDirectory.autograded_directory default


def variant_seed(student_id: str) -> int:
    """The variant seed of ``student_id``: a stable hash in ``[0, SEED_RANGE)``."""
    student_id = str(student_id).strip()
    if not student_id:
        raise ValueError("a student id must not be empty")
    digest = hashlib.sha256(f"hybrid-retrieval:{student_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_RANGE


def current_user() -> str:
    """The JupyterHub user, else the login name (nbgrader's exchange submits under the same name)."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def autograded_student(cwd: str | Path | None = None) -> str | None:
    """The student whose submission ``nbgrader autograde`` is executing, or None outside autograding."""
    if os.environ.get("NBGRADER_EXECUTION") != "autograde":
        return None
    folder = Path(cwd or os.getcwd()).resolve()
    if folder.parent.parent.name != AUTOGRADED_DIR:
        return None
    return folder.parent.name


def resolve_seed(seed: int | None = None, cwd: str | Path | None = None, echo=print) -> int:
    """The variant seed a notebook runs with (see the module docstring for the order)."""
    student = autograded_student(cwd)
    if student is not None:
        own = variant_seed(student)
        if seed is not None and int(seed) != own:
            echo(f"[variant] the notebook says SEED = {seed}, but it is graded as {student}'s submission: "
                 f"using {student}'s variant {own}")
        return own
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"SEED must be a non-negative integer or None, got {seed!r}")
        return seed
    return variant_seed(current_user())
