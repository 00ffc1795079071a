"""Checking user-given values (config fields, ``--set`` overrides, notebook parameters): one rule set.

:func:`value_problem` says in words what is wrong with a value, or returns None when it is fine. Rules the
YAML/papermill world gets wrong by default: a boolean is not an integer or a number (``True == 1`` in
Python, and ``epochs: true`` must not train one epoch); NaN and infinities are named as such (``nan`` passes
every ``<``/``>`` comparison it is put through, so range checks alone let it in or blame another field).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

KINDS = ("int", "number", "bool", "str", "list", "dict")
# the largest seed (config ``seed``/``seeds``, ``--seed``, ``--seeds``, a notebook's ``SEED``): NumPy seeds its
# generators with 32 bits, torch with 64; a larger integer would end in a traceback deep inside training
MAX_SEED = 2**32 - 1
SEED_RULE = {"minimum": 0, "maximum": MAX_SEED}


def describe_value(value: Any) -> str:
    """``repr`` of a value, but NaN/inf spelled as such (``nan``, not a comparison puzzle)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "infinity" if value > 0 else "-infinity"
    return repr(value)


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
            return f"must be {_expected(kind, minimum, maximum, exclusive_min)}{or_none}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"is {describe_value(value)}; it must be {_expected(kind, minimum, maximum, exclusive_min)}"
        too_low = minimum is not None and (value <= minimum if exclusive_min else value < minimum)
        if too_low or (maximum is not None and value > maximum):
            return f"must be {_expected(kind, minimum, maximum, exclusive_min)}{or_none}"
    elif kind == "bool" and not isinstance(value, bool):
        return f"must be true or false{or_none}"
    elif kind == "str" and not isinstance(value, str):
        return f"must be a string{or_none}"
    elif kind == "list" and not isinstance(value, (list, tuple)):
        return f"must be a list{or_none}"
    elif kind == "dict" and not isinstance(value, dict):
        return f"must be a mapping{or_none}"
    if choices is not None and value not in choices:
        return f"must be one of {list(choices)}"
    return None


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
