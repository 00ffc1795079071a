"""Offline HTML pages of executed notebooks: maths, figures, tables and audio without any internet access.

nbconvert's ``lab`` template loads MathJax, require.js and the widget manager from CDNs, so a page opened
offline shows raw LaTeX. :class:`OfflineHTMLExporter` keeps nbconvert's HTML export (styles inlined,
figures embedded as base64, audio players as data URIs) and changes three things:

* the ``$...$`` / ``$$...$$`` maths of markdown cells is converted to MathML when the page is written
  (``latex2mathml``), which browsers draw natively: no script at all;
* the CDN ``<script>`` tags are left out (MathJax, require.js, the widget manager, mermaid);
* widget outputs, which cannot work in a static page, are replaced by a one-line note (their frozen text
  form would be misleading; ``run-notebooks`` draws its progress bars as text anyway).

Markdown *outputs* of code cells are rendered with their raw HTML shown as text and ``javascript:`` (and other
harmful) link targets cut, as a safety net behind the notebooks' own escaping of dataset text
(:mod:`hybridlib.util.markup`): a caption such as ``<img src=x onerror=...>`` never becomes a live element of a
page. The notebooks' own Markdown cells are rendered as written.

``python -m hybridlib run-notebooks`` writes one page per notebook to ``<out>/html/``;
:func:`export_html` converts any executed notebook.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "[interactive widget: open the notebook in JupyterLab to use it]"

# the lab template without the scripts it would fetch from CDNs
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""


def latex_to_mathml(latex: str, display: bool = False) -> str:
    """One formula as MathML; a formula latex2mathml cannot read stays as escaped source text."""
    import latex2mathml.converter

    try:
        return latex2mathml.converter.convert(latex.strip(), display="block" if display else "inline")
    except Exception:  # latex2mathml raises several exception types for unsupported commands
        delim = "$$" if display else "$"
        return f'<code class="latex">{escape(delim + latex + delim)}</code>'


def _exporter_class():
    from nbconvert.exporters import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    try:
        from jinja2 import pass_context
    except ImportError:  # pragma: no cover - jinja2 < 3
        from jinja2 import contextfilter as pass_context

    class MathMLRenderer(IPythonRenderer):
        def block_math(self, body: str) -> str:
            return latex_to_mathml(body, display=True)

        def multiline_math(self, text: str) -> str:
            match = re.fullmatch(r"\s*\$\$(.*)\$\$\s*", text, flags=re.S)
            return latex_to_mathml(match.group(1), display=True) if match else text

        def inline_math(self, body: str) -> str:
            return latex_to_mathml(body)

        def latex_environment(self, name: str, body: str) -> str:
            return latex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    class OfflineHTMLExporter(HTMLExporter):
        """nbconvert's lab HTML export with MathML maths and no CDN scripts (see the module docstring)."""

        @pass_context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            computed = cell.get("cell_type") == "code"  # a Markdown output, made from whatever data the cell read
            renderer = MathMLRenderer(
                escape=computed,
                allow_harmful_protocols=not computed,
                attachments=cell.get("attachments", {}),
                embed_images=self.embed_images,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text,
                exclude_anchor_links=self.exclude_anchor_links,
            )
            return MarkdownWithMath(renderer=renderer).render(source)

    return OfflineHTMLExporter


def _without_widgets(nb):
    """A copy of ``nb`` whose widget outputs are a text note and without saved widget state."""
    import copy

    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                output["data"] = {"text/plain": WIDGET_NOTE}
    return nb


def export_html(notebook: str | Path, html: str | Path | None = None) -> Path:
    """Write an offline HTML page of an (executed) notebook; return its path (default: beside it)."""
    import nbformat
    from jinja2 import DictLoader

    notebook = Path(notebook)
    html = Path(html) if html is not None else notebook.with_suffix(".html")
    nb = _without_widgets(nbformat.read(str(notebook), as_version=4))
    exporter = _exporter_class()(template_name="lab", template_file="offline.html.j2", embed_images=True,
                                 extra_loaders=[DictLoader({"offline.html.j2": _TEMPLATE})])
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"path": str(notebook.parent),
                                                                      "name": notebook.stem}})
    html.parent.mkdir(parents=True, exist_ok=True)
    from hybridlib.util.files import atomic_write_text

    return atomic_write_text(html, body)


_REMOTE = re.compile(r"""<script[^>]*\bsrc\s*=\s*["']?https?:|<link[^>]*\bhref\s*=\s*["']?https?:|"""
                     r"""@import\s+(url\()?\s*["']?https?:|url\(\s*["']?https?:|import\(\s*["']https?:""", re.I)


def remote_references(html: str) -> list[str]:
    """The ``http(s)`` scripts, stylesheets, CSS/JS imports and ``url(...)`` a page would fetch (empty: offline)."""
    return [m.group(0) for m in _REMOTE.finditer(html)]
