"""Execute the numbered notebook series with papermill (behind ``make demo`` and the tests).

Each notebook runs with its working directory set to ``notebooks/`` (as in JupyterLab) and gets
``OUT_DIR=<out>/<notebook stem>`` and ``SMOKE`` injected into its ``parameters`` cell. The executed copy
is written to ``<out>/<notebook>.ipynb``; the notebook's own ``results.json`` in its ``OUT_DIR`` is
completed with the run's parameters and runtime.

Parameters from ``--params FILE`` (YAML or JSON): top-level keys apply to every notebook that declares
them; a key naming a notebook (``"03"`` or ``"03_encoders"``) holds parameters for that notebook only.
Every name is checked against the notebooks' parameters cells before any kernel starts
(:func:`check_params`): a top-level name that no notebook of the series declares, a name in a notebook's
section that this notebook does not declare, or a section naming no notebook, is a
:class:`~hybridlib.notebook_parameters.ParameterNameError` naming the notebook and the name.

Executed copies are meant to be read later: kernels run with ``HYBRIDLIB_PROGRESS=text`` (progress bars
keep their final state, see :mod:`hybridlib.util.progress`) over IPC sockets rather than local TCP, their
process output goes to ``<out>/logs/<notebook>.kernel.log`` rather than between the runner's lines, and
each copy is exported to a self-contained HTML page (:mod:`hybridlib.notebook_html`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hybridlib.notebook_parameters import ParameterNameError, check_names, notebook_parameters
from hybridlib.paths import notebooks_dir, runs_dir
from hybridlib.util.errors import UserError
from hybridlib.util.yaml_values import read_yaml


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the failing cell."""


@dataclass
class NotebookRun:
    notebook: str
    output: Path
    out_dir: Path
    seconds: float
    ok: bool
    error: str | None = None
    parameters: dict = field(default_factory=dict)
    html: Path | None = None


def list_notebooks(folder: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """The series in order (``NN_*.ipynb``), optionally restricted to numbers or stems in ``only``."""
    folder = Path(folder or notebooks_dir())
    books = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {w.strip() for w in only if w.strip()}
        books = [p for p in books if p.stem[:2] in wanted or p.stem in wanted or p.name in wanted]
        missing = wanted - {p.stem[:2] for p in books} - {p.stem for p in books} - {p.name for p in books}
        if missing:
            raise UserError(f"no notebook matches {', '.join(sorted(missing))} in {folder} "
                            f"(the series: {', '.join(p.stem[:2] for p in list_notebooks(folder))})")
    return books


def load_params(path: str | Path | None) -> dict:
    """Read a ``--params`` file (JSON by its suffix, else YAML); a missing or malformed file is a UserError."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise UserError(f"parameter file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    if path.suffix == ".json":
        try:
            values = json.loads(text)
        except ValueError as exc:  # one line naming the file
            raise UserError(f"{path}: not valid JSON ({exc})") from None
    else:  # the configs' reader: 1e-4 is a number, tags are refused
        values = read_yaml(text, str(path))
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected a mapping of NAME: value (and per-notebook sections), "
                        f"got {type(values).__name__}")
    return values


def normalize_params(params: dict) -> dict:
    """Section keys as written in the file: YAML reads ``06:`` as the integer 6, which means notebook ``06``."""
    return {(f"{k:02d}" if isinstance(k, int) and isinstance(v, dict) else k): v for k, v in params.items()}


def params_for(notebook: Path, params: dict) -> dict:
    """Global parameters plus the ones keyed by this notebook's number or stem."""
    keys = {notebook.stem, notebook.stem[:2], notebook.name}
    merged = {k: v for k, v in params.items() if not isinstance(v, dict) or k not in _notebook_keys(params)}
    for key, value in params.items():
        if key in keys and isinstance(value, dict):
            merged.update(value)
    return merged


def _notebook_keys(params: dict) -> set[str]:
    return {k for k, v in params.items() if isinstance(v, dict) and (str(k)[:2].isdigit())}


def check_params(params: dict, books: list[Path], series: list[Path] | None = None) -> None:
    """Raise :class:`ParameterNameError` for a name that would not reach any notebook (see the module
    docstring); ``series`` are all notebooks a global name may belong to (default ``books``)."""
    series = series or books
    sections = _notebook_keys(params)
    known_sections = {k for p in series for k in (p.stem, p.stem[:2], p.name)}
    stray = sorted(str(k) for k in sections if k not in known_sections)
    if stray:
        raise ParameterNameError(f"parameter section {', '.join(stray)} names no notebook of the series "
                                 f"({', '.join(p.stem[:2] for p in series)})")
    declared = {p: notebook_parameters(p) for p in series}
    everywhere = set().union(*(set(d) for d in declared.values()))
    globals_ = sorted(str(k) for k in params if k not in sections)
    unknown = [k for k in globals_ if k not in everywhere]
    if unknown:
        import difflib

        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k.upper(), sorted(everywhere), 1))
                 else k for k in unknown]
        raise ParameterNameError(f"unknown parameter {', '.join(hints)}: no notebook of the series declares it")
    for book in books:
        own = {}
        for key in sections & {book.stem, book.stem[:2], book.name}:
            own.update(params[key])
        check_names(book, own)


