"""The package's shape: no import cycles, no module over 400 lines, a docstring on every module."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "mimic_deployment"
PACKAGE_DIR = REPO / PACKAGE
MAX_LINES = 400


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def is_type_checking_guard(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import at any depth (module level, functions, try blocks), except under `if TYPE_CHECKING:`,
    which never runs: annotation-only imports cannot form a cycle at run time."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and is_type_checking_guard(node):
            for branch in node.orelse:
                yield from import_nodes(ast.Module(body=[branch], type_ignores=[]))
        else:
            yield from import_nodes(node)


def owning_module(dotted: str) -> str | None:
    """The package module that `dotted` lives in: itself if it is a module, else its longest module prefix."""
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def imported_modules(name: str, path: Path) -> set[str]:
    """The package modules that module `name` imports, each `from pkg import x` resolved to `pkg.x`
    when `x` is a submodule (so an import of a sibling through its package is seen as such)."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(filter(None, (owning_module(alias.name) for alias in node.names)))
            continue
        if node.level:  # relative: `from . import x` inside a.b.c means a.b
            anchor = name.split(".") if is_package else name.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            target = owning_module(f"{base}.{alias.name}") if alias.name != "*" else owning_module(base)
            if target:
                targets.add(target)
    targets.discard(name)
    return targets


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(name, path) for name, path in MODULES.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle (a -> ... -> a) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm; the graph is small, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [shortest_cycle(graph, component) for component in components]


def shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest path from the component's first module back to itself (breadth first)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_the_walk_sees_the_package():
    graph = import_graph()
    assert len(MODULES) > 20 and "mimic_deployment._entry" in MODULES
    # function-level imports count: _entry imports the supervisor only inside a function
    assert "mimic_deployment.runs.supervisor" in graph["mimic_deployment._entry"]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_no_module_over_the_line_limit():
    too_long = {name: count for name, path in MODULES.items()
                if (count := len(path.read_text().splitlines())) > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{name} ({count})" for name, count in sorted(too_long.items()))


def test_every_module_has_a_docstring():
    missing = [name for name, path in MODULES.items()
               if not (ast.get_docstring(ast.parse(path.read_text())) or "").strip()]
    assert not missing, "modules without a docstring: " + ", ".join(missing)


# -- the checks themselves: each must be able to fail --

def write_package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """Point the walker at a throwaway package built by the test."""
    def build(files: dict[str, str]) -> dict[str, set[str]]:
        modules = write_package(tmp_path, files)
        monkeypatch.setitem(globals(), "MODULES", modules)  # owning_module() reads the global
        return {name: imported_modules(name, path) for name, path in modules.items()}
    return build


def test_cycle_through_a_function_level_import_is_found(toy_package):
    graph = toy_package({
        "pkg/__init__.py": '"""p."""\n',
        "pkg/a.py": '"""a."""\nfrom pkg import b\n',
        "pkg/b.py": '"""b."""\ndef f():\n    from pkg.a import thing\n',
    })
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_type_checking_imports_and_names_are_not_modules(toy_package):
    graph = toy_package({
        "pkg/__init__.py": '"""p."""\nVALUE = 1\n',
        "pkg/a.py": '"""a."""\nfrom typing import TYPE_CHECKING\nfrom pkg import VALUE\n'
                    'if TYPE_CHECKING:\n    from pkg.b import B\nelse:\n    import pkg.c\n',
        "pkg/b.py": '"""b."""\nfrom pkg.a import VALUE\n',
        "pkg/c.py": '"""c."""\nfrom . import d\nfrom .d import x\n',
        "pkg/d.py": '"""d."""\nx = 1\n',
    })
    assert graph["pkg.a"] == {"pkg", "pkg.c"}  # `VALUE` is a name of pkg; pkg.b only for the type checker
    assert graph["pkg.c"] == {"pkg.d"}  # relative imports resolve
    assert find_cycles(graph) == []


def test_a_longer_cycle_is_printed_whole(toy_package):
    graph = toy_package({
        "pkg/__init__.py": '"""p."""\n',
        "pkg/sub/__init__.py": '"""s."""\n',
        "pkg/a.py": '"""a."""\nimport pkg.sub.b\n',
        "pkg/sub/b.py": '"""b."""\nfrom ..c import f\n',
        "pkg/c.py": '"""c."""\ntry:\n    from pkg import a\nexcept ImportError:\n    pass\n',
    })
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
