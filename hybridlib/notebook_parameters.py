"""Notebook parameters: the one cell tagged ``parameters``, read without running it, and names checked.

Every notebook of the series has one code cell tagged ``parameters`` holding ``NAME = value  # comment`` lines
(UPPER_CASE names). papermill runs a notebook with other values by inserting a cell of assignments after it.
Two ways a parameter used to vanish without a word, both closed here:

* papermill never checks the names it injects: ``-p EPOCH 3`` defines ``EPOCH`` next to ``EPOCHS`` and the
  notebook runs with its default. :func:`check_parameter_names`, called by each notebook in the first cell
  after its parameters, finds the injected cell in the kernel's input history and raises
  :class:`ParameterNameError` for a name the notebook does not declare (plain papermill runs and
  ``run-notebooks`` alike). ``run-notebooks`` checks the names before it starts any kernel
  (:func:`check_names`).
* papermill's own reader of the parameters cell (``papermill.inspect_notebook``) skips a line with more than
  one ``=`` (a comment such as ``# os = open-set``), with a logged warning; code that filtered parameters by
  that list dropped the value silently. :func:`declared_parameters` reads the cell with Python's parser
  instead, and :func:`format_problems` names the lines papermill cannot read, so the committed notebooks
  keep a format both understand (``tests/test_notebooks.py`` checks it).

Values (types, ranges, NaN) are checked by :func:`hybridlib.nbutils.check_parameter_values` (issue 11); this
module only knows names.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hybridlib.util.errors import UserError

PARAMETERS_TAG = "parameters"
# papermill starts the cell it injects with this comment (papermill.translators.PythonTranslator.codify)
INJECTED_HEADER = "# Parameters"


class ParameterNameError(UserError):
    """A parameter name the notebook does not declare, or a parameters cell that cannot be read."""


@dataclass(frozen=True)
class Parameter:
    name: str
    default: object  # the literal value, or the source text when the value is not a literal
    line: int        # 1-based first line of the assignment in the cell
    end_line: int    # its last line (the same unless the value spans lines)
    comment: str     # the help text after '#', if any


def parameters_source(notebook: str | Path | Mapping) -> str:
    """The source of the notebook's cell tagged ``parameters`` (a path or an already loaded notebook)."""
    if isinstance(notebook, Mapping):
        nb, where = notebook, "notebook"
    else:
        import nbformat

        path = Path(notebook)
        if not path.is_file():
            raise ParameterNameError(f"notebook not found: {path}")
        nb, where = nbformat.read(str(path), as_version=4), path.name
    cells = [c for c in nb["cells"] if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterNameError(f"{where}: expected exactly one cell tagged {PARAMETERS_TAG!r}, found {len(cells)}")
    source = cells[0]["source"]
    return "".join(source) if isinstance(source, list) else source


def declared_parameters(source: str, where: str = "parameters cell") -> dict[str, Parameter]:
    """The ``NAME = value`` assignments of a parameters cell, in order (read with Python's parser)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterNameError(f"{where}: not valid Python (line {exc.lineno}: {exc.msg})") from exc
    lines = source.splitlines()
    found: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            raise ParameterNameError(f"{where}: line {node.lineno} is not a `NAME = value` assignment")
        try:
            default = ast.literal_eval(value)
        except ValueError:
            default = ast.get_source_segment(source, value)
        rest = lines[node.end_lineno - 1][value.end_col_offset:]
        comment = rest.split("#", 1)[1].strip() if "#" in rest else ""
        for target in targets:
            if not isinstance(target, ast.Name):
                raise ParameterNameError(f"{where}: line {node.lineno} assigns to something other than a name")
            found[target.id] = Parameter(target.id, default, node.lineno, node.end_lineno, comment)
    return found


def notebook_parameters(notebook: str | Path | Mapping) -> dict[str, Parameter]:
    """What :func:`declared_parameters` finds in a notebook file's parameters cell."""
    where = Path(notebook).name if not isinstance(notebook, Mapping) else "notebook"
    return declared_parameters(parameters_source(notebook), where)


def format_problems(source: str, where: str = "parameters cell") -> list[str]:
    """Lines of a parameters cell that papermill's reader skips (more than one ``=`` on a line), and
    assignments that span several lines. Empty when both readers agree on every parameter."""
    problems = []
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and line.count("=") > 1:
            problems.append(f"{where}, line {number}: `{stripped}` has more than one '=' (papermill cannot read "
                            "the line; keep '=' out of values and comments)")
    for param in declared_parameters(source, where).values():
        if param.end_line != param.line:
            problems.append(f"{where}: {param.name} spans lines {param.line}-{param.end_line} (keep each "
                            "parameter on one line)")
    return problems


def unknown_names(names, declared: Mapping[str, Parameter]) -> list[str]:
    return sorted(set(names) - set(declared))


def _unknown_message(notebook: str, unknown: list[str], declared: Mapping[str, Parameter]) -> str:
    import difflib

    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), list(declared), n=1)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    noun = "parameter" if len(unknown) == 1 else "parameters"
    return (f"{notebook}: unknown {noun} {', '.join(hints)}; this notebook's parameters are "
            f"{', '.join(declared)}")


def check_names(notebook: str | Path, names) -> None:
    """Raise :class:`ParameterNameError` naming the notebook and every name it does not declare."""
    declared = notebook_parameters(notebook)
    unknown = unknown_names(names, declared)
    if unknown:
        raise ParameterNameError(_unknown_message(Path(notebook).stem, unknown, declared))


def check_parameter_names(namespace: Mapping, notebook: str) -> None:
    """In a notebook: fail when papermill injected a name that the parameters cell does not declare.

    ``namespace`` is the notebook's ``globals()``. The check reads IPython's input history (``In``): the cell
    papermill injected (it starts with ``# Parameters``) and the cell executed just before it, the notebook's
    own parameters cell. Without an injected cell (JupyterLab, a plain run) there is nothing to check.
    """
    history = namespace.get("In") or namespace.get("_ih") or []
    for index in range(len(history) - 1, 0, -1):
        if history[index].lstrip().startswith(INJECTED_HEADER):
            break
    else:
        return
    try:
        declared = declared_parameters(history[index - 1])
        injected = declared_parameters(history[index], "injected parameters")
    except ParameterNameError:
        return  # cells were run out of order by hand: the cell before is not the parameters cell
    unknown = unknown_names(injected, declared)
    if unknown:
        raise ParameterNameError(_unknown_message(notebook, unknown, declared))
