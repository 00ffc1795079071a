"""Dataset text shown as text (:mod:`hybridlib.util.markup`): Markdown and HTML that render as typed, matplotlib
labels that are never mathtext, notebook 06's Markdown builders, and the page exporter's safety net for Markdown
outputs. The whole series on a payload set: ``tests/test_payload_pages.py``."""

from __future__ import annotations

import matplotlib
import nbformat
import pytest
from payload_set import IMG, LINK, MATH, PAYLOADS, SCRIPT, SVG, page_problems, page_text

from hybridlib.nbutils import clip_markdown, retrieval_example_markdown
from hybridlib.notebook_html import export_html
from hybridlib.util.markup import escape_html, escape_markdown, escape_mathtext, markdown_code

matplotlib.use("Agg")
EXTRA = ("a & b &lt; c", "line one\n# not a heading", "1. not a list", "> not a quote", r"back\slash \$5",
         "`", "``a`` b", "| cell |", "https://example.org/x_y_z")


def _render(markdown: str) -> str:
    """Markdown as JupyterLab shows a trusted output: raw HTML allowed (nbconvert's renderer, no escaping)."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    return MarkdownWithMath(renderer=IPythonRenderer(escape=False)).render(markdown)


@pytest.mark.parametrize("text", PAYLOADS + EXTRA)
def test_markdown_renders_as_typed(text):
    flat = " ".join(text.split("\n"))
    for markdown in (escape_markdown(text), markdown_code(text), f"**{escape_markdown(text)}**",
                     f"*{escape_markdown(text)}*"):
        html = _render(f"before {markdown} after")
        assert page_problems(html) == [], markdown
        assert f"before {flat} after".split() == page_text(html).split(), markdown
        assert "<math" not in html  # $...$ is not maths
    assert "\n" not in escape_markdown(text) and "\n" not in markdown_code(text)


def test_unescaped_payloads_would_be_live():
    """The checks can fail: the same texts put into Markdown as they are."""
    assert page_problems(_render(f"*{IMG}* {LINK} {SVG}")) == [
        "<img onerror='alert(1)'>", "<a href='javascript:alert(3)'>", "<svg onload='alert(2)'>"]
    assert page_problems(_render(SCRIPT)) == ["<script>alert(4)</script>"]


def test_html_and_code_spans():
    assert escape_html(IMG) == "&lt;img src=x onerror=alert(1)&gt;"
    assert escape_html('"q" \'s\'') == "&quot;q&quot; &#x27;s&#x27;"
    assert markdown_code("a`b") == "``a`b``" and markdown_code("`x") == "`` `x ``"
    assert escape_markdown("**a** | b") == r"\*\*a\*\* \| b"
    assert escape_markdown(3) == "3" and escape_markdown("") == ""


def test_a_table_cell_keeps_its_pipe():
    html = _render(f"| clip | caption |\n|---|---|\n| {escape_markdown('a|b')} | {escape_markdown(MATH)} |")
    assert "<td>a|b</td>" in html and page_text(html).count("|") == 1


def test_mathtext_is_never_parsed_from_dataset_text(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title(MATH)
    with pytest.raises(ValueError, match="nosuchmacro"):  # as it is, the text is mathtext and cannot be drawn
        fig.savefig(tmp_path / "raw.png")
    ax.set_title(escape_mathtext(MATH))
    fig.savefig(tmp_path / "escaped.png")
    assert ax.title._preprocess_math(ax.title.get_text()) == (MATH, False)  # drawn as typed
    plt.close(fig)


def test_every_plot_that_shows_dataset_text_draws_it_as_typed():
    from collections import Counter

    import numpy as np
    import pandas as pd
    import torch

    from hybridlib.viz import data as vd
    from hybridlib.viz import encoders as ve
    from hybridlib.viz import fusion as vf

    text = f"{MATH} {IMG}"
    frames = [torch.randn(4, 8), torch.randn(3, 8)]
    figures = [
        vd.plot_top_words(Counter({text: 3, "dog": 2}), title=text),
        vd.plot_spectrogram(np.random.default_rng(0).standard_normal(22050) * 0.1, 22050, title=text,
                            events=[{"label": text, "onset": 0.1, "offset": 0.4}]),
        vd.plot_keyword_caption_frequency(pd.DataFrame({"keyword": [text, "b"], "keyword_freq": [0.5, 0.2],
                                                        "caption_freq": [0.1, 0.3]}), title=text),
        ve.plot_encoder_stages(torch.randn(16000), 16000, torch.randn(50, 64), torch.randn(5, 32), title=text),
        ve.plot_frame_similarity(frames, [text, "b"], title=text),
        ve.plot_similarity_matrix(np.eye(2), [text, "b"], title=text),
        ve.plot_embedding_strips(np.random.default_rng(0).standard_normal((2, 8)), [text, "b"], title=text),
        vf.plot_query_weights([text, "b"], np.array([[0.3, 0.7], [0.6, 0.4]])),
        vf.plot_score_components(np.zeros(3), np.ones(3), np.array([0.5, 0.5]), title=text),
    ]
    import matplotlib.pyplot as plt

    for fig in figures:
        fig.canvas.draw()  # a mathtext label would raise here
        shown = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
        assert any(MATH in t._preprocess_math(t.get_text())[0] for t in fig.findobj(matplotlib.text.Text)), shown
        plt.close(fig)


def _example(**values):
    row = {"kind": "good", "caption": f"{IMG} {LINK}", "clip": f"{SVG} `x`.wav", "metadata": f"{SCRIPT} {MATH}",
           "rank (hybrid-late)": 1, "rank (baseline)": 7}
    return {**row, **values}


def test_notebook_06_examples_are_escaped_markdown():
    line = retrieval_example_markdown(_example(), "hybrid-late", "baseline")
    html = _render(line)
    assert page_problems(html) == []
    text = page_text(html)
    for payload in (IMG, LINK, SCRIPT, MATH):
        assert payload in text
    assert text.strip().endswith("rank of the correct clip: hybrid-late 1, baseline 7")
    assert "keywords: none" in page_text(_render(retrieval_example_markdown(_example(metadata=None), "hybrid-late",
                                                                                  "baseline")))
    clip = _render(clip_markdown("correct clip", f"{SVG} `x`.wav"))
    assert page_problems(clip) == [] and page_text(clip) == f"correct clip: {SVG} `x`.wav\n"


def test_page_exporter_shows_raw_html_of_markdown_outputs_as_text(tmp_path):
    """The safety net: a code cell's Markdown output that forgot to escape still gives a page where nothing
    runs; the notebook's own Markdown cells keep their HTML."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("a <b>bold</b> cell and $x^2$"),
                nbformat.v4.new_code_cell("show()", outputs=[nbformat.v4.new_output(
                    "display_data", data={"text/markdown": f"*{IMG}* {LINK} {SCRIPT} $y^2$", "text/plain": "x"})])]
    nbformat.write(nb, str(tmp_path / "nb.ipynb"))
    html = export_html(tmp_path / "nb.ipynb").read_text()
    assert page_problems(html, own_scripts={s.strip() for s in _scripts(tmp_path)}) == []
    assert "<b>" in html and html.count("<math") == 2  # the cell's HTML; maths in cell and output
    assert "#harmful-link" in html and "alert(4)" in page_text(html)


def _scripts(tmp_path):
    from payload_set import parse_page

    nbformat.write(nbformat.v4.new_notebook(), str(tmp_path / "empty.ipynb"))
    return parse_page(export_html(tmp_path / "empty.ipynb").read_text()).scripts
