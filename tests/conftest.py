"""Shared fixtures.

Tests never touch the user's ``data/`` folder or feature cache: before any test runs, ``HYBRIDLIB_DATA`` and
``HYBRIDLIB_CACHE`` point at a temporary folder of the session (kernels started by the notebook tests inherit
them), so teaching sets are generated and features cached there. ``HYBRIDLIB_TEST_DATA`` names a folder to
reuse across sessions instead (e.g. to keep a generated teaching set while iterating).

Real reference data lives in ``../shared/data`` (never copied into the repo). In CI (``CI=true``) a test
whose shared data is missing fails; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hybridlib.paths import shared_data_dir

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_configure(config):
    """Point data and cache at a session folder before any test module is imported.

    Parallel workers (pytest-xdist) share the folder of the session that started them: generating the
    teaching set and filling the cache are safe under concurrency (atomic renames), and done once.
    """
    import tempfile

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)  # one process per core: more threads would only compete
        if os.environ.get("HYBRIDLIB_TEST_ROOT"):
            return  # data and cache folders inherited from the controlling session
    root = Path(os.environ.get("HYBRIDLIB_TEST_DATA") or tempfile.mkdtemp(prefix="hybridlib-test-data-"))
    os.environ["HYBRIDLIB_TEST_ROOT"] = str(root)
    os.environ["HYBRIDLIB_DATA"] = str(root / "data")
    os.environ["HYBRIDLIB_CACHE"] = str(root / "cache")
    config.hybridlib_test_root = root


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """``--dist loadgroup`` (``make test``): give each test marked ``xdist_group(NAME)`` the node id suffix
    ``@NAME`` the scheduler groups by. pytest-xdist 3.8 does this by assigning ``item._nodeid``, which pytest 9
    no longer reads (its node ids live in ``item._id``): without this hook every group is silently ignored."""
    if not getattr(config.option, "loadgroup", False):  # set in xdist's workers under --dist loadgroup
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            item._id = coerce_node_id(item.nodeid + suffix)


def pytest_unconfigure(config):
    root = getattr(config, "hybridlib_test_root", None)
    if root is not None and not os.environ.get("HYBRIDLIB_TEST_DATA"):
        shutil.rmtree(root, ignore_errors=True)


def require_shared(*relative: str) -> Path:
    """Return ``shared/data/<relative>``; fail in CI, skip elsewhere, when it is missing."""
    path = shared_data_dir().joinpath(*relative)
    if not path.exists():
        message = f"shared reference data missing: {path}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def shared_data():
    """A function ``shared_data("clotho", "v2.1")`` returning the path (fail in CI / skip if absent)."""
    return require_shared


@pytest.fixture(scope="session")
def rehearsal_root() -> Path:
    """The rehearsal (:func:`hybridlib.reproduce.make_rehearsal`: miniature real-audio datasets in the official
    layouts and random-weight stand-ins of the papers' architectures), built once per test session below the
    session folder; parallel workers wait for the one that builds it (a file lock)."""
    import fcntl

    for part in (("soundbank-modsounds",), ("clotho", "v1"), ("clotho", "v2.1"), ("clotho", "audio"),
                 ("audiocaps", "v1"), ("audioset",)):
        require_shared(*part)
    base = Path(os.environ["HYBRIDLIB_TEST_ROOT"])
    base.mkdir(parents=True, exist_ok=True)
    root, done = base / "rehearsal", base / "rehearsal.complete"
    with open(base / "rehearsal.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():  # through the command a user runs
            from hybridlib.cli import main

            assert main(["make-rehearsal", "--out", str(root)]) == 0
            done.write_text("ok\n")
    return root


@pytest.fixture
def one_heavy_test_at_a_time():
    """Hold the session's memory lock for the test: tests that take many GB at once (a bert-large rehearsal
    row, a torchrun pair of processes, notebook 09's fine-tuning and its processes) run one at a time across
    the workers, so two of them never meet next to the other worker's test (24 GB machine). Parametrized tests
    of which only some are heavy ask for it with ``request.getfixturevalue``."""
    import fcntl

    base = Path(os.environ["HYBRIDLIB_TEST_ROOT"])
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "heavy-memory.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
        fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.manual_seed(0)
    yield


# -- real-browser tests (JupyterLab + headless Chromium): see tests/browser_support.py ---------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.browser_test_failed = report.failed  # read by lab_page to save a screenshot on failure
    return report


@pytest.fixture(scope="session")
def lab_server():
    """JupyterLab started by `make lab` on a free port (one per test session; always shut down)."""
    from browser_support import LabServer, require_browser

    require_browser()
    with LabServer() as server:
        yield server


@pytest.fixture
def lab_page(lab_server, request):
    """A fresh headless Chromium on `lab_server` (a browser_support.LabPage); Lab is reset afterwards."""
    from browser_support import LabPage, start_chromium

    driver, profile = start_chromium()
    page = LabPage(driver, lab_server)
    try:
        yield page
    finally:
        try:
            if getattr(request.node, "browser_test_failed", False):
                page.screenshot(f"{request.node.name}-failure")
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
            lab_server.reset()


@pytest.fixture
def file_server():
    """A local HTTP server with Range support serving ``file_server.files`` (see tests/http_support.py)."""
    from http_support import FileServer

    with FileServer() as server:
        yield server
