"""Checking user-given values (config fields, ``--set`` overrides, notebook parameters): one rule set.

:func:`value_problem` says in words what is wrong with a value, or returns None when it is fine. Rules the
YAML/papermill world gets wrong by default: a boolean is not an integer or a number (``True == 1`` in
Python, and ``epochs: true`` must not train one epoch); NaN and infinities are named as such (``nan`` passes
every ``<``/``>`` comparison it is put through, so range checks alone let it in or blame another field).
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Sequence
from typing import Any

from hybridlib.util.filenames import NUL_REASON

KINDS = ("int", "number", "bool", "str", "list", "dict")
# the largest seed (config ``seed``/``seeds``, ``--seed``, ``--seeds``, a notebook's ``SEED``): NumPy seeds its
# generators with 32 bits, torch with 64; a larger integer would end in a traceback deep inside training
MAX_SEED = 2**32 - 1
SEED_RULE = {"minimum": 0, "maximum": MAX_SEED}

# a number as written in YAML 1.2 / JSON / Python (no hex, octal or sexagesimal): the one home of the notation
_DIGITS = r"[0-9](?:_?[0-9])*"
INT_PATTERN = re.compile(rf"^[-+]?{_DIGITS}$")
FLOAT_PATTERN = re.compile(rf"^[-+]?(?:{_DIGITS}\.(?:{_DIGITS})?|\.{_DIGITS}|{_DIGITS})(?:[eE][-+]?{_DIGITS})?$")
SPECIAL_FLOAT = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def parse_number(text: str) -> int | float | None:
    """``text`` as the number it spells, else None: the notation configs, ``--set`` and ``--params`` accept
    (:mod:`hybridlib.util.yaml_values`): ``3``, ``-2``, ``.5``, ``1e-4``, ``1E+3``, ``1_000``, ``.inf``/``.nan``
    (named and refused by the fields); not ``0x10``, ``0o17``, ``1:30``."""
    text = text.strip()
    if INT_PATTERN.match(text):
        return int(text.replace("_", ""))
    if FLOAT_PATTERN.match(text):
        return float(text.replace("_", ""))
    if SPECIAL_FLOAT.match(text):
        return float(text.lower().replace(".", ""))
    return None


ECHO_LIMIT = 80  # characters of user text an error message repeats
_REPR = reprlib.Repr()  # bounded: a few levels and items of a container (attributes: Python 3.10 has no keywords)
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 12, 12, 12, 12
_REPR.maxstring, _REPR.maxother = 60, 60


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` as a message may repeat it: itself when at most ``limit`` characters, else its beginning and its
    length (``"dog barking dog ... (100,000 characters)"``). The one rule for echoing what a user typed."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:max(limit - 24, 8)]}... ({len(text):,} characters)"


def not_utf8(text: str) -> str | None:
    """None when ``text`` can be written as UTF-8, else which bytes cannot (``"bytes b'\\xff\\xfe' at character 0"``).

    Command-line arguments (and file names) that are not UTF-8 reach Python as lone surrogates
    (``os.fsdecode``); they cannot be encoded, hashed, printed or written to JSON, so they are refused up front.
    """
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        raw = text[exc.start:exc.end].encode("utf-8", "surrogateescape")
        return f"bytes {shorten(repr(raw), 40)} at character {exc.start}"


def describe_value(value: Any, limit: int = ECHO_LIMIT) -> str:
    """``repr`` of a value, but NaN/inf spelled as such (``nan``, not a comparison puzzle), and a long value
    shortened (:func:`shorten`: a 100,000-character string is not printed back whole)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "infinity" if value > 0 else "-infinity"
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:max(limit - 24, 8)]!r}... ({len(value):,} characters)"
    if isinstance(value, (list, tuple, dict, set)):  # bounded work, even for a YAML alias bomb
        return shorten(_REPR.repr(value), limit)
    return shorten(repr(value), limit)


def value_problem(value: Any, kind: str, *, minimum: float | None = None, maximum: float | None = None,
                  exclusive_min: bool = False, allow_none: bool = False,
                  choices: Sequence | None = None, none_name: str = "null") -> str | None:
    """What is wrong with ``value`` for a field of ``kind`` (see :data:`KINDS`), or None if nothing.

    ``minimum``/``maximum`` bound numbers (``exclusive_min``: strictly above ``minimum``); ``choices``
    lists the allowed values; ``allow_none`` accepts None (an "unset" field, spelt ``none_name`` in messages:
    ``null`` in YAML, ``None`` in notebooks).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if value is None:
        return None if allow_none else f"must be set ({_expected(kind, minimum, maximum, exclusive_min)})"
    or_none = f" or {none_name}" if allow_none else ""
    if kind in ("int", "number"):
        if isinstance(value, bool):
            return f"must be {_expected(kind, minimum, maximum, exclusive_min)}{or_none}, not a boolean"
        if not isinstance(value, int if kind == "int" else (int, float)):
            return f"must be {_expected(kind, minimum, maximum, exclusive_min)}{or_none}{_number_hint(value, kind)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"is {describe_value(value)}; it must be {_expected(kind, minimum, maximum, exclusive_min)}"
        too_low = minimum is not None and (value <= minimum if exclusive_min else value < minimum)
        if too_low or (maximum is not None and value > maximum):
            return f"must be {_expected(kind, minimum, maximum, exclusive_min)}{or_none}"
    elif kind == "bool" and not isinstance(value, bool):
        return f"must be true or false{or_none}"
    elif kind == "str" and not isinstance(value, str):
        return f"must be a string{or_none}"
    elif kind == "str" and "\x00" in value:
        return NUL_REASON
    elif kind == "list" and not isinstance(value, (list, tuple)):
        return f"must be a list{or_none}"
    elif kind == "dict" and not isinstance(value, dict):
        return f"must be a mapping{or_none}"
    if choices is not None and value not in choices:
        return f"must be one of {list(choices)}"
    return None


def _number_hint(value: Any, kind: str) -> str:
    """Why a value that looks like a number is not one for this field."""
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return f"; write {int(value)}: whole numbers are written without a point or exponent"
    if isinstance(value, str) and parse_number(value) is not None:
        return (f", not the text {describe_value(value)} (a YAML 1.1 reader such as papermill's -f/-y reads "
                "1e-4 as text: write 1.0e-4 there, or use -p)")
    return ""


def _expected(kind: str, minimum, maximum, exclusive_min: bool) -> str:
    noun = {"int": "an integer", "number": "a number", "bool": "true or false", "str": "a string",
            "list": "a list", "dict": "a mapping"}[kind]
    if kind not in ("int", "number"):
        return noun
    if minimum == 0 and maximum is None:
        return f"a positive {noun.split()[-1]}" if exclusive_min else f"a non-negative {noun.split()[-1]}"
    if kind == "int" and minimum == 0 and isinstance(maximum, int) and not exclusive_min:
        return f"a non-negative integer up to {maximum}"
    if kind == "int" and minimum == 1 and maximum is None and not exclusive_min:
        return "a positive integer"
    def number(v):
        return str(v) if isinstance(v, int) else f"{v:g}"

    parts = []
    if minimum is not None:
        parts.append(f"{'>' if exclusive_min else '>='} {number(minimum)}")
    if maximum is not None:
        parts.append(f"<= {number(maximum)}")
    return noun + (" " + " and ".join(parts) if parts else "")
