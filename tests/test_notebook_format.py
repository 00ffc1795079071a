"""The committed notebooks are in the form JupyterLab saves them, with the project kernel (issue 12).

`hybridlib.notebook_format` holds that form; tests/test_lab_browser.py checks it in a real JupyterLab.
"""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from hybridlib import notebook_format
from hybridlib.paths import notebooks_dir

NOTEBOOKS = notebook_format.list_notebooks()


def test_the_project_kernel_is_registered_as_the_notebooks_name_it():
    spec = KernelSpecManager().get_kernel_spec(notebook_format.KERNEL_NAME)  # registered by the Makefile
    assert spec.display_name == notebook_format.KERNEL_DISPLAY_NAME
    assert spec.language == "python"


def test_notebooks_are_found_in_subfolders_too(tmp_path):
    (tmp_path / "sub" / ".ipynb_checkpoints").mkdir(parents=True)
    for name in ("a.ipynb", "sub/b.ipynb", "sub/.ipynb_checkpoints/b-checkpoint.ipynb"):
        (tmp_path / name).write_text("{}")
    assert notebook_format.list_notebooks(tmp_path) == [tmp_path / "a.ipynb", tmp_path / "sub" / "b.ipynb"]
    assert NOTEBOOKS and set(notebooks_dir().glob("[0-9][0-9]_*.ipynb")) <= set(NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_in_the_committed_form(path):
    problems = notebook_format.check(path)
    assert not problems, "\n".join(problems) + "\nfix: python -m hybridlib format-notebooks"
    metadata = json.loads(path.read_text())["metadata"]
    assert metadata["kernelspec"] == {
        "display_name": "Python (hybrid-retrieval)",
        "language": "python",
        "name": "hybrid-retrieval",
    }


def test_normalize_repairs_what_lab_would_rewrite(tmp_path):
    path = tmp_path / "edited.ipynb"
    shutil.copyfile(NOTEBOOKS[0], path)
    raw = json.loads(path.read_text())
    sources = [c["source"] for c in raw["cells"]]
    raw["metadata"] = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    raw["nbformat_minor"] = 4
    for cell in raw["cells"]:
        del cell["id"]
    path.write_text(json.dumps(raw, indent=2))  # another editor's layout, no trailing newline
    problems = "\n".join(notebook_format.check(path))
    for expected in (
        "metadata.kernelspec",
        "name='python3'",
        "metadata.language_info",
        "nbformat_minor",
        "ids",
    ):
        assert expected in problems

    assert notebook_format.normalize(path) is True
    assert notebook_format.check(path) == []
    assert notebook_format.normalize(path) is False  # idempotent
    fixed = nbformat.read(str(path), as_version=4)
    assert ["".join(s) for s in sources] == [c.source for c in fixed.cells]
    assert fixed.nbformat_minor == 5 and len({c.id for c in fixed.cells}) == len(fixed.cells)
    assert fixed.metadata.language_info == notebook_format.kernel_language_info()


def test_only_layout_differences_are_reported_as_layout(tmp_path):
    path = tmp_path / "indented.ipynb"
    shutil.copyfile(NOTEBOOKS[0], path)
    notebook_format.normalize(path)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4))
    (problem,) = notebook_format.check(path)
    assert "JSON layout differs" in problem


def test_cli_checks_and_normalizes(tmp_path, capsys):
    shutil.copyfile(NOTEBOOKS[0], tmp_path / "a.ipynb")
    raw = json.loads((tmp_path / "a.ipynb").read_text())
    raw["metadata"].pop("language_info", None)
    (tmp_path / "a.ipynb").write_text(json.dumps(raw, indent=1))
    from hybridlib.cli import main

    assert main(["format-notebooks", "--check", str(tmp_path)]) == 1
    assert "a.ipynb: metadata.language_info" in capsys.readouterr().out
    assert main(["format-notebooks", str(tmp_path)]) == 0
    assert "normalized 1 of 1 notebooks" in capsys.readouterr().out
    assert main(["format-notebooks", "--check", str(tmp_path / "a.ipynb")]) == 0


def test_another_python_version_is_accepted_by_default(tmp_path):
    path = tmp_path / "b.ipynb"
    raw = json.loads(NOTEBOOKS[0].read_text())
    raw["metadata"]["language_info"]["version"] = "3.12.1"
    path.write_text(json.dumps(raw, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    assert notebook_format.check(path) == []
    assert "version='3.12.1'" in "\n".join(notebook_format.check(path, ignore_version=False))


def test_an_unregistered_kernel_is_a_clear_error():
    with pytest.raises(notebook_format.KernelNotRegistered, match="make env"):
        notebook_format.kernel_language_info("no-such-kernel-hybrid")
