"""No loop between the parts of ``service/``: a lower package never imports one above it.

Each package (``service/delivery/``) and each top-level module (``service/errors.py``) is a
node; an import from one to another is an edge, lazy imports inside functions included. The
graph must have no cycle, so the parts can be read, tested and changed from the bottom up.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1] / "service"


def _part(module: str) -> str | None:
    """``service.delivery.worker`` → ``delivery``; ``service.errors`` → ``errors``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[0] == "service" else None


def _imports(path: Path) -> set[str]:
    here = list(path.relative_to(SERVICE.parent).with_suffix("").parts)
    package = here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            targets = [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
            if len(module.split(".")) == 1:  # from service import x
                targets = [f"{module}.{alias.name}" for alias in node.names]
            found.update(targets)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Part → the other parts it imports."""
    graph: dict[str, set[str]] = {}
    for path in SERVICE.rglob("*.py"):
        source = _part(".".join(path.relative_to(SERVICE.parent).with_suffix("").parts))
        if source is None or source == "__init__":
            continue
        edges = graph.setdefault(source, set())
        for target in filter(None, map(_part, _imports(path))):
            if target != source:
                edges.add(target)
    return graph


def test_the_parts_of_the_service_import_each_other_without_a_loop() -> None:
    graph = import_graph()
    assert {"delivery", "subscribers", "errors", "db"} <= set(graph), "the scan found the parts"
    assert "db" in graph["delivery"] and "errors" in graph["subscribers"], "the scan sees imports"
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"a loop between parts of service/: {' imports '.join(reversed(exc.args[1]))}") from None
    assert order.index("errors") < order.index("subscribers")
