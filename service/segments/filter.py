"""The segment filter language: raw JSON in, typed nodes out, every fault named by its JSON path.

::

    filter := {"all": [filter, …]} | {"any": [filter, …]} | {"not": filter}
            | {"field": F, "op": OP, "value": V}

What a filter means (``compile.py`` turns it into SQL, ``tests/segments/evaluate.py``
states the same rules in plain Python, and a property test checks they agree):

- **Absent values.** A condition about a value the person does not have (a NULL
  agency, role or confirmed_at; an attribute key they lack; an attribute of another
  JSON type than the one compared with) is false, whatever the operator.  The
  negative operators are exact complements of the positive ones: ``ne`` is
  ``not eq``, ``not_in`` is ``not in``, ``exists: false`` is ``not exists``, and
  ``{"not": f}`` is true exactly where ``f`` is false.  So NULL is "not equal" to
  everything: ``{"field": "agency", "op": "ne", "value": "police"}`` includes people
  with no agency.  ``{"all": []}`` matches everyone, ``{"any": []}`` no one.
- **Text.** ``email`` and ``name`` compare case-insensitively (PostgreSQL ``lower()``
  on both sides); ``contains`` is a case-insensitive substring test.  ``agency``,
  ``role`` and ``status`` compare slugs exactly.  ``exists`` on ``name`` means "not
  empty" (a missing name is stored as ``''``).
- **Dates.** ``created_at`` and ``confirmed_at`` take ISO 8601 date-times with a
  time zone.
- **Attributes** (``attributes.<key>``): ``eq``/``ne``/``in``/``not_in`` compare JSON
  values (numbers as numbers, so ``1`` equals ``1.0``; ``true`` is not ``1``;
  ``"1"`` is not ``1``).  ``gt``/``gte``/``lt``/``lte`` take a number or a string and
  only match an attribute of that JSON type; strings order by code point.
  ``exists`` is "the key is present" (even if its value is ``null``).
  ``contains`` is JSON containment (``@>``): an object or array value must be
  contained in the attribute, and a scalar value must be an element of an array
  attribute (``{"op": "contains", "value": "sen"}`` matches ``{"tags": ["sen"]}``).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Final, Literal, TypeAlias, TypeGuard, get_args

import msgspec

from ..errors import Unprocessable

MAX_DEPTH: Final = 8
MAX_NODES: Final = 200
MAX_VALUES: Final = 5000
MAX_TEXT: Final = 1000

Field = Literal["email", "name", "agency", "role", "status", "created_at", "confirmed_at", "attributes"]
Op = Literal["eq", "ne", "in", "not_in", "exists", "gt", "gte", "lt", "lte", "contains"]
CompareOp = Literal["eq", "ne", "gt", "gte", "lt", "lte"]
Scalar: TypeAlias = str | int | float | bool | datetime
JSON: TypeAlias = "str | int | float | bool | list[JSON] | dict[str, JSON] | None"

DATE_FIELDS: Final = ("created_at", "confirmed_at")
STATUSES: Final = ("pending", "active", "unsubscribed", "bounced", "complained")
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SETS: Final = ("eq", "ne", "in", "not_in", "exists")
OPS_BY_FIELD: Final[dict[str, tuple[str, ...]]] = {
    "email": (*_SETS, "contains"),
    "name": (*_SETS, "contains"),
    "agency": _SETS,
    "role": _SETS,
    "status": _SETS,
    "created_at": (*_SETS, "gt", "gte", "lt", "lte"),
    "confirmed_at": (*_SETS, "gt", "gte", "lt", "lte"),
    "attributes": get_args(Op),
}


def _is_field(name: str) -> TypeGuard[Field]:
    return name in get_args(Field)


def _is_compare_op(op: str) -> TypeGuard[CompareOp]:
    return op in get_args(CompareOp)


class FilterError(Unprocessable):
    """A filter that cannot be used; ``detail`` starts with the JSON path of the fault."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}", extra={"path": path})
        self.path = path


class AllOf(msgspec.Struct, frozen=True):
    """Every child matches."""

    children: tuple[Filter, ...]


