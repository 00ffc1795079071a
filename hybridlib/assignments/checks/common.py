"""Helpers shared by the exercise checks: failures with a message, value comparison, small counterexamples,
blocking the reference implementations while a student's function runs, and finding Python loops."""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import textwrap
import warnings
from collections.abc import Callable, Iterable

import torch


class AnswerError(AssertionError):
    """A check failed; the message says what is wrong and, where it can, what to change."""


def fail(message: str):
    raise AnswerError(message)


def show(value, decimals: int = 4) -> str:
    """A compact one-line text of a tensor (or anything else) for messages."""
    if isinstance(value, torch.Tensor):
        v = value.detach().cpu()
        if v.dtype == torch.bool:
            v = v.int()
        elif torch.is_floating_point(v):
            v = v.double().round(decimals=decimals)
        return str(v.tolist())
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return repr(value)


def as_number(value, what: str) -> float:
    """``value`` as a float (Python/NumPy numbers and one-element tensors are accepted)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            fail(f"{what} must be a single number, got a tensor of shape {tuple(value.shape)}")
        return float(value.detach().reshape(()).item())
    try:
        return float(value)
    except (TypeError, ValueError):
        fail(f"{what} must be a number, got {type(value).__name__} {value!r}")


def as_tensor(value, what: str, shape: tuple | None = None) -> torch.Tensor:
    """``value`` must be a tensor (of ``shape`` when given)."""
    if not isinstance(value, torch.Tensor):
        fail(f"{what} must return a torch.Tensor, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        fail(f"{what} must have shape {tuple(shape)}, got {tuple(value.shape)}")
    return value


def close(a, b, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        return False
    same_inf = torch.isinf(a) & torch.isinf(b) & (torch.sign(a) == torch.sign(b))
    return bool((same_inf | torch.isclose(a, b, atol=atol, rtol=rtol, equal_nan=True)).all())


def call(fn: Callable, *args, what: str | None = None, **kwargs):
    """Call a student's function; warnings are swallowed (nbgrader scores a cell with stderr output 0) and
    a ``NotImplementedError`` becomes a plain "not implemented yet" failure."""
    name = what or getattr(fn, "__name__", "your function")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            fail(f"`{name}` is not implemented yet (it raises NotImplementedError)")
        except AnswerError:
            raise
        except Exception as exc:  # the student's code raised: report it with the input that caused it
            raise AnswerError(f"`{name}` raised {type(exc).__name__}: {exc}") from exc


def first_counterexample(make_case: Callable[[torch.Generator], tuple], agree: Callable[..., bool],
                         seed: int, tries: int = 300):
    """The first small case (from ``make_case(generator)``) on which ``agree(*case)`` is False, or None."""
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(tries):
        case = make_case(gen)
        if not agree(*case):
            return case
    return None


def _resolve(dotted: str):
    """``(owner, attribute)`` of a dotted name: a module attribute or a class attribute (``mod.Class.forward``)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1]
    raise ValueError(f"cannot resolve {dotted!r}")


@contextlib.contextmanager
def reference_blocked(student_fns: Iterable[Callable], references: Iterable[str], exercise: str):
    """While active, calling one of the ``references`` (dotted names, e.g. ``hybridlib.metrics.text_to_audio``)
    raises :class:`AnswerError`: the exercise is to write it, not to call it. Names bound in the student's
    notebook (``from hybridlib.metrics import text_to_audio``) are blocked too."""
    patches: list[tuple[object, str, object]] = []
    originals = {}
    for dotted in references:
        owner, attr = _resolve(dotted)
        # the raw attribute (a staticmethod stays a staticmethod when it is put back)
        raw = inspect.getattr_static(owner, attr) if isinstance(owner, type) else getattr(owner, attr)
        originals[dotted] = (owner, attr, raw, getattr(owner, attr))

    def blocker(dotted):
        def blocked(*args, **kwargs):
            fail(f"your {exercise} calls `{dotted}`, the package's reference implementation; write it yourself "
                 "(you may use torch and the helpers the exercise names)")
        return blocked

    for dotted, (owner, attr, raw, _) in originals.items():
        patches.append((owner, attr, raw))
        setattr(owner, attr, blocker(dotted))
    for fn in student_fns:
        namespace = getattr(fn, "__globals__", None)
        if namespace is None:
            continue
        for name, value in list(namespace.items()):
            for dotted, (_, _, _, original) in originals.items():
                if value is original:
                    patches.append((namespace, name, value))
                    namespace[name] = blocker(dotted)
    try:
        yield
    finally:
        for target, name, value in reversed(patches):
            if isinstance(target, dict):
                target[name] = value
            else:
                setattr(target, name, value)


def python_loops(fn: Callable) -> list[str] | None:
    """Python loops (``for``/``while``/comprehensions) in ``fn``'s source, or None when its source is unknown."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            found.append(f"line {node.lineno}: `{ast.unparse(node).splitlines()[0]}`")
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            found.append(f"line {node.lineno}: `{ast.unparse(node)[:60]}`")
    return found


def passed(title: str, n: int) -> None:
    print(f"passed: {title} ({n} checks)")
