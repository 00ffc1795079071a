"""Notebook parameters: the one cell tagged ``parameters``, read without running it; names and values checked.

Each notebook calls :func:`check_parameters` (``check_parameters(globals(), "<notebook>")``) in the first code
cell after its parameters (and after the cell papermill injects): a misspelt name or a value that cannot work
stops the notebook at once with one line, before anything runs.


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

Values: :data:`PARAMETER_RULES` (by parameter name, shared by every notebook) and
:func:`check_parameter_values` (booleans are not integers, NaN is named, seeds are non-negative, folders exist).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridlib.util.errors import UserError
from hybridlib.util.filenames import NUL_REASON
from hybridlib.util.values import SEED_RULE, describe_value, value_problem

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


class ParameterError(UserError):
    """A notebook parameter has a value it cannot take; the message names the parameter (one line)."""


def _rule(kind: str, **rule) -> dict:
    return {"kind": kind, **rule}


_COUNT = _rule("int", minimum=1)
_MAYBE_COUNT = _rule("int", minimum=1, allow_none=True)
_NAME = _rule("str")
_NAMES = _rule("list", items=_rule("str"), nonempty=True)
_FOLDER = _rule("path", allow_none=True, exists=True)
_FRACTIONS = _rule("list", items=_rule("number", minimum=0, maximum=1), nonempty=True)

# parameter -> rule: kind (see hybridlib.util.values.KINDS, plus "path"), value_problem's options, and for lists
# "items" (a rule for each element) and "nonempty"; "exists" for paths; "choices_from" names a package constant.
PARAMETER_RULES: dict[str, dict] = {
    "SMOKE": _rule("bool"), "COMPARE": _rule("bool"),
    "SEED": _rule("int", **SEED_RULE), "OUT_DIR": _rule("path", allow_none=True),
    "DATA": {**_FOLDER, "teaching_default": True}, "CLOTHO_ROOT": _FOLDER, "CHECKPOINT": _FOLDER,
    "DATASET": _rule("str", choices_from="hybridlib.data.detect.NAMES", allow_none=True),
    "EPOCHS": _MAYBE_COUNT, "BATCH_SIZE": _rule("int", minimum=2, allow_none=True),
    "POOL_EPOCHS": _COUNT, "POOL_CLIPS": _COUNT, "N_EXAMPLES": _COUNT, "N_SEEDS": _COUNT, "LOSS_SEEDS": _COUNT,
    "N_TRAIN": _COUNT, "N_TEST": _COUNT, "PLAYER_RATE": _COUNT, "D_MODEL": _COUNT,
    "REAL_CLIPS": _rule("int", minimum=0), "COMPARE_D_MODEL": _MAYBE_COUNT, "COMPARE_LAYERS": _MAYBE_COUNT,
    "WORKERS": _MAYBE_COUNT,
    "LR": _rule("number", minimum=0, exclusive_min=True, allow_none=True),
    "MARGIN": _rule("number", minimum=0), "TAU": _rule("number", minimum=0, exclusive_min=True),
    "OFFSET": _rule("number", minimum=0),
    "BATCH_SIZES": _rule("list", items=_rule("int", minimum=2), nonempty=True),
    "LOSS_BATCH_SIZES": _rule("list", items=_rule("int", minimum=2), nonempty=True),
    "STRENGTHS": _FRACTIONS, "SWEEP_REMOVE": _FRACTIONS, "SWEEP_DROP_TAGS": _rule("list", items=_rule(
        "number", minimum=0, maximum=1)),
    "BACKBONE": _NAME, "TEXT_ENCODER": _NAME, "BASELINE": _NAME, "HYBRID": _NAME,
    "METADATA_KIND": _rule("str", choices_from="hybridlib.models.config.METADATA_KINDS"),
    "SPLIT": _rule("str", choices=("development", "validation", "evaluation")),
    "COLLECTION": _rule("str", choices=("development", "validation", "evaluation"), allow_none=True),
    "RUN": _FOLDER, "CONFIG": _NAME, "QUERY": _NAME, "K": _COUNT,
    "CONFIGS": _NAMES, "FS_CONFIGS": _rule("list", items=_rule("str")), "LOSS_CONFIGS": _rule("list", items=_rule("str")),
    "SHARING_CONFIGS": _rule("list", items=_rule("str")), "GENERATED_CONFIGS": _rule("list", items=_rule("str")),
    "FUSIONS": _rule("list", items=_rule("str", choices_from="hybridlib.models.config.FUSIONS"), nonempty=True),
    "LOSSES": _rule("list", items=_rule("str", choices_from="hybridlib.losses.LOSSES"), nonempty=True),
    "DEVICE": _NAME, "SCALE": _rule("str", choices=("teaching", "miniature"), allow_none=True),
    "FROZEN": _NAME, "FINETUNED": _NAME, "TRAIN_CLIPS": _MAYBE_COUNT, "EVAL_CLIPS": _MAYBE_COUNT,
    "TIMED_STEPS": _MAYBE_COUNT, "PROCESSES": _rule("int", minimum=2),
    "CROP_SECONDS": _rule("number", minimum=0, exclusive_min=True, allow_none=True),
    "WORKER_COUNTS": _rule("list", items=_rule("int", minimum=0), nonempty=True),
    "PRECISIONS": _rule("list", items=_rule("str", choices_from="hybridlib.training.performance.PRECISIONS"),
                        nonempty=True, allow_none=True),
    "CARD_GB": _rule("list", items=_rule("number", minimum=0, exclusive_min=True), nonempty=True),
    "SWEEP_POLICIES": _rule("list", items=_rule("str", choices_from="hybridlib.models.config.MISSING_METADATA_MODES"),
                            nonempty=True),
}


def parameter_problem(name: str, value: Any, values: dict | None = None) -> str | None:
    """What is wrong with ``value`` for parameter ``name`` (None: fine, or no rule for that name)."""
    rule = PARAMETER_RULES.get(name)
    return None if rule is None else _check(value, rule, values or {})


def _check(value: Any, rule: dict, values: dict) -> str | None:
    kind = rule["kind"]
    if kind == "path":
        if value is None:
            return None if rule.get("allow_none") else "must be a path"
        if not isinstance(value, (str, Path)) or not str(value):
            return "must be a path (a string) or None" if rule.get("allow_none") else "must be a path (a string)"
        if "\x00" in str(value):
            return NUL_REASON
        if rule.get("exists") and not Path(value).exists():
            if rule.get("teaching_default"):
                from hybridlib.paths import teaching_dir

                if Path(value).resolve() == teaching_dir(bool(values.get("SMOKE"))).resolve():
                    return None  # the teaching set's own folder: generated there
            return "is a path that does not exist"
        return None
    choices = rule.get("choices")
    if "choices_from" in rule:
        import importlib

        module, attr = rule["choices_from"].rsplit(".", 1)
        choices = tuple(getattr(importlib.import_module(module), attr))
    options = {k: rule[k] for k in ("minimum", "maximum", "exclusive_min", "allow_none") if k in rule}
    problem = value_problem(value, kind, choices=choices if kind != "list" else None, none_name="None", **options)
    if problem or kind != "list" or value is None:
        return problem
    if rule.get("nonempty") and not value:
        return "must not be empty"
    for i, element in enumerate(value):
        problem = _check(element, rule["items"], values)
        if problem:
            return f"item {i} {problem} (got {describe_value(element)})"
    return None


def check_parameter_values(values: dict) -> None:
    """Refuse notebook parameter values that should not pass, all in one line (:class:`ParameterError`).

    ``values``: the notebook's ``globals()`` (or any mapping of parameter names to values); every name with
    a rule in :data:`PARAMETER_RULES` is checked (booleans are not integers, NaN is named, seeds are
    non-negative, folders must exist - the teaching set's default folder excepted, it is generated).
    """
    __tracebackhide__ = True  # IPython: show the message, not this function's frame
    problems = []
    for name in PARAMETER_RULES:
        if name in values:
            problem = parameter_problem(name, values[name], values)
            if problem:
                problems.append(f"{name}: {problem} (got {describe_value(values[name])})")
    if problems:
        raise ParameterError("; ".join(problems))


def check_parameters(namespace: Mapping, notebook: str) -> None:
    """In a notebook: :func:`check_parameter_names` (papermill's injected names), then
    :func:`check_parameter_values` (every value with a rule); each raises a one-line :class:`UserError`."""
    __tracebackhide__ = True  # IPython: show the message, not this function's frame
    check_parameter_names(namespace, notebook)
    check_parameter_values(namespace)
