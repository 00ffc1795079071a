"""Notebook 08's search box in a real browser: JupyterLab started by `make lab`, headless Debian Chromium.

Run All on a SMOKE copy of the notebook (it trains the tiny teaching model first), type a query into the widget,
and ten results with audio players appear. The helpers are in tests/browser_support.py.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest

from hybridlib import notebook_format
from hybridlib.paths import notebooks_dir, project_root, runs_dir

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCRATCH = runs_dir() / "browser" / "search"  # inside Lab's root (the project), git-ignored
QUERY = "birds chirp in a forest"


@pytest.fixture
def smoke_copy():
    """Notebook 08 with SMOKE=True injected (papermill's parameters cell), in the form Lab saves."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    nb = load_notebook_node(str(notebooks_dir() / "08_search.ipynb"))
    nb = parameterize_notebook(nb, {"SMOKE": True, "OUT_DIR": str(SCRATCH / "08_search")})
    path = SCRATCH / "08_search.ipynb"
    nbformat.write(nb, str(path))
    notebook_format.normalize(path)
    yield path.resolve().relative_to(project_root().resolve()).as_posix()
    shutil.rmtree(SCRATCH, ignore_errors=True)


def test_typing_a_query_lists_ten_clips_with_players(lab_page, smoke_copy):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    lab_page.open_notebook(smoke_copy)
    lab_page.wait_kernel_idle()
    run = lab_page.run_all(timeout=900)
    assert run.ok, run.describe()

    def find(selector):
        # Lab renders only the cells near the viewport: scroll to the end, where the search box is
        for scroller in lab_page.panel().find_elements(By.CSS_SELECTOR, ".jp-WindowedPanel-outer"):
            lab_page.driver.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", scroller)
        return lab_page.panel().find_elements(By.CSS_SELECTOR, selector)

    box = lab_page.wait_for(lambda: find(".hybrid-search-query input"), 60, "the search box")[0]
    box.clear()
    box.send_keys(QUERY, Keys.ENTER)

    def shown():
        header = find(".hybrid-search-header")
        players = find(".hybrid-search-results audio")
        return header and QUERY in header[0].text and len(players) == 10 and players

    players = lab_page.wait_for(shown, 120, f"ten results for {QUERY!r}")
    assert all(p.get_attribute("src") for p in players), "every player has its audio"
    assert len(find(".hybrid-search-hit")) == 10
    lab_page.driver.execute_script("arguments[0].scrollIntoView()", find(".hybrid-search-header")[0])
    assert lab_page.screenshot("search-widget").stat().st_size > 0