class AnyOf(msgspec.Struct, frozen=True):
    """At least one child matches."""

    children: tuple[Filter, ...]


class Not(msgspec.Struct, frozen=True):
    """The child does not match."""

    child: Filter


class Compare(msgspec.Struct, frozen=True, kw_only=True):
    """``eq``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte`` against one value."""

    field: Field
    op: CompareOp
    value: Scalar
    key: str | None = None


class Member(msgspec.Struct, frozen=True, kw_only=True):
    """``in`` (or, negated, ``not_in``) a non-empty set of values."""

    field: Field
    values: tuple[Scalar, ...]
    negated: bool = False
    key: str | None = None


class Exists(msgspec.Struct, frozen=True, kw_only=True):
    """``exists``: the value is present (``present=False``: absent)."""

    field: Field
    present: bool = True
    key: str | None = None


class Contains(msgspec.Struct, frozen=True, kw_only=True):
    """``contains``: a substring of a text field, or JSON containment in an attribute."""

    field: Field
    value: JSON
    key: str | None = None


Filter: TypeAlias = AllOf | AnyOf | Not | Compare | Member | Exists | Contains


def parse_filter(raw: object, *, path: str = "filter") -> Filter | None:
    """Validate raw JSON (as decoded by msgspec) into a filter; ``None`` or ``{}`` means "no filter".

    Raises :class:`FilterError` (a 422) whose message starts with the JSON path of the fault,
    e.g. ``filter.all[2].op: unknown operator 'like'``.
    """
    if raw is None or raw == {}:
        return None
    return _Parser().node(raw, path, 1)