def _describe_failure(exc: Exception) -> str:
    cell = getattr(exc, "exec_count", None)
    index = getattr(exc, "cell_index", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    where = f"cell {index}" if index is not None else "a cell"
    if cell is not None:
        where += f" (execution count {cell})"
    source = (getattr(exc, "source", "") or "").strip().splitlines()
    first = f": `{source[0][:100]}`" if source else ""
    return f"{where}{first} raised {ename}: {evalue}"


def source_version() -> str | None:
    """The project's git commit (``abc1234``, ``+changes`` when the work tree differs), or None outside git."""
    import subprocess

    from hybridlib.paths import project_root

    def git(*args):
        return subprocess.run(["git", "-C", str(project_root()), *args], capture_output=True, text=True,
                              timeout=30)

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + (" +changes" if dirty else "")


def ipc_kernel_manager(log=None):
    """The kernel manager class for executed copies: IPC sockets (no TCP port, no transport warning), and the
    kernel process's own output (its start-up and shutdown log lines) written to ``log``, an open file,
    instead of the terminal; cell outputs and errors still come back through the kernel's messages."""
    from jupyter_client import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            import tempfile

            # a folder of its own for the sockets: jupyter_client names them kernel-ipc-<n> in the working
            # folder after checking which exist, so two kernels starting at once there took the same names
            # (the second client then failed with "Invalid Signature")
            self._socket_dir = tempfile.mkdtemp(prefix="hybridlib-kernel-")
            kwargs.setdefault("ip", os.path.join(self._socket_dir, "ipc"))
            super().__init__(transport="ipc", **kwargs)

        async def shutdown_kernel(self, *args, **kw):
            try:
                return await super().shutdown_kernel(*args, **kw)
            finally:
                import shutil

                shutil.rmtree(self._socket_dir, ignore_errors=True)

        async def start_kernel(self, **kw):
            if log is not None:  # Popen arguments of the kernel process
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
            return await super().start_kernel(**kw)

    return IPCKernelManager


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables for the kernels started inside the block (they inherit them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_notebook(notebook: Path, out: Path, parameters: dict, kernel_name: str | None = None,
                 html: bool = False, version: str | None = None) -> NotebookRun:
    """Execute one notebook; never raises for a failing cell (see ``NotebookRun.ok``).

    Global parameters the notebook does not declare are left out (see :func:`params_for`); call
    :func:`check_params` first to reject names that reach no notebook. ``html`` also writes
    ``<out>/html/<notebook>.html``, an offline page of the executed copy.
    """
    import papermill as pm

    from hybridlib.util.progress import ENV as PROGRESS_ENV

    notebook = Path(notebook)
    out = Path(out)
    out_dir = out / notebook.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    declared = notebook_parameters(notebook)
    params = {k: v for k, v in parameters.items() if k in declared}
    params["OUT_DIR"] = str(out_dir.resolve())
    output = out / notebook.name
    start = time.perf_counter()
    error = None
    log_path = out / "logs" / f"{notebook.stem}.kernel.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _environment(**{PROGRESS_ENV: "text"}), open(log_path, "w") as log:
            pm.execute_notebook(
                str(notebook),
                str(output),
                parameters=params,
                cwd=str(notebook.parent),
                kernel_name=kernel_name,
                progress_bar=False,
                log_output=False,
                kernel_manager_class=ipc_kernel_manager(log),
            )
    except Exception as exc:  # papermill wraps cell errors in PapermillExecutionError
        error = _describe_failure(exc)
        if not getattr(exc, "ename", None):  # not a cell error: the kernel's own log may say more
            error += f" (kernel log: {log_path})"
    seconds = time.perf_counter() - start
    page = None
    if html and output.is_file():
        from hybridlib.notebook_html import export_html

        page = export_html(output, out / "html" / f"{notebook.stem}.html")
    run = NotebookRun(notebook.name, output, out_dir, seconds, error is None, error, params, page)
    from hybridlib.nbutils import save_results

    save_results(
        out_dir,
        _run={"notebook": notebook.name, "seconds": round(seconds, 2), "ok": run.ok, "error": error,
              "parameters": params, "finished": datetime.now().isoformat(timespec="seconds"),
              "source": version},
    )
    return run


def run_notebooks(
    smoke: bool = False,
    params: dict | None = None,
    only: list[str] | None = None,
    out: str | Path | None = None,
    folder: str | Path | None = None,
    keep_going: bool = False,
    kernel_name: str | None = None,
    echo=None,
    html: bool = True,
) -> list[NotebookRun]:
    """Run the series; raise :class:`NotebookFailed` naming the first failing notebook and cell.

    Parameter names are checked for every selected notebook before the first one starts
    (:class:`~hybridlib.notebook_parameters.ParameterNameError`).
    """
    echo = echo or functools.partial(print, flush=True)
    params = normalize_params(dict(params or {}))
    folder = Path(folder) if folder else None
    books = list_notebooks(folder, only)
    check_params(params, books, list_notebooks(folder))
    out = Path(out) if out else runs_dir() / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    version = source_version()
    runs: list[NotebookRun] = []
    for nb in books:
        nb_params = {"SMOKE": smoke, **params_for(nb, params)}
        echo(f"[run-notebooks] {nb.name} ...")
        run = run_notebook(nb, out, nb_params, kernel_name=kernel_name, html=html, version=version)
        runs.append(run)
        status = "ok" if run.ok else "FAILED"
        echo(f"[run-notebooks] {nb.name}: {status} in {run.seconds:.1f} s")
        if not run.ok and not keep_going:
            break
    summary = [
        {"notebook": r.notebook, "ok": r.ok, "seconds": round(r.seconds, 2), "error": r.error,
         "executed": str(r.output), "out_dir": str(r.out_dir), "html": str(r.html) if r.html else None}
        for r in runs
    ]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    failed = [r for r in runs if not r.ok]
    if failed:
        lines = "\n".join(f"  {r.notebook}: {r.error} (executed copy: {r.output})" for r in failed)
        raise NotebookFailed(f"{len(failed)} notebook(s) failed:\n{lines}")
    return runs
