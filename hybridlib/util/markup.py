"""Dataset text shown as text: escaped for Markdown, HTML and matplotlib (issue 20).

Captions, keywords, tags, file names, folder names and queries come from whoever made the dataset. Put into a
Markdown or HTML output as they are, ``<img src=x onerror=alert(1)>`` becomes a live element (in JupyterLab for
the user who ran the notebook, and in the offline pages of :mod:`hybridlib.notebook_html`), ``**`` and ``_``
change the formatting, ``[a](javascript:...)`` becomes a link, a backtick ends a code span, ``|`` splits a table
cell and ``$...$`` is typeset as maths. In a matplotlib label ``$...$`` is mathtext, and a command mathtext does
not know stops the figure from being drawn. Every notebook and helper that shows such text passes it through one
of these functions (notebooks through package helpers such as :func:`hybridlib.nbutils.retrieval_example_markdown`):

* :func:`escape_markdown`: running Markdown text. Every ASCII punctuation character is backslash-escaped
  (CommonMark allows it for each of them; JupyterLab, nbconvert and GitHub read it), so ``<``, ``&``, ``*``,
  ``_``, backticks, ``[``, ``](``, ``|`` (also in table cells), ``$``, ``#`` ... are shown as typed; a line
  break becomes a space, so a text cannot start a heading, list or quote of its own.
* :func:`markdown_code`: a code span (monospace) holding the text as typed: a backtick fence longer than any
  run of backticks in it (not for table cells: Markdown dialects differ on ``|`` in a code span there; use
  :func:`escape_markdown`).
* :func:`escape_html`: HTML text and attribute values (``html.escape`` with quotes).
* :func:`escape_mathtext`: matplotlib text: every ``$`` as ``\\$``, drawn as a dollar sign, never as maths
  (the decision for this project's figures: a dataset's text is not a formula).
"""

from __future__ import annotations

import html
import re
import string

_MARKDOWN_ACTIVE = re.compile("([" + re.escape(string.punctuation) + "])")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def escape_markdown(text) -> str:
    """``text`` (any value, shown by ``str``) as Markdown that renders exactly as ``text`` reads, on one line:
    ``"<img src=x>"`` -> ``"\\<img src\\=x\\>"``; ``"**a** | b"`` -> ``"\\*\\*a\\*\\* \\| b"``."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(text)))


def markdown_code(text) -> str:
    """``text`` as a Markdown code span, shown as typed in monospace (backticks and ``<`` included), on one line:
    ``"a`b"`` -> ``"``a`b``"``."""
    text = _LINE_BREAKS.sub(" ", str(text))
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def escape_html(text) -> str:
    """``text`` (any value, shown by ``str``) as HTML text or a quoted attribute value: ``& < > " '`` as entities."""
    return html.escape(str(text), quote=True)


def escape_mathtext(text) -> str:
    """``text`` for a matplotlib label or title: each ``$`` escaped, so it is drawn as typed, never as mathtext."""
    return str(text).replace("$", r"\$")
