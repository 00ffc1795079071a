"""The one YAML reader for what users write: config files, ``--set key=value`` and ``--params`` files.

PyYAML's ``safe_load`` follows YAML 1.1, which people do not write and which surprises them:

* ``1e-4`` is a *string* (1.1 wants a dot and a signed exponent: ``1.0e-4``), so ``lr: 1e-4`` was refused as
  "must be a positive number (got '1e-4')". Here numbers are read as YAML 1.2 and JSON read them, plus what
  Python accepts in a literal: ``3``, ``-2``, ``0.5``, ``.5``, ``5.``, ``1e-4``, ``1E-4``, ``1e+3``, ``-2e-5``,
  digit groups ``1_000`` / ``2_000.5``; ``.inf`` / ``.nan`` stay numbers so a field names them (and refuses
  them). Hexadecimal, octal, binary and sexagesimal integers (``0x10``, ``0o17``, ``0b1``, ``1:30``; 1.1 read
  ``017`` as octal 15) are text here (``017`` is 17): a numeric field refuses them, naming the text.
* An integer field takes integers only: ``epochs: 1e2`` is the number 100.0, which a field of whole numbers
  refuses (:func:`hybridlib.util.values.value_problem` says so): write ``100``.
* Dates (``2024-01-01``) stay text; a config holds no timestamps.
* Only plain values are built: null, booleans, numbers, strings, lists and mappings. Any other tag
  (``!!python/object/apply:...``, ``!!binary``, ``!!set``, ``!!omap``, ``!!timestamp``, custom ``!foo``) is
  refused in one line naming where it was written; ``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
  ``!!seq`` and ``!!map`` are allowed (``!!str 5`` is the text "5").

A file or value that is not YAML at all is refused in one line naming it and the place (line and column).
"""

from __future__ import annotations

import re
from typing import Any

from hybridlib.util.errors import UserError
from hybridlib.util.values import FLOAT_PATTERN, INT_PATTERN, SPECIAL_FLOAT, parse_number, shorten

PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "seq", "map"))


def _plain_resolvers(cls) -> None:
    """Replace YAML 1.1's int, float and timestamp resolvers of ``cls`` by the number notation above (a loader
    reads with them; a dumper quotes a string they would read as a number, so ``name: "1e5"`` reads back)."""
    import yaml

    cls.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    first = list("-+0123456789.")
    cls.add_implicit_resolver("tag:yaml.org,2002:int", INT_PATTERN, first)  # tried first: "3" is an integer
    cls.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
        rf"^(?:{FLOAT_PATTERN.pattern[1:-1]}|{SPECIAL_FLOAT.pattern[1:-1]})$"), first)


def dump_yaml(value: Any) -> str:
    """``value`` (plain values) as YAML that :func:`read_yaml` reads back equal (keys in their order)."""
    import yaml

    class PlainDumper(yaml.SafeDumper):
        """SafeDumper quoting every string the reader would take for a number."""

    _plain_resolvers(PlainDumper)
    return yaml.dump(value, Dumper=PlainDumper, sort_keys=False)


def _loader():
    import yaml

    class PlainLoader(yaml.SafeLoader):
        """SafeLoader with YAML 1.2 numbers, no timestamps and nothing but plain values (see the module)."""

    _plain_resolvers(PlainLoader)

    def construct_int(loader, node):
        value = parse_number(loader.construct_scalar(node))
        if not isinstance(value, int):
            raise yaml.constructor.ConstructorError(None, None, f"!!int {node.value!r} is not an integer",
                                                    node.start_mark)
        return value

    def construct_float(loader, node):
        value = parse_number(loader.construct_scalar(node))
        if value is None:
            raise yaml.constructor.ConstructorError(None, None, f"!!float {node.value!r} is not a number",
                                                    node.start_mark)
        return float(value)

    def refuse(loader, node):
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        mark = node.start_mark
        raise yaml.constructor.ConstructorError(
            None, None, f"the tag {shorten(tag, 60)} (line {mark.line + 1}, column {mark.column + 1}) is refused: "
            "only plain values are read (numbers, text, true/false, null, lists, mappings), nothing is constructed "
            "or run")

    PlainLoader.yaml_constructors = {tag: c for tag, c in yaml.SafeLoader.yaml_constructors.items()
                                     if tag in PLAIN_TAGS}
    PlainLoader.add_constructor("tag:yaml.org,2002:int", construct_int)
    PlainLoader.add_constructor("tag:yaml.org,2002:float", construct_float)
    PlainLoader.add_constructor(None, refuse)
    return PlainLoader


_LOADER = None


def read_yaml(text: str, where: str) -> Any:
    """The plain value ``text`` holds (see the module docstring); :class:`UserError` naming ``where`` otherwise.

    ``where`` names the source in the message: a file path, or ``--set lr=...``.
    """
    import yaml

    global _LOADER
    if _LOADER is None:
        _LOADER = _loader()
    try:
        value = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader subclass that builds plain values only
        if _expanded_size(value, {}) > MAX_VALUES:  # aliases of aliases: a few lines naming billions of values
            raise UserError(f"{where}: holds more than {MAX_VALUES:,} values once its aliases (*name) are expanded "
                            "(or an alias inside the value it names)")
        return value
    except yaml.constructor.ConstructorError as exc:  # valid YAML, but not a plain value
        raise UserError(f"{where}: {yaml_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{where}: not valid YAML ({yaml_problem(exc)})") from None
    except RecursionError:  # thousands of nested brackets
        raise UserError(f"{where}: nested too deeply to be a config value") from None


MAX_VALUES = 1_000_000


def _expanded_size(value: Any, memo: dict) -> int:
    """How many values ``value`` holds with every shared (aliased) part counted each time it is used."""
    if not isinstance(value, (list, dict)):
        return 1
    if memo.get(id(value)) == -1:  # an alias inside what it names (&a [*a]): endless once expanded
        return MAX_VALUES + 1
    if id(value) not in memo:
        memo[id(value)] = -1
        children = value.values() if isinstance(value, dict) else value
        memo[id(value)] = min(1 + sum(_expanded_size(v, memo) for v in children), MAX_VALUES + 1)
    return memo[id(value)]


def yaml_problem(exc: Exception) -> str:
    """One line from a PyYAML error: what is wrong and where (line, column), without the quoted snippet."""
    problem = getattr(exc, "problem", None)
    if problem is None:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    text = f"{context}: {problem}" if context else str(problem)
    if mark is not None:
        text += f" at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(text.split())
