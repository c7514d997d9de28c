"""The house plan: inside ``blend_modules`` imports only point down, data at the bottom, with no
cycle between subpackages or between files (read from the source, not by importing it)."""

import ast
from collections import defaultdict
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "blend_modules"
# each subpackage (or top-level module) and the ones it may import: the layers, top first
ALLOWED = {
    "study": {"analysis", "data"},  # runs the recipes' scripts, tables them
    "experiment": {"deploy", "targets", "training", "hybrid", "alignment", "models", "data"},
    "deploy": {"targets", "training", "hybrid", "alignment", "models", "data"},
    "targets": {"training", "hybrid", "alignment", "models", "data"},
    "training": {"hybrid", "alignment", "models", "data"},
    "hybrid": {"alignment", "data"},
    "alignment": {"data"},
    "models": {"data"},
    "data": set(),
    "analysis": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict:
    """Each module of the package -> the package's modules it imports (at any depth)."""
    found = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "__init__.py":
            continue  # the package's own docstring
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            ours = {name for name in names if name.startswith("blend_modules.")}
            found[module_name(path)] |= ours
    return found


def layer(module: str) -> str:
    return module.split(".")[1]


def cycle(graph: dict) -> list:
    """One cycle of ``graph`` (node -> nodes), or []."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == "open":
                return path[path.index(successor) :] + [successor]
            if successor not in state:
                found = visit(successor, path + [successor])
                if found:
                    return found
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return []


def test_every_import_points_down_a_layer():
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in imports().items()
        for target in targets
        if layer(target) != layer(module) and layer(target) not in ALLOWED[layer(module)]
    )
    assert not upward


def test_no_import_cycle_between_subpackages_or_files():
    files = imports()
    packages = defaultdict(set)
    for module, targets in files.items():
        packages[layer(module)] |= {layer(t) for t in targets if layer(t) != layer(module)}
    assert cycle(packages) == []
    assert cycle(files) == []


def test_the_check_sees_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []
