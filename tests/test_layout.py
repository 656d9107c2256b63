"""The house plan: the backend's rooms stand one above the other and no import goes in a circle.

Every import counts, at a module's top, inside functions and under TYPE_CHECKING alike: a
lazy import still ties two modules together. Run alone to see the graph's state:

    .venv/bin/python -m pytest tests/test_layout.py -q
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"inknhue": ROOT / "backend" / "inknhue", "inknhue_krita": ROOT / "plugin" / "inknhue_krita"}

#: the backend's rooms, lowest first: a module may import from its own room and from lower ones
ROOMS = [
    ("base", {"inknhue", "inknhue.errors", "inknhue.defaults", "inknhue.logs"}),
    ("runtime", None),    # devices, host memory, progress counting, caches
    ("networks", None),   # the networks, one module each
    ("page", None),       # page maths: imaging, colour, detail, output, each GPU twin beside its reference
    ("weights", None),    # the weights folder, checkpoints, the hub, converters
    ("rough", None),      # the rough-colour providers
    ("engine", None),     # Engine (the stages) and its options
    ("batch", None), ("install", None), ("server", None),  # the ways in, beside each other
    ("cli", {"inknhue.cli", "inknhue.__main__"}),
]
#: rooms of one rank do not import each other
RANK = {"base": 0, "runtime": 1, "networks": 2, "page": 2, "weights": 3, "rough": 4, "engine": 5,
        "batch": 6, "install": 6, "server": 6, "cli": 7}


def modules(package: str) -> dict[str, Path]:
    found = {}
    for path in PACKAGES[package].rglob("*.py"):
        parts = [package, *path.relative_to(PACKAGES[package]).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that the module `name` imports, anywhere in its text."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from package import module` imports the module; `from module import name`, the module
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def graph(package: str) -> dict[str, set[str]]:
    found = modules(package)
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def room(module: str) -> str:
    for name, members in ROOMS:
        if members is not None and module in members:
            return name
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in RANK:
        return parts[1]
    if len(parts) == 2 and parts[1] in RANK:  # a room's own __init__
        return parts[1]
    raise AssertionError(f"{module} stands in no room of the house plan: give it one (tests/test_layout.py)")


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_module_imports_itself_in_a_circle(package):
    assert circles(graph(package)) == []


def test_every_backend_module_has_a_room():
    for module in modules("inknhue"):
        room(module)


def test_imports_run_one_way_from_the_command_line_down_to_the_base():
    upward = []
    for module, targets in graph("inknhue").items():
        for target in targets:
            here, there = room(module), room(target)
            if here != there and RANK[there] >= RANK[here]:
                upward.append(f"{module} ({here}) imports {target} ({there})")
    assert upward == []


def test_the_checker_finds_a_circle_and_an_upward_import():
    """The checks above can fail: a circle of three and a lone pair are found, a chain is not."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}) == [
        ["a", "b", "c"], ["d", "e"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert RANK[room("inknhue.engine.pipeline")] > RANK[room("inknhue.page.output")]


def test_the_plugin_holds_no_backend_import():
    """The plugin runs in Krita's Python: nothing of the backend (nor numpy, torch) goes in."""
    for name, path in modules("inknhue_krita").items():
        assert not imports(name, path, set(modules("inknhue"))), name


def test_every_room_is_a_package_that_the_install_finds():
    """pyproject's package discovery takes only folders with an __init__.py: a room without one
    would work from a checkout and be missing from an installed backend."""
    for root in PACKAGES.values():
        for folder in {p.parent for p in root.rglob("*.py")} - {root}:
            assert (folder / "__init__.py").is_file(), f"{folder.relative_to(ROOT)} has no __init__.py"
