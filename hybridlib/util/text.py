"""The one text normaliser, used for queries, metadata and full-sentence descriptions alike.

The hybrid paper pre-processes every text by "transforming all characters to lowercase and removing
punctuation" and renders tags as "whitespace-separated lists of keywords". One rule serves all three
roles, so the same word is tokenised the same way whether it appears in a query or in metadata
(``field-recording`` becomes ``field recording`` in both).

Modes (:data:`TEXT_MODES`):

* ``"hybrid"`` (default; choice left open by the paper, made here): lowercase; apostrophes are deleted
  (``dog's`` -> ``dogs``, one word); every other punctuation or symbol character and the underscore becomes a
  space (``field-recording`` -> ``field recording``, ``rain/thunder`` -> ``rain thunder``); whitespace is
  collapsed.
* ``"mei"``: Mei et al.'s released caption preprocessing (``tools/dataset.py``, ``_sentence_process``):
  lowercase, a space before punctuation is removed, then only ``, . ! ? ; : "`` are replaced by a space;
  apostrophes, hyphens and other characters are kept for the WordPiece tokenizer to split.
"""

from __future__ import annotations

import re

TEXT_MODES = ("hybrid", "mei")
_APOSTROPHES = re.compile(r"['\u2019\u2018`]")
_PUNCT = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")
_MEI_SPACE_BEFORE = re.compile(r'\s([,.!?;:"](?:\s|$))')
_MEI_PUNCT = re.compile(r'[,.!?;:"]')


def normalize_text(text: str, mode: str = "hybrid") -> str:
    """``text`` normalised by ``mode`` (see the module docstring); ``"A dog's bark!"`` -> ``"a dogs bark"``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}: {text!r}")
    text = text.lower()
    if mode == "hybrid":
        text = _PUNCT.sub(" ", _APOSTROPHES.sub("", text))
    elif mode == "mei":
        text = _MEI_PUNCT.sub(" ", _MEI_SPACE_BEFORE.sub(r"\1", text))
    else:
        raise ValueError(f"unknown text mode {mode!r}; expected one of {TEXT_MODES}")
    return _SPACES.sub(" ", text).strip()
