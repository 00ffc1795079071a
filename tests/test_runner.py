"""The papermill runner behind `make demo` and the smoke tests."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from hybridlib import runner


def _notebook(path, body: str, params: str = "SMOKE = False\nOUT_DIR = None\nVALUE = 1") -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params_cell = nbformat.v4.new_code_cell(params)
    params_cell.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# test"),
        nbformat.v4.new_code_cell("import json, pathlib"),
        params_cell,
        nbformat.v4.new_code_cell(body),
    ]
    nbformat.write(nb, str(path))


GOOD = (
    "pathlib.Path(OUT_DIR).mkdir(parents=True, exist_ok=True)\n"
    "(pathlib.Path(OUT_DIR) / 'results.json').write_text(json.dumps({'value': VALUE, 'smoke': SMOKE}))"
)


@pytest.fixture
def series(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "00_good.ipynb", GOOD)
    _notebook(folder / "01_bad.ipynb", "x = 1\nraise ValueError('boom from the test notebook')")
    _notebook(folder / "02_good.ipynb", GOOD)
    return folder


def test_list_notebooks_orders_and_filters(series):
    assert [p.name for p in runner.list_notebooks(series)] == ["00_good.ipynb", "01_bad.ipynb", "02_good.ipynb"]
    assert [p.name for p in runner.list_notebooks(series, ["02", "00_good"])] == ["00_good.ipynb", "02_good.ipynb"]
    from hybridlib.util.errors import UserError

    with pytest.raises(UserError, match=r"no notebook matches 99 .*\(the series: 00, 01, 02\)"):
        runner.list_notebooks(series, ["99"])


def test_params_global_and_per_notebook(series):
    nb = series / "02_good.ipynb"
    params = {"VALUE": 5, "EPOCHS": 3, "02": {"VALUE": 7}, "00_good": {"VALUE": 9}}
    assert runner.params_for(nb, params) == {"VALUE": 7, "EPOCHS": 3}
    assert runner.params_for(series / "00_good.ipynb", params) == {"VALUE": 9, "EPOCHS": 3}


@pytest.mark.slow
def test_successful_run_writes_executed_copy_and_results(series, tmp_path):
    from hybridlib.notebook_parameters import ParameterNameError

    _notebook(series / "03_extra.ipynb", GOOD, params="SMOKE = False\nOUT_DIR = None\nVALUE = 1\nEXTRA = 0")
    out = tmp_path / "out"
    with pytest.raises(ParameterNameError, match="UNDECLARED: no notebook of the series declares it"):
        runner.run_notebooks(params={"UNDECLARED": 1}, only=["00"], out=out, folder=series)
    runs = runner.run_notebooks(smoke=True, params={"VALUE": 3, "EXTRA": 1}, only=["00"], out=out,
                                folder=series, echo=lambda *_: None)
    assert len(runs) == 1 and runs[0].ok
    assert (out / "00_good.ipynb").exists()
    results = json.loads((out / "00_good" / "results.json").read_text())
    assert results["value"] == 3 and results["smoke"] is True
    assert results["_run"]["ok"] is True
    # a global parameter that another notebook declares is not injected into one that does not
    assert "EXTRA" not in results["_run"]["parameters"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary[0]["notebook"] == "00_good.ipynb" and summary[0]["ok"]
    from hybridlib.notebook_html import remote_references

    page = out / "html" / "00_good.html"  # the offline page of the executed copy
    assert summary[0]["html"] == str(page) and remote_references(page.read_text()) == []


@pytest.mark.slow
def test_failing_notebook_is_named_with_its_cell(series, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(runner.NotebookFailed) as info:
        runner.run_notebooks(folder=series, out=out, echo=lambda *_: None)
    message = str(info.value)
    assert "01_bad.ipynb" in message
    assert "ValueError" in message and "boom from the test notebook" in message
    assert "cell" in message
    # stops at the first failure by default: 02 never ran
    assert not (out / "02_good.ipynb").exists()


@pytest.mark.slow
def test_keep_going_runs_the_rest(series, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(runner.NotebookFailed):
        runner.run_notebooks(folder=series, out=out, keep_going=True, echo=lambda *_: None)
    assert (out / "02_good.ipynb").exists()


@pytest.mark.slow
def test_cli_exits_nonzero_and_names_the_notebook(series, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hybridlib", "run-notebooks", "--notebooks", str(series), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "01_bad.ipynb" in proc.stderr and "ValueError" in proc.stderr


@pytest.mark.slow
def test_cli_params_file(series, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("VALUE: 11\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hybridlib", "run-notebooks", "--notebooks", str(series), "--only", "02",
         "--params", str(params), "--smoke", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "o" / "02_good" / "results.json").read_text())["value"] == 11
    assert str(tmp_path / "o") in proc.stdout


def test_two_kernels_started_at_once_in_one_folder_get_their_own_sockets(tmp_path, monkeypatch):
    """Two notebooks executed at the same time from one folder (xdist, two run-notebooks): each kernel client
    talks to its own kernel (the shared kernel-ipc-<n> names once gave "Invalid Signature")."""
    import asyncio

    from hybridlib.runner import ipc_kernel_manager

    monkeypatch.chdir(tmp_path)
    manager = ipc_kernel_manager()

    async def both():
        kms = [manager(kernel_name="hybrid-retrieval") for _ in range(2)]
        await asyncio.gather(*(km.start_kernel() for km in kms))
        try:
            assert kms[0].ip != kms[1].ip and not list(tmp_path.iterdir())  # nothing in the working folder
            for km in kms:
                client = km.client()
                client.start_channels()
                await client.wait_for_ready(timeout=120)
                reply = await client.execute_interactive("import os; pid = os.getpid()", timeout=60)
                assert reply["content"]["status"] == "ok"
                client.stop_channels()
        finally:
            await asyncio.gather(*(km.shutdown_kernel(now=True) for km in kms))
        return [km._socket_dir for km in kms]

    for folder in asyncio.run(both()):
        assert not (tmp_path / folder).exists()  # an absolute path: the socket folder is removed