class _Parser:
    """One walk over one filter, counting nodes and values against the limits."""

    def __init__(self) -> None:
        self.nodes = 0
        self.values = 0

    def node(self, raw: object, path: str, depth: int) -> Filter:
        if not isinstance(raw, dict):
            raise FilterError(path, f"expected a filter object, got {_kind(raw)}")
        if depth > MAX_DEPTH:
            raise FilterError(path, f"filters may be nested at most {MAX_DEPTH} levels deep")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FilterError(path, f"a filter may have at most {MAX_NODES} groups and conditions")
        groups = [k for k in ("all", "any", "not") if k in raw]
        if not groups:
            return self.condition(raw, path)
        if len(raw) != 1:
            raise FilterError(
                path, 'an object is one of {"all": […]}, {"any": […]}, {"not": {…}} or {"field", "op", "value"}'
            )
        kind = groups[0]
        inner, inner_path = raw[kind], f"{path}.{kind}"
        if kind == "not":
            return Not(self.node(inner, inner_path, depth + 1))
        if not isinstance(inner, list):
            raise FilterError(inner_path, f"expected a list of filters, got {_kind(inner)}")
        children = tuple(self.node(child, f"{inner_path}[{i}]", depth + 1) for i, child in enumerate(inner))
        return AllOf(children) if kind == "all" else AnyOf(children)

    def condition(self, raw: dict[object, object], path: str) -> Filter:
        for name in raw:
            if name not in ("field", "op", "value"):
                raise FilterError(path, f"unknown key {name!r}; a condition has field, op and value")
        field, key = self.field(raw.get("field"), f"{path}.field")
        op = raw.get("op")
        if not isinstance(op, str) or op not in get_args(Op):
            shown = f"unknown operator {op!r}" if isinstance(op, str) else f"expected an operator, got {_kind(op)}"
            raise FilterError(f"{path}.op", f"{shown}; use one of {', '.join(get_args(Op))}")
        if op not in OPS_BY_FIELD[field]:
            allowed = ", ".join(OPS_BY_FIELD[field])
            raise FilterError(f"{path}.op", f"operator {op!r} does not apply to {field!r}; use one of {allowed}")
        value_path = f"{path}.value"
        if op == "exists":
            present = raw.get("value", True)
            if not isinstance(present, bool):
                raise FilterError(value_path, f"'exists' takes true, false or no value, got {_kind(present)}")
            return Exists(field=field, key=key, present=present)
        if "value" not in raw:
            raise FilterError(value_path, f"operator {op!r} needs a value")
        value = raw["value"]
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise FilterError(value_path, f"{op!r} needs a non-empty list of values, got {_kind(value)}")
            values = tuple(self.scalar(field, op, v, f"{value_path}[{i}]") for i, v in enumerate(value))
            return Member(field=field, key=key, values=values, negated=op == "not_in")
        if op == "contains":
            if field == "attributes":
                return Contains(field=field, key=key, value=self.json(value, value_path, 1))
            return Contains(field=field, key=key, value=self.text(field, value, value_path))
        assert _is_compare_op(op), "every other operator was handled above"
        return Compare(field=field, key=key, op=op, value=self.scalar(field, op, value, value_path))

    def field(self, raw: object, path: str) -> tuple[Field, str | None]:
        if not isinstance(raw, str):
            raise FilterError(path, f"expected a field name, got {_kind(raw)}")
        if raw.startswith("attributes."):
            key = raw.removeprefix("attributes.")
            if not _ATTRIBUTE_KEY.fullmatch(key):
                allowed = "1–64 characters of A–Z, a–z, 0–9, '_', '.', '-'"
                raise FilterError(path, f"attribute key {key!r} must be {allowed}")
            return "attributes", key
        if raw == "attributes" or not _is_field(raw):
            names = ", ".join(f for f in OPS_BY_FIELD if f != "attributes")
            raise FilterError(path, f"unknown field {raw!r}; use one of {names} or attributes.<key>")
        return raw, None

    def count(self, path: str) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise FilterError(path, f"a filter may hold at most {MAX_VALUES:,} values in all")

    def scalar(self, field: Field, op: str, value: object, path: str) -> Scalar:
        """One value for eq/ne/in/not_in/gt/gte/lt/lte, of the type the field takes."""
        self.count(path)
        if field in DATE_FIELDS:
            return _datetime(value, path)
        if field != "attributes":
            return self.text(field, value, path)
        if isinstance(value, bool) and op in ("gt", "gte", "lt", "lte"):
            raise FilterError(path, f"{op!r} on an attribute needs a number or a string, got a boolean")
        if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
            return _checked_text(value, path) if isinstance(value, str) else value
        raise FilterError(path, f"expected a string, number or boolean, got {_kind(value)} (for null, use 'exists')")

    def text(self, field: Field, value: object, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise FilterError(path, f"expected a non-empty string, got {_kind(value)}")
        if field == "status" and value not in STATUSES:
            raise FilterError(path, f"unknown status {value!r}; use one of {', '.join(STATUSES)}")
        return _checked_text(value, path)

    def json(self, value: object, path: str, depth: int) -> JSON:
        """A JSON value for attribute containment: finite numbers, text PostgreSQL can store, bounded depth."""
        self.count(path)
        if depth > MAX_DEPTH:
            raise FilterError(path, f"values may be nested at most {MAX_DEPTH} levels deep")
        if value is None and depth == 1:
            raise FilterError(path, "'contains' needs a value other than null (for absent keys, use 'exists')")
        if isinstance(value, list):
            return [self.json(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {
                _checked_text(str(k), path): self.json(v, f"{path}.{k}", depth + 1) for k, v in value.items()
            }
        if value is None or isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            return value
        if isinstance(value, str):
            return _checked_text(value, path)
        raise FilterError(path, f"expected a JSON value, got {_kind(value)}")


def _checked_text(value: str, path: str) -> str:
    if len(value) > MAX_TEXT:
        raise FilterError(path, f"text values may be at most {MAX_TEXT:,} characters long")
    if "\x00" in value:
        raise FilterError(path, "text values may not contain the NUL character")
    return value


def _datetime(value: object, path: str) -> datetime:
    example = "an ISO 8601 date-time with a time zone, e.g. 2024-05-01T09:00:00Z"
    if not isinstance(value, str | datetime):
        raise FilterError(path, f"expected {example}, got {_kind(value)}")
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise FilterError(path, f"expected {example}, got {value!r}") from None
    if parsed.tzinfo is None:
        raise FilterError(path, f"expected {example}; {value!r} has no time zone")
    return parsed


def _kind(value: object) -> str:
    """How a JSON value is called in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" if value else "an empty string"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
