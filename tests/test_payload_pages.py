"""Dataset text never becomes markup (issue 20): every notebook of the series, run in SMOKE mode on a teaching
set whose captions, keywords, tags, event labels, file names and folder name carry script, Markdown, table and
mathtext payloads (:mod:`payload_set`), gives offline pages (``<out>/html/``) in which nothing runs and the
payloads read as text; the executed copies' own Markdown and HTML outputs (what JupyterLab renders for the
user who ran them) hold no live markup either; the search command prints the texts as they are and the search
widget's HTML escapes them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from payload_set import (
    IMG,
    LINK,
    MARKDOWN,
    MATH,
    PAYLOADS,
    SCRIPT,
    SVG,
    TABLE,
    make_payload_set,
    page_problems,
    page_text,
)

from hybridlib import runner
from hybridlib.paths import notebooks_dir

# one worker runs the whole module (`make test` runs two): the series runs once, in the module's fixture
pytestmark = pytest.mark.xdist_group("payload-pages")
NOTEBOOKS = runner.list_notebooks(notebooks_dir())
# the notebooks that show dataset texts (00 is the tour, 05 works on toy embeddings): their pages show payloads
SHOWS_DATA = {"01", "02", "03", "04", "06", "07", "08"}
# notebook 07 trains dozens of small models even in SMOKE mode; its sections that show dataset text (the data
# line, the generated captions, the tables) all run with fewer losses, batch sizes and sweep points, which halves
# its time here (the full grid runs in the series' own SMOKE test)
FEWER_RUNS_07 = {"SHARING_CONFIGS": [], "LOSS_CONFIGS": ["loss-nt-xent", "loss-triplet-max"], "LOSS_BATCH_SIZES": [24],
                 "LOSS_SEEDS": 1, "SWEEP_REMOVE": [0.0, 1.0], "SWEEP_DROP_TAGS": [0.5], "SWEEP_POLICIES": ["learned"]}
# notebook 09 shows dataset text only in its data line and tables; one loader setting and one precision suffice
FEWER_RUNS_09 = {"WORKER_COUNTS": [0], "PRECISIONS": ["float32"]}


@pytest.fixture(scope="module")
def payload_run(tmp_path_factory):
    """The whole series in SMOKE mode on the payload set, through the runner that `make demo` uses (pages
    included); a failing notebook does not stop the others."""
    from hybridlib.data import ensure_teaching_set

    base = tmp_path_factory.mktemp("payload")
    root = make_payload_set(ensure_teaching_set(smoke=True, progress=False), base)
    out = base / "runs"
    start = time.perf_counter()
    try:
        runner.run_notebooks(smoke=True, params={"DATA": str(root), "07": FEWER_RUNS_07, "09": FEWER_RUNS_09},
                             out=out, keep_going=True, html=True)
    except runner.NotebookFailed:
        pass  # each notebook's test below names its own failure
    seconds = time.perf_counter() - start
    print(f"the series on the payload set: {seconds:.1f} s")
    summary = {Path(r["executed"]).stem[:2]: r for r in json.loads((out / "summary.json").read_text())}
    return {"root": root, "out": out, "summary": summary}


@pytest.fixture(scope="module")
def own_scripts(tmp_path_factory):
    """The scripts the exporter writes into every page (those of an empty notebook's page)."""
    from payload_set import parse_page

    from hybridlib.notebook_html import export_html

    folder = tmp_path_factory.mktemp("empty")
    nbformat.write(nbformat.v4.new_notebook(), str(folder / "empty.ipynb"))
    html = export_html(folder / "empty.ipynb").read_text()
    return {s.strip() for s in parse_page(html).scripts}


def _run(payload_run, number):
    run = payload_run["summary"].get(number)
    assert run is not None, f"notebook {number} did not run"
    return run


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_notebook_runs_and_its_page_holds_no_live_markup(path, payload_run, own_scripts):
    number = path.stem[:2]
    run = _run(payload_run, number)
    assert run["ok"], f"{path.name} on the payload set: {run['error']}"  # e.g. a caption drawn as mathtext
    html = Path(run["html"]).read_text()
    assert page_problems(html, own_scripts) == [], f"{path.name}: live markup in {run['html']}"
    if number in SHOWS_DATA:
        text = page_text(html)
        shown = [p for p in PAYLOADS if p in text]
        assert shown, f"{path.name}: no payload reads as text in its page"


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_executed_outputs_hold_no_live_markup(path, payload_run):
    """What JupyterLab shows the user who ran the notebook (trusted outputs: Markdown with its raw HTML, HTML
    as it is), independent of the page exporter."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    run = _run(payload_run, path.stem[:2])
    nb = nbformat.read(run["executed"], as_version=4)
    problems = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/markdown" in data:
                html = MarkdownWithMath(renderer=IPythonRenderer(escape=False)).render(data["text/markdown"])
                problems += [f"cell {index} (Markdown): {p}" for p in page_problems(html)]
            if "text/html" in data:
                problems += [f"cell {index} (HTML): {p}" for p in page_problems(data["text/html"])]
    assert problems == [], f"{path.name}: {problems}"


@pytest.mark.slow
@pytest.mark.notebooks
def test_notebook_06_shows_the_payload_examples_as_text(payload_run):
    """The case of the issue: notebook 06's retrieval examples (caption, keywords, clip file names) in Markdown."""
    run = _run(payload_run, "06")
    text = page_text(Path(run["html"]).read_text())
    assert IMG in text and MATH in text
    assert any(p in text for p in (LINK, MARKDOWN, TABLE, SVG, SCRIPT))


@pytest.mark.slow
@pytest.mark.notebooks
def test_search_cli_prints_the_texts_as_they_are(payload_run, capsys):
    from hybridlib.cli import main

    run = payload_run["out"] / "08_search" / "runs" / "hybrid-mid"
    assert main(["search", "--run", str(run), "--no-progress", "-k", "16", f"a dog barks {IMG}"]) == 0
    printed = capsys.readouterr().out
    assert IMG in printed and MATH in printed  # a terminal shows text: no entity, no backslash added
    assert "&lt;" not in printed and r"\$" not in printed


@pytest.mark.slow
@pytest.mark.notebooks
def test_search_widget_escapes_every_text(payload_run):
    from hybridlib.search import Searcher
    from hybridlib.search_widget import search_widget

    searcher = Searcher.from_run(payload_run["out"] / "08_search" / "runs" / "hybrid-mid")
    box = search_widget(searcher, query=f"{IMG} {LINK}", k=len(searcher.items))

    def html_values(widget):
        values = [widget.value] if type(widget).__name__ == "HTML" else []
        for child in getattr(widget, "children", ()):
            values += html_values(child)
        return values

    html = "".join(html_values(box))
    assert page_problems(html) == []
    text = page_text(html)
    assert IMG in text and MATH in text and LINK in text  # clip names, captions, keywords and the query


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.browser
def test_no_dialog_opens_in_a_browser(payload_run, tmp_path):
    """Every page opened in headless Chromium: no alert, confirm or prompt is called (the detector is checked on
    a page with a live payload first)."""
    from browser_support import start_chromium

    driver, profile = start_chromium()
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
            "window.__dialogs = [];"
            "for (const name of ['alert', 'confirm', 'prompt'])"
            "  window[name] = (m) => { window.__dialogs.push(name + ':' + m); };")})

        def dialogs(page: Path) -> list[str]:
            driver.get(page.as_uri())
            time.sleep(0.5)  # onerror of a broken image fires after the load
            return driver.execute_script("return window.__dialogs")

        live = tmp_path / "live.html"
        live.write_text(f"<html><body>{IMG}</body></html>")
        assert dialogs(live) == ["alert:1"]
        opened = {}
        for number, run in sorted(payload_run["summary"].items()):
            if run.get("html"):
                opened[number] = dialogs(Path(run["html"]))
        assert len(opened) == len(NOTEBOOKS) and {n: d for n, d in opened.items() if d} == {}
    finally:
        driver.quit()
        import shutil

        shutil.rmtree(profile, ignore_errors=True)
