"""The package layering of DESIGN.md, read from the source: no import cycle between the
subpackages of ``monitor`` (or of ``exporters``), nothing below the faces imports a face,
``exporters`` never imports ``monitor``, and the lab imports nothing else of mailprobe's.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a
lazy import still ties the packages together, it only hides the tie until run time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("monitor", "exporters")
FACES = frozenset({"monitor.commands", "monitor.server", "monitor.cli", "monitor.__main__"})
"""The user-facing layer: ``mailprobe``'s subcommands, the HTTP server and the CLI entry."""

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> Iterator[str]:
    """Every module name ``path`` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # ``from monitor import commands`` imports the subpackage itself
            yield from (f"{base}.{alias.name}" for alias in node.names)


def unit(module: str) -> str | None:
    """The layer unit a module belongs to: ``monitor.<sub>`` / ``exporters.<sub>``."""
    parts = module.split(".")
    if parts[0] not in PACKAGES or len(parts) < 2:
        return None
    candidate = ".".join(parts[:2])
    as_dir = ROOT / parts[0] / parts[1]
    as_file = as_dir.with_suffix(".py")
    return candidate if as_dir.is_dir() or as_file.is_file() else None


def unit_graph() -> Graph:
    """unit -> the other units it imports, over every module of both packages."""
    graph: Graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = unit(module_name(path))
            if source is None:
                continue
            edges = graph.setdefault(source, set())
            for target in map(unit, imported(path)):
                if target is not None and target != source:
                    edges.add(target)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one unit (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> Graph:
    built = unit_graph()
    # The walk must have seen the packages it judges, or every assertion below is empty.
    assert {"monitor.commands", "monitor.server", "monitor.logs", "exporters.postfix_logs"} <= set(
        built
    )
    return built


def test_cycle_finder_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_subpackages(graph: Graph) -> None:
    assert cycles(graph) == []


def test_nothing_below_the_faces_imports_a_face(graph: Graph) -> None:
    below = {u: sorted(t & FACES) for u, t in graph.items() if u not in FACES}
    assert {u: faces for u, faces in below.items() if faces} == {}


def test_exporters_never_import_monitor(graph: Graph) -> None:
    wrong = {
        u: sorted(t for t in targets if t.startswith("monitor."))
        for u, targets in graph.items()
        if u.startswith("exporters.")
    }
    assert {u: targets for u, targets in wrong.items() if targets} == {}


def test_the_lab_imports_nothing_else_of_mailprobe(graph: Graph) -> None:
    assert sorted(graph["monitor.lab"]) == []
