"""The offline HTML export: maths as MathML, figures and audio embedded, no script or style from the internet."""

from __future__ import annotations

import base64

import nbformat

from hybridlib.notebook_html import WIDGET_NOTE, export_html, latex_to_mathml, remote_references

PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


def _executed_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n\nInline $s(a, q) = \\frac{a^\\top q}{\\lVert a\\rVert}$ and\n\n"
                                      "$$\\mathcal{L} = -\\frac{1}{B}\\sum_{i=1}^{B}\\log p_{ii}$$"),
        nbformat.v4.new_code_cell("plot()", outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
            nbformat.v4.new_output("display_data", data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2,
                                                             "version_minor": 0},
                "text/plain": "  0%|          | 0/12"}),
            nbformat.v4.new_output("stream", name="stdout", text="done\n")]),
    ]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                              "version_minor": 0}}
    nbformat.write(nb, str(path))
    return path


def test_export_is_offline(tmp_path):
    page = export_html(_executed_notebook(tmp_path / "nb.ipynb"), tmp_path / "html" / "nb.html")
    html = page.read_text()
    assert remote_references(html) == []  # no http(s) script, stylesheet, import or url()
    assert html.count("<math") == 2 and 'display="block"' in html  # inline and display maths as MathML
    assert "\\frac" not in html and "$$" not in html  # no raw LaTeX left for a CDN MathJax
    assert f"data:image/png;base64,{PNG[:20]}" in html  # the figure is embedded
    assert WIDGET_NOTE in html and "0%|" not in html  # no frozen widget text
    assert "done" in html


def test_remote_references_and_unreadable_latex():
    assert remote_references('<script src="https://cdn.example/x.js"></script>') == ['<script src="https:']
    assert remote_references('<link rel="stylesheet" href="http://x/y.css">') == ['<link rel="stylesheet" href="http:']
    assert remote_references("<style>@import url(https://x/y.css)</style>")
    assert remote_references('<a href="https://example.org">a link</a> xmlns="http://www.w3.org/1998/Math/MathML"') == []
    assert latex_to_mathml("\\frac{1}{") == '<code class="latex">$\\frac{1}{$</code>'  # unreadable: shown as source
    assert latex_to_mathml("x^2", display=True).startswith('<math xmlns="http://www.w3.org/1998/Math/MathML" '
                                                            'display="block">')
