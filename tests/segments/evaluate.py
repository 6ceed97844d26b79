"""The segment filter's meaning in plain Python: the yardstick the compiled SQL is held to.

It reads the raw JSON (not the parsed nodes), so that a fault in the parser shows up
too.  The rules are the ones the docstring of service/segments/filter.py states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec


@dataclass
class Person:
    """A subscriber as the filter sees one, plus what the audience rules need."""

    id: int
    email: str
    name: str
    agency: str | None
    role: str | None
    status: str
    created_at: datetime
    confirmed_at: datetime | None
    attributes: dict[str, Any]
    confirmed_lists: set[int] = field(default_factory=set)
    suppressed: bool = False


def in_audience(person: Person, list_ids: list[int], raw_filter: dict[str, Any] | None) -> bool:
    """What audience-count counts: active, confirmed on one of the lists, not suppressed, matching."""
    return (
        person.status == "active"
        and bool(person.confirmed_lists & set(list_ids))
        and not person.suppressed
        and (raw_filter is None or matches(raw_filter, person))
    )


def matches(node: dict[str, Any], person: Person) -> bool:
    """Whether ``person`` matches a valid raw filter."""
    if "all" in node:
        return all(matches(child, person) for child in node["all"])
    if "any" in node:
        return any(matches(child, person) for child in node["any"])
    if "not" in node:
        return not matches(node["not"], person)
    op, value = node["op"], node.get("value", True)
    negative = {"ne": "eq", "not_in": "in"}
    if op in negative:
        return not _condition(node["field"], negative[op], value, person)
    if op == "exists" and value is False:
        return not _condition(node["field"], "exists", True, person)
    return _condition(node["field"], op, value, person)


def _condition(name: str, op: str, value: Any, person: Person) -> bool:
    """A positive condition (eq, in, exists, gt, gte, lt, lte, contains)."""
    if name.startswith("attributes."):
        return _attribute(person.attributes, name.removeprefix("attributes."), op, value)
    actual = getattr(person, name)
    if op == "exists":
        return actual != "" if name == "name" else actual is not None
    if actual is None:
        return False
    if name in ("created_at", "confirmed_at"):
        if op == "in":
            return any(actual == _date(v) for v in value)
        return _order(actual, op, _date(value))
    if name in ("email", "name"):
        actual, value = actual.lower(), [v.lower() for v in value] if isinstance(value, list) else value.lower()
    if op == "eq":
        return bool(actual == value)
    if op == "in":
        return actual in value
    assert op == "contains"
    return value in actual


def _attribute(attributes: dict[str, Any], key: str, op: str, value: Any) -> bool:
    if op == "exists":
        return key in attributes
    if key not in attributes:
        return False
    actual = attributes[key]
    if op == "eq":
        return _json_equal(actual, value)
    if op == "in":
        return any(_json_equal(actual, v) for v in value)
    if op == "contains":
        return _contains(actual, value if isinstance(value, list | dict) else [value])
    if isinstance(value, str):
        return isinstance(actual, str) and _order(actual, op, value)
    return _is_number(actual) and _order(actual, op, value)


def _order(actual: Any, op: str, value: Any) -> bool:
    return bool({"eq": actual == value, "gt": actual > value, "gte": actual >= value,
            "lt": actual < value, "lte": actual <= value}[op])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON scalars are equal only within one JSON type (true is not 1); numbers by value."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, bool) and isinstance(b, bool):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return a is None and b is None


def _contains(a: Any, b: Any) -> bool:
    """PostgreSQL's jsonb ``a @> b`` below the top level: container types must match."""
    if isinstance(b, dict):
        return isinstance(a, dict) and all(k in a and _contains(a[k], v) for k, v in b.items())
    if isinstance(b, list):
        return isinstance(a, list) and all(any(_contains(x, y) for x in a) for y in b)
    return not isinstance(a, list | dict) and _json_equal(a, b)


def _date(value: str) -> datetime:
    return msgspec.convert(value, datetime)
