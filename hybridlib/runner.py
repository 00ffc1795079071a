"""Execute the numbered notebook series with papermill (behind ``make demo`` and the tests).

Each notebook runs with its working directory set to ``notebooks/`` (as in JupyterLab) and gets
``OUT_DIR=<out>/<notebook stem>`` and ``SMOKE`` injected into its ``parameters`` cell. The executed copy
is written to ``<out>/<notebook>.ipynb``; the notebook's own ``results.json`` in its ``OUT_DIR`` is
completed with the run's parameters and runtime.

Parameters from ``--params FILE`` (YAML or JSON): top-level keys apply to every notebook that declares
them; a key naming a notebook (``"03"`` or ``"03_encoders"``) holds parameters for that notebook only.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hybridlib.paths import notebooks_dir, runs_dir


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


def list_notebooks(folder: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """The series in order (``NN_*.ipynb``), optionally restricted to numbers or stems in ``only``."""
    folder = Path(folder or notebooks_dir())
    books = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {w.strip() for w in only if w.strip()}
        books = [p for p in books if p.stem[:2] in wanted or p.stem in wanted or p.name in wanted]
        missing = wanted - {p.stem[:2] for p in books} - {p.stem for p in books} - {p.name for p in books}
        if missing:
            raise FileNotFoundError(f"No notebook matches {sorted(missing)} in {folder}")
    return books


def load_params(path: str | Path | None) -> dict:
    if path is None:
        return {}
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        return json.loads(text)
    import yaml

    return yaml.safe_load(text) or {}


def params_for(notebook: Path, params: dict) -> dict:
    """Global parameters plus the ones keyed by this notebook's number or stem."""
    keys = {notebook.stem, notebook.stem[:2], notebook.name}
    merged = {k: v for k, v in params.items() if not isinstance(v, dict) or k not in _notebook_keys(params)}
    for key, value in params.items():
        if key in keys and isinstance(value, dict):
            merged.update(value)
    return merged


def _notebook_keys(params: dict) -> set[str]:
    return {k for k, v in params.items() if isinstance(v, dict) and (k[:2].isdigit())}


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


def run_notebook(notebook: Path, out: Path, parameters: dict, kernel_name: str | None = None) -> NotebookRun:
    """Execute one notebook; never raises for a failing cell (see ``NotebookRun.ok``)."""
    import papermill as pm

    notebook = Path(notebook)
    out_dir = out / notebook.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    declared = pm.inspect_notebook(str(notebook))
    params = {k: v for k, v in parameters.items() if k in declared}
    params["OUT_DIR"] = str(out_dir.resolve())
    output = out / notebook.name
    start = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(
            str(notebook),
            str(output),
            parameters=params,
            cwd=str(notebook.parent),
            kernel_name=kernel_name,
            progress_bar=False,
            log_output=False,
        )
    except Exception as exc:  # papermill wraps cell errors in PapermillExecutionError
        error = _describe_failure(exc)
    seconds = time.perf_counter() - start
    run = NotebookRun(notebook.name, output, out_dir, seconds, error is None, error, params)
    from hybridlib.nbutils import save_results

    save_results(
        out_dir,
        _run={"notebook": notebook.name, "seconds": round(seconds, 2), "ok": run.ok, "error": error,
              "parameters": params},
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
) -> list[NotebookRun]:
    """Run the series; raise :class:`NotebookFailed` naming the first failing notebook and cell."""
    echo = echo or functools.partial(print, flush=True)
    out = Path(out) if out else runs_dir() / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    params = dict(params or {})
    runs: list[NotebookRun] = []
    for nb in list_notebooks(Path(folder) if folder else None, only):
        nb_params = {"SMOKE": smoke, **params_for(nb, params)}
        echo(f"[run-notebooks] {nb.name} ...")
        run = run_notebook(nb, out, nb_params, kernel_name=kernel_name)
        runs.append(run)
        status = "ok" if run.ok else "FAILED"
        echo(f"[run-notebooks] {nb.name}: {status} in {run.seconds:.1f} s")
        if not run.ok and not keep_going:
            break
    summary = [
        {"notebook": r.notebook, "ok": r.ok, "seconds": round(r.seconds, 2), "error": r.error,
         "executed": str(r.output), "out_dir": str(r.out_dir)}
        for r in runs
    ]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    failed = [r for r in runs if not r.ok]
    if failed:
        lines = "\n".join(f"  {r.notebook}: {r.error} (executed copy: {r.output})" for r in failed)
        raise NotebookFailed(f"{len(failed)} notebook(s) failed:\n{lines}")
    return runs
