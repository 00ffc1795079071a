"""Small helpers every notebook uses: parameter checks, an output folder, ``results.json`` and saved figures.

The notebooks' ``parameters`` cell sets ``OUT_DIR``; the runner (:mod:`hybridlib.runner`) points it at
``runs/<timestamp>/<notebook>/``. Run interactively with ``OUT_DIR = None``, outputs go to
``runs/interactive/<notebook>/``.

Parameter values: the first code cell after ``parameters`` (and after the cell papermill injects) calls
:func:`check_parameter_values` on the notebook's globals, so ``-p SEED -3`` or ``-p EPOCHS abc`` stop the
notebook at once with one line naming the parameter, before anything runs. The rules are
:data:`PARAMETER_RULES` (by name, shared by every notebook; names without a rule are not checked here -
unknown or misspelt names are another check's business).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hybridlib.paths import runs_dir
from hybridlib.util.errors import UserError
from hybridlib.util.files import atomic_write_text
from hybridlib.util.values import describe_value, value_problem


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
    "SEED": _rule("int", minimum=0), "OUT_DIR": _rule("path", allow_none=True),
    "DATA": {**_FOLDER, "teaching_default": True}, "CLOTHO_ROOT": _FOLDER, "CHECKPOINT": _FOLDER,
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
    "CONFIGS": _NAMES, "FS_CONFIGS": _rule("list", items=_rule("str")), "LOSS_CONFIGS": _rule("list", items=_rule("str")),
    "FUSIONS": _rule("list", items=_rule("str", choices_from="hybridlib.models.config.FUSIONS"), nonempty=True),
    "LOSSES": _rule("list", items=_rule("str", choices_from="hybridlib.losses.LOSSES"), nonempty=True),
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


def prepare_out_dir(out_dir: str | Path | None, notebook: str) -> Path:
    """Create and return the notebook's output folder; a ``results.json`` left by an earlier run is removed,
    so the file only ever holds what this run saved."""
    path = Path(out_dir) if out_dir else runs_dir() / "interactive" / notebook
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").unlink(missing_ok=True)
    return path


def to_jsonable(value: Any) -> Any:
    """Turn tensors, numpy values, paths and dataclasses into plain JSON values (NaN becomes null)."""
    if hasattr(value, "tolist") and callable(value.tolist):  # torch / numpy arrays and scalars
        return to_jsonable(value.tolist())
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_results(out_dir: str | Path, results: dict | None = None, **more: Any) -> Path:
    """Merge ``results`` (and keyword values) into ``<out_dir>/results.json`` (started afresh by
    :func:`prepare_out_dir` each run); return its path."""
    path = Path(out_dir) / "results.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(to_jsonable({**(results or {}), **more}))
    return atomic_write_text(path, json.dumps(current, indent=2, sort_keys=True))


def save_figure(fig, out_dir: str | Path, name: str, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``<out_dir>/<name>.png`` and return the path."""
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
