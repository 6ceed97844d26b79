"""Every query name the code uses exists in service/sql/queries, and every query there is used.

Names are looked up as ``….q["name"]`` (or ``….q.bind("name", …)``); a misspelt one would only fail when a request
reached it, so this reads the code itself (its syntax tree, not a text search).
"""

from __future__ import annotations

import ast
from pathlib import Path

from service.db.queries import load_queries
from service.db.sql_files import QUERIES_DIR

SERVICE = Path(__file__).resolve().parents[1] / "service"


def _names_used() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for path in SERVICE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if _is_bind(node):
                assert isinstance(node, ast.Call)
                first = node.args[0] if node.args else None
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{path.relative_to(SERVICE.parent)}:{node.lineno}: query names are written out, not computed"
                )
                used.setdefault(first.value, []).append(f"{path.relative_to(SERVICE.parent)}:{node.lineno}")
                continue
            if not isinstance(node, ast.Subscript):
                continue
            target = node.value
            holder = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
            if holder != "q":
                continue
            assert isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str), (
                f"{path.relative_to(SERVICE.parent)}:{node.lineno}: query names are written out, not computed"
            )
            used.setdefault(node.slice.value, []).append(f"{path.relative_to(SERVICE.parent)}:{node.lineno}")
    return used


def _is_bind(node: ast.AST) -> bool:
    """``….q.bind("name", …)``: a query with named parameters."""
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "bind"
        and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "q"
    )


def test_every_query_name_used_exists() -> None:
    defined = set(load_queries(QUERIES_DIR))
    used = _names_used()
    assert len(used) > 50, "the scan found the code's queries"
    missing = {name: places for name, places in used.items() if name not in defined}
    assert not missing, f"queries used but not defined: {missing}"


def test_every_defined_query_is_used() -> None:
    unused = set(load_queries(QUERIES_DIR)) - set(_names_used())
    assert not unused, f"queries defined but never used: {sorted(unused)}"
