"""The committed form of the notebooks: exactly what JupyterLab writes when it saves an untouched notebook.

JupyterLab marks a notebook *modified* as soon as it rewrites the notebook's metadata on load. It does so
when the kernel connects: it replaces ``metadata.kernelspec`` with the running kernel's spec
(name, display name, language) and ``metadata.language_info`` with the kernel's ``kernel_info`` reply
(codemirror mode, file extension, mimetype, exporter, lexer and the exact Python version), unless the
stored values are already equal. The server then saves with ``nbformat`` (sorted keys, one-space indent,
trailing newline, nbformat 4.5 with cell ids). A notebook committed in that form opens clean.

The project kernel is the one the Makefile registers in ``.venv``
(``ipykernel install --sys-prefix --name hybrid-retrieval``). Its ``language_info`` is taken from the
kernel itself (a ``kernel_info`` request, as JupyterLab does), so the committed form follows the
project's Python; on another Python version JupyterLab would rewrite ``version`` again.

``normalize(path)`` rewrites a notebook into that form; ``check(path)`` lists what differs (by default
ignoring the Python ``version`` in ``language_info``, which only matches on the project's own Python: the
browser test checks the exact form where it runs). Re-apply it after editing notebooks outside JupyterLab::

    python -m hybridlib format-notebooks            # normalize every notebook under notebooks/
    python -m hybridlib format-notebooks --check    # exit 1 and list the notebooks that differ
"""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path

from hybridlib.paths import notebooks_dir
from hybridlib.util.errors import UserError
from hybridlib.util.files import atomic_write_text

KERNEL_NAME = "hybrid-retrieval"
KERNEL_DISPLAY_NAME = "Python (hybrid-retrieval)"
KERNELSPEC = {"display_name": KERNEL_DISPLAY_NAME, "language": "python", "name": KERNEL_NAME}
NBFORMAT_MINOR = 5  # what JupyterLab 4 saves (cell ids)


class KernelNotRegistered(UserError):
    """The project kernel is not installed in this environment."""


def kernel_language_info(kernel_name: str = KERNEL_NAME) -> dict:
    """``language_info`` as the registered kernel reports it (starts the kernel once, like JupyterLab)."""
    return copy.deepcopy(_reported_language_info(kernel_name))


@functools.cache
def _reported_language_info(kernel_name: str) -> dict:
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import start_new_kernel

    try:
        # stderr: the kernel's start-up chatter (transport warnings), not ours to show
        manager, client = start_new_kernel(
            kernel_name=kernel_name, startup_timeout=60, stderr=subprocess.DEVNULL
        )
    except NoSuchKernel:
        raise KernelNotRegistered(
            f"the project kernel {kernel_name!r} is not registered: run `make env` "
            f"(python -m ipykernel install --sys-prefix --name {kernel_name} "
            f'--display-name "{KERNEL_DISPLAY_NAME}")'
        ) from None
    try:
        reply = client.kernel_info(reply=True, timeout=60)
        return dict(reply["content"]["language_info"])
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def list_notebooks(folder: str | Path | None = None) -> list[Path]:
    """Every notebook under ``folder`` (default ``notebooks/``, subfolders included, no checkpoints)."""
    folder = Path(folder or notebooks_dir())
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def canonical_text(path: str | Path, language_info: dict | None = None) -> str:
    """The notebook at ``path`` as JupyterLab would save it right after opening it with the project kernel."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    if nb.nbformat_minor < NBFORMAT_MINOR:
        nb.nbformat_minor = NBFORMAT_MINOR
    for cell in nb.cells:
        if "id" not in cell:
            cell["id"] = nbformat.v4.nbbase.random_cell_id()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = dict(language_info or kernel_language_info())
    nbformat.validate(nb)
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def check(path: str | Path, language_info: dict | None = None, ignore_version: bool = True) -> list[str]:
    """What keeps ``path`` from the committed form (empty when it opens unmodified in JupyterLab).

    ``ignore_version``: accept the Python version stored in ``language_info`` even when the kernel here runs
    another one (JupyterLab on that Python rewrites it; nothing else differs).
    """
    import json

    path = Path(path)
    current = path.read_text(encoding="utf-8")
    info = dict(language_info or kernel_language_info())
    if ignore_version:
        stored = json.loads(current).get("metadata", {}).get("language_info", {})
        if "version" in stored:
            info["version"] = stored["version"]
    wanted = canonical_text(path, info)
    if current == wanted:
        return []
    problems = []
    have, want = json.loads(current), json.loads(wanted)
    for key in ("kernelspec", "language_info"):
        stored = have.get("metadata", {}).get(key) or {}
        differ = sorted(
            k for k in {*stored, *want["metadata"][key]} if stored.get(k) != want["metadata"][key].get(k)
        )
        if differ:
            shown = ", ".join(
                f"{k}={stored.get(k)!r} (Lab writes {want['metadata'][key].get(k)!r})" for k in differ
            )
            problems.append(f"metadata.{key}: {shown}")
    if have.get("nbformat_minor") != want["nbformat_minor"]:
        problems.append(
            f"nbformat_minor is {have.get('nbformat_minor')}, Lab writes {want['nbformat_minor']}"
        )
    if any("id" not in c for c in have.get("cells", [])):
        problems.append("cells without ids")
    if not problems:
        problems.append("JSON layout differs from nbformat's (key order, indent or trailing newline)")
    return [f"{path}: {p}" for p in problems]


def normalize(path: str | Path, language_info: dict | None = None) -> bool:
    """Rewrite ``path`` in the committed form; return whether it changed."""
    path = Path(path)
    wanted = canonical_text(path, language_info)
    if path.read_text(encoding="utf-8") == wanted:
        return False
    atomic_write_text(path, wanted)
    return True
