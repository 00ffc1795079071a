"""Real-browser tests: JupyterLab started by ``make lab``, driven by Debian's headless Chromium.

Everything a browser test needs, in one place (the fixtures are in ``tests/conftest.py``):

* ``lab_server`` (session): :class:`LabServer`, JupyterLab started through the Makefile's ``lab`` target
  (same root dir, same default URL, same ``--allow-root`` handling) on a free local port with a random
  token; waits until the server answers, always shut down (also on failure), kernels included. Its log
  goes to ``runs/browser/lab-server.log``.
* ``lab_page`` (per test): :class:`LabPage`, a fresh headless Chromium (``/usr/bin/chromium`` through
  ``/usr/bin/chromedriver``, never a downloaded browser or driver) logged in to that server. After the
  test the browser is closed and Lab's sessions (kernels) and saved layouts are deleted, so every test
  starts on a freshly started Lab. A failing test leaves ``runs/browser/<test>-failure.png``.

A test (mark it ``slow`` and ``browser``)::

    @pytest.mark.slow
    @pytest.mark.browser
    def test_search_widget(lab_page):
        lab_page.open_notebook("notebooks/08_search.ipynb")   # path relative to the project root
        assert lab_page.wait_kernel_idle() == "Python (hybrid-retrieval)"
        run = lab_page.run_all(timeout=300)                  # Run menu > Run All Cells
        assert run.ok, run.describe()
        box = lab_page.panel().find_element(By.CSS_SELECTOR, ".widget-text input")
        box.send_keys("dog barking", Keys.ENTER)
        lab_page.wait_for(lambda: len(lab_page.panel().find_elements(By.TAG_NAME, "audio")) == 10)
        lab_page.screenshot("search-widget")                 # -> runs/browser/search-widget.png

Chromium runs with ``CHROMIUM_FLAGS`` and a fresh empty profile: this machine's closed network refuses
Chromium's background connections otherwise. In this Lab autosave is off and the news prompt disabled
(temporary user settings), so a test never writes to the notebooks it opens. ``make test`` installs the
browser (``make browser``: Debian's ``chromium`` and ``chromium-driver``) and selenium (requirements.txt).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hybridlib.paths import project_root, runs_dir

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WINDOW_SIZE = (1400, 900)
SCREENSHOTS = runs_dir() / "browser"
STAMP_NAME = ".hybrid-retrieval-installed"  # the Makefile's $(STAMP) inside $(VENV)

# Lab user settings for tests only: never autosave a notebook a test ran, no news prompt over the page.
TEST_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}

# A line of an error output: IPython's traceback header or the final "SomethingError: message".
ERROR_LINE = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception|Interrupt|Exit)\b", re.M)


class BrowserSetupError(RuntimeError):
    """Chromium, chromedriver, make or JupyterLab are missing or did not start."""


def require_browser() -> None:
    """Raise a one-line error naming the set-up step when Debian's chromium or its driver is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.is_file() and os.access(p, os.X_OK))]
    if missing:
        raise BrowserSetupError(
            f"missing {', '.join(missing)}: run `make browser` (Debian packages chromium, chromium-driver)"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition`` until it returns a truthy value (returned); TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class LabServer:
    """JupyterLab as ``make lab`` starts it, on a free port with a random token, in its own process group.

    ``make -o <stamp> lab VENV=<this Python's environment>`` runs the Makefile's recipe without
    re-checking the installation; ``LAB_ARGS`` adds only what a test needs (port, token, no browser,
    temporary workspace, settings, trust-database and runtime folders: nothing is written to your home).
    """

    def __init__(self, root: Path | None = None, port: int | None = None, startup_timeout: float = 120):
        self.root = Path(root or project_root())
        self.port = port or free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.scratch = Path(tempfile.mkdtemp(prefix="hybrid-lab-"))
        self.log_path = SCREENSHOTS / "lab-server.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        make = shutil.which("make")
        if make is None:
            raise BrowserSetupError("`make` not found: the browser tests start JupyterLab through `make lab`")
        venv = Path(sys.prefix)
        lab_args = [
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--LabApp.workspaces_dir={self.scratch / 'workspaces'}",
            f"--LabApp.user_settings_dir={self.scratch / 'settings'}",
            f"--NotebookNotary.data_dir={self.scratch / 'notary'}",  # trust database of this server only
        ]
        return [
            make, "-s", "--no-print-directory", "-C", str(self.root),
            "-o", str(venv / STAMP_NAME),
            "lab", f"VENV={venv}", f"LAB_ARGS={' '.join(lab_args)}",
        ]  # fmt: skip

    def start(self) -> LabServer:
        for name, values in TEST_SETTINGS.items():
            path = self.scratch / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        (self.scratch / "notary").mkdir()
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(self.scratch / "runtime"))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            self.command(), cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()
        try:
            wait_until(self._answers, self.startup_timeout, f"JupyterLab on {self.url}", interval=0.3)
        except BaseException as exc:
            self.stop()
            raise BrowserSetupError(f"JupyterLab did not start ({exc}); log:\n{self.log_tail()}") from exc
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise BrowserSetupError(f"`make lab` exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return self.api("GET", "/api/status") is not None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def api(self, method: str, path: str, timeout: float = 10):
        """Call the server's REST API with the token; return the decoded JSON (None for an empty body)."""
        request = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def reset(self) -> None:
        """Shut down every session (kernel) and forget the saved layouts: Lab as freshly started."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for workspace in self.api("GET", "/lab/api/workspaces")["workspaces"]["ids"]:
            self.api("DELETE", f"/lab/api/workspaces/{workspace}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Shut the server down through its API (kernels included); kill the process group if it lingers."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.api("POST", "/api/shutdown", timeout=5)
                self.process.wait(timeout=20)
            except Exception:
                pass
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if self.process.poll() is not None:
                    break
                try:
                    os.killpg(self.process.pid, sig)
                    self.process.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_chromium(window_size: tuple[int, int] = WINDOW_SIZE):
    """Headless Debian Chromium through its own chromedriver (selenium-manager is never consulted).

    Returns ``(driver, profile_dir)``; quit the driver and remove the profile when done.
    """
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="hybrid-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={window_size[0]},{window_size[1]}")
    try:
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    except Exception:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    return driver, profile


@dataclass
class RunResult:
    """What ``Run All Cells`` did: code cells executed (numbered prompt) and the error outputs shown."""

    executed: int
    code_cells: int
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.executed == self.code_cells and not self.errors

    def describe(self) -> str:
        text = f"{self.executed}/{self.code_cells} code cells executed in {self.seconds:.1f} s"
        return text + "".join(f"\n--- error output:\n{e[-1500:]}" for e in self.errors)


class LabPage:
    """The JupyterLab page in a browser: open notebooks, read what the notebook tab shows, run, screenshot.

    Everything reads the page as a person sees it (tab classes, toolbar, status bar, prompts, outputs);
    actions go through Lab's own menus.
    """

    def __init__(self, driver, server: LabServer):
        self.driver = driver
        self.server = server

    # -- navigation ------------------------------------------------------------------------------
    def open_lab(self, timeout: float = 60) -> str:
        """Log in and load Lab's default URL (what ``make lab`` opens); return the page's path."""
        self.driver.get(f"{self.server.url}/?token={self.server.token}")
        wait_until(lambda: self._by_css(".jp-DirListing-item"), timeout, "JupyterLab's file browser")
        path = self.driver.current_url.split("?")[0].removeprefix(self.server.url)
        if path.endswith(".ipynb"):  # the default URL opens a notebook: wait for it before anything else
            self._wait_open(path.rsplit("/", 1)[-1], timeout)
        return path

    def open_notebook(self, path: str, timeout: float = 60):
        """Open ``path`` (relative to the project root) with File > Open from Path; return its panel."""
        from selenium.webdriver.common.keys import Keys

        if not self._by_css("#jp-main-dock-panel"):
            self.open_lab(timeout)
        self.menu("File", "filebrowser:open-path")
        box = wait_until(lambda: self._by_css(".jp-Dialog input"), 10, "the Open Path dialog")[0]
        box.send_keys(path, Keys.ENTER)
        self._wait_open(Path(path).name, timeout)
        return self.panel()

    def _wait_open(self, name: str, timeout: float) -> None:
        wait_until(
            lambda: self._current_tab_title() == name and self._in_panel(".jp-Notebook .jp-Cell"),
            timeout,
            f"notebook {name} to open",
        )

    def menu(self, menu: str, command: str) -> None:
        """Click ``menu`` in the menu bar, then the item running Lab command ``command``."""
        items = [e for e in self._by_css("#jp-menu-panel .lm-MenuBar-item") if e.text.strip() == menu]
        if not items:
            raise LookupError(f"no menu {menu!r} in the menu bar")
        items[0].click()
        selector = f'.lm-Menu .lm-Menu-item[data-command="{command}"]'
        wait_until(lambda: self._by_css(selector), 10, f"menu item {command}")[0].click()

    # -- what the page shows ---------------------------------------------------------------------
    def current_tab(self):
        return self._by_css("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")[0]

    def _current_tab_title(self) -> str:
        tabs = self._by_css("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
        return tabs[0].text.strip() if tabs else ""

    def panel(self):
        """The widget of the current main-area tab (the notebook panel)."""
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, self.current_tab().get_attribute("data-id"))

    def _in_panel(self, selector: str) -> list:
        """Elements of the current tab's widget; none while no tab is open yet."""
        tabs = self._by_css("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
        if not tabs:
            return []
        return self._by_css(f'[id="{tabs[0].get_attribute("data-id")}"] {selector}')

    def is_dirty(self) -> bool:
        """Whether the current tab carries JupyterLab's modified marker (the dot instead of the x)."""
        return "jp-mod-dirty" in self.current_tab().get_attribute("class").split()

    def notebook_tabs(self) -> list[tuple[str, bool]]:
        """Every main-area tab as ``(title, modified marker shown)``, left to right."""
        tabs = self._by_css("#jp-main-dock-panel .lm-TabBar-tab")
        return [(t.text.strip(), "jp-mod-dirty" in t.get_attribute("class").split()) for t in tabs]

    def stays_clean(self, seconds: float = 3.0) -> bool:
        """Watch the modified marker for ``seconds``; False as soon as it appears."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.is_dirty():
                return False
            time.sleep(0.2)
        return not self.is_dirty()

    def kernel_name(self) -> str:
        """The kernel name in the notebook toolbar (``No Kernel`` / ``Kernel`` while none is connected)."""
        labels = self._in_panel(".jp-KernelName .jp-ToolbarButtonComponent-label")
        return labels[0].get_attribute("textContent").strip() if labels else ""

    def kernel_status(self) -> str:
        """The toolbar's execution indicator: ``idle``, ``busy``, ``starting``, ``unknown`` ..."""
        found = self._in_panel(".jp-Notebook-ExecutionIndicator")
        return found[0].get_attribute("data-status") if found else ""

    def status_bar_kernel(self) -> str:
        """The status bar's kernel item, e.g. ``Python (hybrid-retrieval) | Idle``."""
        texts = [
            e.get_attribute("textContent").strip()
            for e in self._by_css("#jp-main-statusbar .jp-StatusBar-Item")
        ]
        return next((t for t in texts if " | " in t), "")

    def wait_kernel_idle(self, timeout: float = 120) -> str:
        """Wait until the notebook's kernel is connected and idle; return the kernel name shown."""
        wait_until(
            lambda: self.kernel_status() == "idle" and self.kernel_name() not in ("", "No Kernel", "Kernel"),
            timeout,
            "the kernel to be idle",
        )
        return self.kernel_name()

    def prompts(self) -> list[str]:
        """The input prompts of the code cells, e.g. ``['[1]:', '[*]:', '[ ]:']``."""
        cells = self._in_panel(".jp-CodeCell .jp-InputPrompt")
        return [c.get_attribute("textContent").strip() for c in cells]

    def outputs(self) -> list[str]:
        """The text of every output shown in the current notebook, in order."""
        return [e.get_attribute("textContent") for e in self._in_panel(".jp-OutputArea-output")]

    def error_outputs(self) -> list[str]:
        """Outputs that show a Python error (Lab renders errors as stderr text: matched by ``ERROR_LINE``)."""
        found = self._in_panel('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        texts = [e.get_attribute("textContent") for e in found]
        return [t for t in texts if ERROR_LINE.search(t)]

    def file_browser_path(self) -> str:
        crumbs = self._by_css(".jp-FileBrowser .jp-BreadCrumbs")
        return crumbs[0].get_attribute("textContent").strip() if crumbs else ""

    def file_browser_items(self) -> list[str]:
        """Names listed in the file browser's current folder."""
        names = self._by_css(".jp-DirListing-item .jp-DirListing-itemText")
        return [e.get_attribute("textContent").strip() for e in names]

    # -- actions ---------------------------------------------------------------------------------
    def run_all(self, timeout: float = 600) -> RunResult:
        """Run > Run All Cells; wait until no cell is pending and the kernel is idle again."""
        start = time.monotonic()
        before = self.prompts()
        self.menu("Run", "runmenu:run-all")
        wait_until(lambda: self.prompts() != before or self.kernel_status() == "busy", 30, "the run to start")
        wait_until(
            lambda: self.kernel_status() == "idle" and not any("*" in p for p in self.prompts()),
            timeout,
            "all cells to finish",
            interval=0.5,
        )
        prompts = self.prompts()
        executed = sum(bool(re.fullmatch(r"\[\d+\]:", p)) for p in prompts)
        return RunResult(executed, len(prompts), self.error_outputs(), time.monotonic() - start)

    def wait_for(self, condition: Callable[[], object], timeout: float = 60, what: str = "the page"):
        return wait_until(condition, timeout, what)

    def screenshot(self, name: str) -> Path:
        """Save the whole window as ``runs/browser/<name>.png`` (git-ignored); return the path."""
        path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path

    def _by_css(self, selector: str, within=None):
        from selenium.webdriver.common.by import By

        return (within or self.driver).find_elements(By.CSS_SELECTOR, selector)
