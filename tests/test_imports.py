"""The package's import graph: no circles, and models/ knows no data source.

The graph is read from the source with :mod:`ast` (nothing is imported). A node is a module of
``src/seqforecast``; a package's ``__init__.py`` is its own node (``seqforecast.models``). An
edge is an ``import seqforecast...`` or ``from seqforecast... import ...`` (or its relative
form): ``from seqforecast.models import init`` points at the submodule ``seqforecast.models.init``,
``from seqforecast.models import NETS`` at the package. The parent packages that Python runs
before a submodule are not edges (every submodule would otherwise close a circle with its
``__init__``).

Two graphs are checked: the module-level imports (what runs on import) and all imports,
those inside functions included (a deferred import is still a dependency of the code, only a
later one). Both must have no circle. Imports under ``if TYPE_CHECKING:`` never run (a type
hint of the caller's class, as ``predict.tables`` takes a ``Forecaster``) and are not edges
of either; ``python tests/test_imports.py`` prints the circles of all three views.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "seqforecast"


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    names = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """Each import statement and where it sits: ``module`` (runs on import), ``function``
    (runs when the function does) or ``typing`` (under ``if TYPE_CHECKING:``, never runs)."""
    found = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit_statement(stmt, "typing")
                for stmt in child.orelse:
                    visit_statement(stmt, kind)
                continue
            visit_statement(child, kind)

    def visit_statement(child: ast.AST, kind: str) -> None:
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.append((child, kind))
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            visit(child, "function" if kind == "module" else kind)
        else:
            visit(child, kind)

    visit(tree, "module")
    return found


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` stands for: itself, or its nearest enclosing module of the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(*kinds: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports by the imports of ``kinds`` (``module``,
    ``function``, ``typing``: see :func:`_imports`)."""
    modules = module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, kind in _imports(ast.parse(path.read_text(), str(path))):
            if kind not in kinds:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from .x import y, from .. import y
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                found = _target(target, modules) if target.startswith(PACKAGE + ".") else None
                if found and found != name:
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    """One circle's modules and the edges between them."""
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return f"{len(component)} modules: " + "; ".join(edges)


def test_the_graph_reads_the_package() -> None:
    graph = import_graph("module", "function")
    assert "seqforecast.models" in graph and "seqforecast.rules" in graph
    # known edges: a module-level import, a package's submodule, one inside a function
    assert "seqforecast.errors" in graph["seqforecast.rules"]
    assert "seqforecast.models.recurrent" in graph["seqforecast.models"]
    assert "seqforecast.config" in graph["seqforecast.auto"]
    assert "seqforecast.config" not in import_graph("module")["seqforecast.auto"]


def test_the_cycle_finder_finds_a_circle_and_only_it() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_type_checking_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from . import x\n"
        "if TYPE_CHECKING:\n    from seqforecast import hidden\n"
        "def f():\n    import seqforecast.late\n"
    )
    seen = [(ast.unparse(node), kind) for node, kind in _imports(tree)]
    assert seen == [
        ("from typing import TYPE_CHECKING", "module"),
        ("from . import x", "module"),
        ("from seqforecast import hidden", "typing"),
        ("import seqforecast.late", "function"),
    ]


def test_no_import_circle_at_module_level() -> None:
    graph = import_graph("module")
    assert [describe(graph, c) for c in cycles(graph)] == []


def test_no_import_circle_counting_imports_inside_functions() -> None:
    graph = import_graph("module", "function")
    assert [describe(graph, c) for c in cycles(graph)] == []


def test_models_import_nothing_from_data() -> None:
    graph = import_graph("module", "function")
    edges = [
        f"{a} -> {b}"
        for a, targets in graph.items()
        if a == "seqforecast.models" or a.startswith("seqforecast.models.")
        for b in sorted(targets)
        if b == "seqforecast.data" or b.startswith("seqforecast.data.")
    ]
    assert edges == []


VIEWS = {
    "module-level imports": ("module",),
    "imports inside functions too": ("module", "function"),
    "TYPE_CHECKING imports too": ("module", "function", "typing"),
}

if __name__ == "__main__":
    for view, kinds in VIEWS.items():
        graph = import_graph(*kinds)
        found = cycles(graph)
        print(f"{view}: {len(found)} circle(s)")
        for component in found:
            print("  " + describe(graph, component))
