"""Request and response bodies of the segments API.

The filter arrives as raw JSON and is checked by ``parse_filter``, so that a
fault is reported with its JSON path inside the filter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..schemas import NO_NUL, Input, Name, Slug, some_change
from .filter import DATE_FIELDS, MAX_DEPTH, MAX_NODES, MAX_TEXT, MAX_VALUES, OPS_BY_FIELD, STATUSES

ListSlugs = Annotated[list[Slug], Meta(min_length=1, max_length=100, description="slugs of existing mailing lists")]


def _condition(fields: object, ops: tuple[str, ...], value: dict[str, Any] | None) -> dict[str, Any]:
    """A ``{"field", "op", "value"}`` condition; ``value=None``: the value is an optional boolean (``exists``)."""
    return {
        "type": "object",
        "properties": {"field": fields, "op": {"enum": list(ops)}, "value": value or {"type": "boolean"}},
        "required": ["field", "op", "value"] if value else ["field", "op"],
        "additionalProperties": False,
    }


def _some(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1}


def _group(kind: str, inner: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {kind: inner}, "required": [kind], "additionalProperties": False}


_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": NO_NUL}
_DATE = {"type": "string", "format": "date-time"}
_STATUS = {"enum": list(STATUSES)}
_ATTRIBUTE_TEXT = {"type": "string", "maxLength": MAX_TEXT, "pattern": NO_NUL}
_ATTRIBUTE_VALUE = {"anyOf": [_ATTRIBUTE_TEXT, {"type": "number"}, {"type": "boolean"}]}
_ATTRIBUTE = {"type": "string", "pattern": r"^attributes\.[A-Za-z0-9_.-]{1,64}$"}
_TEXT_FIELDS = {"enum": ["email", "name", "agency", "role"]}
_SETS = ("eq", "ne")
_MEMBERS = ("in", "not_in")
_ORDER = ("gt", "gte", "lt", "lte")
_FILTER = "#/$defs/SegmentFilter"
# The grammar parse_filter (filter.py) reads, as JSON Schema: what it refuses beyond this is in the description.
FILTER_SCHEMA: dict[str, Any] = {
    "description": (
        f"A group ({{\"all\": […]}}, {{\"any\": […]}}, {{\"not\": {{…}}}}) or a condition "
        f"({{\"field\", \"op\", \"value\"}}); see DESIGN.md. At most {MAX_DEPTH} levels deep, {MAX_NODES} groups "
        f"and conditions and {MAX_VALUES:,} values in all; text without U+0000; dates take a "
        "time zone; 'contains' on an attribute takes any JSON value but null (JSON containment)."
    ),
    "anyOf": [
        _group("all", {"type": "array", "items": {"$ref": _FILTER}}),
        _group("any", {"type": "array", "items": {"$ref": _FILTER}}),
        _group("not", {"$ref": _FILTER}),
        _condition(_TEXT_FIELDS, _SETS, _TEXT),
        _condition(_TEXT_FIELDS, _MEMBERS, _some(_TEXT)),
        _condition({"enum": ["email", "name"]}, ("contains",), _TEXT),
        _condition({"const": "status"}, _SETS, _STATUS),
        _condition({"const": "status"}, _MEMBERS, _some(_STATUS)),
        _condition({"enum": list(DATE_FIELDS)}, (*_SETS, *_ORDER), _DATE),
        _condition({"enum": list(DATE_FIELDS)}, _MEMBERS, _some(_DATE)),
        _condition({"enum": [f for f in OPS_BY_FIELD if f != "attributes"]}, ("exists",), None),
        _condition(_ATTRIBUTE, ("exists",), None),
        _condition(_ATTRIBUTE, _SETS, _ATTRIBUTE_VALUE),
        _condition(_ATTRIBUTE, _MEMBERS, _some(_ATTRIBUTE_VALUE)),
        _condition(_ATTRIBUTE, _ORDER, {"anyOf": [_ATTRIBUTE_TEXT, {"type": "number"}]}),
        _condition(_ATTRIBUTE, ("contains",), {"not": {"type": "null"}}),
    ],
}
RawFilter = Annotated[
    dict[str, Any],
    Meta(
        description="a segment filter, or {} for none",
        extra_json_schema={
            "anyOf": [{"$ref": _FILTER}, {"type": "object", "maxProperties": 0}],
            "$defs": {"SegmentFilter": FILTER_SCHEMA},
        },
    ),
]
TARGET: dict[str, Any] = {
    "anyOf": [
        {
            "required": ["segment"],
            "properties": {
                "segment": {"type": "string"},
                "lists": {"anyOf": [{"type": "array", "maxItems": 0}, {"type": "null"}]},
                "filter": {"type": "null"},
            },
        },
        {"required": ["lists"], "properties": {"lists": {"type": "array", "minItems": 1}, "segment": {"type": "null"}}},
    ]
}
"""A body's ``json_schema_extra``: a saved segment alone, or at least one list (with an optional filter)."""


class PreviewIn(Input):
    """Who would receive an edition: lists and an optional filter, or a saved segment."""

    json_schema_extra: ClassVar[dict[str, Any]] = TARGET

    lists: ListSlugs | None = None
    filter: RawFilter | None = None
    segment: Slug | None = None


class Preview(msgspec.Struct, kw_only=True):
    """The number of people an edition would reach now."""

    recipients: int


class SegmentIn(Input):
    """A segment to save: lists and an optional filter under a name."""

    slug: Slug
    name: Name
    lists: ListSlugs
    filter: RawFilter | None = None


class SegmentPatch(Input):
    """Changes to a segment; absent fields stay as they are, ``"filter": null`` removes the filter."""

    json_schema_extra: ClassVar[dict[str, Any]] = some_change("name", "lists", "filter", null_is_a_change=("filter",))

    name: Name | None = None
    lists: ListSlugs | None = None
    filter: RawFilter | UnsetType | None = UNSET


class Segment(msgspec.Struct, kw_only=True):
    """A saved segment."""

    slug: str
    name: str
    lists: list[str]
    filter: dict[str, object] | None
    created_at: datetime
    updated_at: datetime
