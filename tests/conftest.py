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


# peak resident memory of the tests that take GBs (measured on the 2-core, 24 GB development machine)
MEMORY_GB = {"bert-large row": 14.0, "fine-tune row": 6.0, "frozen row": 2.0, "torchrun pair": 8.0,
             "notebook 09": 4.0}


def memory_budget_gb() -> float:
    """What the memory-heavy tests may hold at once across the workers: ``HYBRIDLIB_TEST_MEMORY_GB``, else the
    machine's memory less 3.5 GiB (the workers themselves, notebook kernels and the smaller tests; measured: a
    bert-large row beside a fine-tuning row peaked at 19.9 GB used of 24 GB, two torchrun pairs beside two
    5-GB workers were killed for memory)."""
    import psutil

    given = os.environ.get("HYBRIDLIB_TEST_MEMORY_GB")
    return float(given) if given else psutil.virtual_memory().total / 2**30 - 3.5


@pytest.fixture
def memory_budget():
    """``with memory_budget("bert-large row"): ...``: wait until the tests holding memory across the workers
    (a file in the session folder names each holder's process and GB, :data:`MEMORY_GB`) leave room under
    :func:`memory_budget_gb`, then hold it for the block. A test alone may always run (its need above the
    budget would otherwise wait forever); a holder whose process died is dropped. So a bert-large rehearsal row
    (14 GB) never meets a torchrun pair (8 GB) in the other worker, while fine-tuning and frozen rows go on."""
    import contextlib
    import fcntl
    import json
    import time

    base = Path(os.environ["HYBRIDLIB_TEST_ROOT"])
    base.mkdir(parents=True, exist_ok=True)
    ledger = base / "memory-budget.json"

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def update(change) -> bool:
        with open(base / "memory-budget.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            holders = json.loads(ledger.read_text()) if ledger.is_file() else {}
            holders = {k: v for k, v in holders.items() if alive(int(k))}
            done = change(holders)
            ledger.write_text(json.dumps(holders))
            return done

    @contextlib.contextmanager
    def hold(kind: str):
        need, me = MEMORY_GB[kind], str(os.getpid())

        def take(holders):
            if holders and sum(holders.values()) + need > memory_budget_gb():
                return False
            holders[me] = need
            return True

        while not update(take):
            time.sleep(2)
        try:
            yield
        finally:
            update(lambda holders: holders.pop(me, None))

    return hold


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
