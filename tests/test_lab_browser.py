"""JupyterLab as `make lab` gives it to students, checked in a real browser (headless Debian Chromium).

Issue 12: Lab opens on the project with the series in view, every notebook shows the project kernel and
opens without the modified marker, and saving an untouched notebook leaves it byte for byte unchanged.
The helpers (and how to write another browser test) are in tests/browser_support.py.
"""

from __future__ import annotations

import shutil
import time

import nbformat
import pytest

from hybridlib import notebook_format, runner
from hybridlib.paths import notebooks_dir, project_root, runs_dir

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SERIES = runner.list_notebooks(notebooks_dir())
SCRATCH = runs_dir() / "browser" / "scratch"  # inside Lab's root (the project), git-ignored


def _relative(path) -> str:
    return path.resolve().relative_to(project_root().resolve()).as_posix()


@pytest.fixture
def scratch():
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    yield SCRATCH
    shutil.rmtree(SCRATCH, ignore_errors=True)


def test_make_lab_opens_the_series_with_the_project_kernel_unmodified(lab_page):
    start = time.perf_counter()
    assert lab_page.open_lab() == "/lab/tree/notebooks/00_setup_and_tour.ipynb"
    lab_page.wait_for(
        lambda: lab_page.file_browser_path() == "/notebooks/", 30, "the file browser in notebooks/"
    )
    assert {p.name for p in SERIES} <= set(lab_page.file_browser_items())
    for book in SERIES:
        lab_page.open_notebook(_relative(book))
        shown = lab_page.wait_kernel_idle()
        assert shown == notebook_format.KERNEL_DISPLAY_NAME, f"{book.name}: toolbar shows kernel {shown!r}"
        assert lab_page.status_bar_kernel().startswith(notebook_format.KERNEL_DISPLAY_NAME + " | ")
    # Lab rewrites metadata right after the kernel connects; once set, the marker stays (autosave is off).
    time.sleep(3)
    tabs = lab_page.notebook_tabs()
    assert [t for t, _ in tabs] == [p.name for p in SERIES]
    assert [t for t, dirty in tabs if dirty] == [], "opened marked modified"
    path = lab_page.screenshot("lab-series")
    print(f"series opened and checked in {time.perf_counter() - start:.1f} s; screenshot {path}")


def test_lab_saves_an_untouched_notebook_byte_for_byte(lab_page, scratch):
    copy = scratch / SERIES[0].name
    shutil.copyfile(SERIES[0], copy)
    committed = copy.read_bytes()
    saved_at = copy.stat().st_mtime_ns
    lab_page.open_notebook(_relative(copy))
    lab_page.wait_kernel_idle()
    assert lab_page.stays_clean(2)
    lab_page.menu("File", "docmanager:save")
    lab_page.wait_for(lambda: copy.stat().st_mtime_ns != saved_at, 30, "Lab to save the notebook")
    assert copy.read_bytes() == committed, "Lab's saved form differs from the committed form"


def _probe(path, sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, str(path))
    notebook_format.normalize(path)
    return _relative(path)


def test_run_all_shows_outputs_and_reports_errors(lab_page, scratch):
    ok = _probe(
        scratch / "probe_ok.ipynb", ["import hybridlib", "print('hybridlib from', hybridlib.__file__)"]
    )
    lab_page.open_notebook(ok)
    lab_page.wait_kernel_idle()
    run = lab_page.run_all(timeout=120)
    assert run.ok and run.executed == 2, run.describe()
    expected = project_root() / "hybridlib" / "__init__.py"
    assert f"hybridlib from {expected}" in "".join(lab_page.outputs())

    failing = _probe(
        scratch / "probe_error.ipynb",
        ["print('before')", "raise ValueError('probe failure')", "print('after')"],
    )
    lab_page.open_notebook(failing)
    lab_page.wait_kernel_idle()
    run = lab_page.run_all(timeout=120)
    assert not run.ok and run.executed == 2 and run.code_cells == 3, run.describe()
    assert len(run.errors) == 1 and "ValueError: probe failure" in run.errors[0]
    assert "after" not in "".join(lab_page.outputs())
    assert lab_page.screenshot("lab-run-all-error").stat().st_size > 0
