"""The package's shape: no import cycle, dependencies point one way through the layers, no private name used
across modules. Imports inside functions count too: a lazy import is still a dependency."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from hybridlib.paths import project_root

ROOT = project_root()
PACKAGE = ROOT / "hybridlib"
# lowest first; a module may import from its own layer or any layer below, never above
LAYERS = [
    ("util", ["hybridlib.util", "hybridlib.paths", "hybridlib.bundled"]),
    ("math", ["hybridlib.metrics", "hybridlib.losses"]),
    ("data", ["hybridlib.data"]),
    ("config", ["hybridlib.models.config", "hybridlib.config", "hybridlib.paper"]),  # paper: the papers' data
    ("encoders", ["hybridlib.models.audio", "hybridlib.models.text"]),
    ("features", ["hybridlib.features"]),
    ("models", ["hybridlib.models"]),
    ("runs", ["hybridlib.runs"]),
    ("evaluation", ["hybridlib.evaluation", "hybridlib.search"]),
    ("training", ["hybridlib.training"]),
    ("experiments", ["hybridlib.experiments"]),
    ("leaves", ["hybridlib.viz", "hybridlib.nbutils", "hybridlib.runner",
                "hybridlib.notebook_parameters", "hybridlib.notebook_html", "hybridlib.results_table",
                "hybridlib.toy_embeddings", "hybridlib.info", "hybridlib.notebook_format", "hybridlib.assignments",
                "hybridlib.search_widget", "hybridlib.reproduce", "hybridlib.gpu_plan"]),
    ("cli", ["hybridlib.cli", "hybridlib.__main__", "hybridlib"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_architecture.py")
    return best


def resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not MODULES[module].name == "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every import in ``module``'s source."""
    tree = ast.parse(MODULES[module].read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names if alias.name.startswith("hybridlib")]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            if not target.startswith("hybridlib"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub, None, node.lineno) if sub in MODULES else (target, alias.name, node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in imports_of(m) if t in MODULES and t != m} for m in MODULES}


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module are the import cycles."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def test_no_import_cycles():
    cycles = strongly_connected(graph())
    assert not cycles, f"import cycles: {cycles}"


def test_dependencies_point_down_the_layers():
    upward = []
    for module in MODULES:
        for target, _, line in imports_of(module):
            if target in MODULES and layer_of(target) > layer_of(module):
                upward.append(f"{module}:{line} imports {target} "
                              f"({LAYERS[layer_of(module)][0]} -> {LAYERS[layer_of(target)][0]})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def _sources():
    for module, path in MODULES.items():
        yield module, path, ast.parse(path.read_text())
    for path in sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("notebooks/**/*.ipynb")]):
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
            code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
            yield str(path.relative_to(ROOT)), path, ast.parse(code)
        else:
            yield str(path.relative_to(ROOT)), path, ast.parse(path.read_text())


def test_no_private_names_used_across_modules():
    found = []
    for where, _, tree in _sources():
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hybridlib"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{where}:{node.lineno} imports {node.module}.{alias.name}")
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("hybridlib"):
                        aliases[alias.asname or alias.name.split(".")[0]] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and aliases.get(node.value.id, "") in MODULES):
                found.append(f"{where}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not found, "private names used across modules:\n" + "\n".join(found)


@pytest.mark.parametrize("bad", ["cycle", "upward"])
def test_the_checks_can_fail(bad):
    """The checks themselves find a planted cycle and a planted upward import."""
    g = graph()
    if bad == "cycle":
        g["hybridlib.util.files"] = g["hybridlib.util.files"] | {"hybridlib.runs"}
        assert strongly_connected(g)
    else:
        assert layer_of("hybridlib.util.files") < layer_of("hybridlib.training.loop")


def test_tests_use_a_private_data_folder():
    """The session fixture (tests/conftest.py) moved data and cache away from the user's folders."""
    from hybridlib import paths

    assert paths.data_dir() != ROOT / "data" and not str(paths.cache_dir()).startswith(str(ROOT / "data"))


# module imported -> the distribution that provides it (where the names differ)
DISTRIBUTIONS = {"yaml": "pyyaml", "torch": "torch", "PIL": "pillow"}
STDLIB_EXTRA = {"__future__"}


def test_pyproject_lists_exactly_what_the_package_imports():
    import re
    import sys

    imported = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported - set(sys.stdlib_module_names) - STDLIB_EXTRA if m != "hybridlib"}
    if any("torch.utils.tensorboard" in p.read_text() for p in MODULES.values()):
        third_party.add("tensorboard")  # torch's SummaryWriter imports the tensorboard distribution
    wanted = {DISTRIBUTIONS.get(m, m).lower().replace("_", "-") for m in third_party}
    block = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M).group(1)
    declared = re.findall(r'"([A-Za-z0-9_.-]+)', block)
    names = {d.lower().replace("_", "-") for d in declared}
    assert names == wanted, f"missing from pyproject: {sorted(wanted - names)}; not imported: {sorted(names - wanted)}"
