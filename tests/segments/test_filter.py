"""The filter language: parsing (every fault named by its JSON path), the limits, and the SQL it compiles to."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from service.errors import Unprocessable
from service.segments.compile import compile_filter
from service.segments.filter import (
    AllOf,
    AnyOf,
    Compare,
    Contains,
    Exists,
    FilterError,
    Member,
    Not,
    parse_filter,
)

AGENCY_IS_POLICE = {"field": "agency", "op": "eq", "value": "police"}


def _error(raw: object, **kwargs: Any) -> str:
    with pytest.raises(FilterError) as caught:
        parse_filter(raw, **kwargs)
    assert isinstance(caught.value, Unprocessable) and caught.value.status_code == 422
    assert caught.value.extra == {"path": caught.value.path}
    return caught.value.detail


# -- parsing -------------------------------------------------------------------


def test_no_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None
    assert compile_filter(None, first_param=2) == ("", [])


def test_parses_into_typed_nodes() -> None:
    raw = {"all": [
        AGENCY_IS_POLICE,
        {"not": {"field": "role", "op": "in", "value": ["lead"]}},
        {"any": [
            {"field": "attributes.team.name", "op": "not_in", "value": [1, "a", True, 2.5]},
            {"field": "confirmed_at", "op": "exists"},
            {"field": "created_at", "op": "gte", "value": "2024-05-01T09:00:00+02:00"},
            {"field": "attributes.tags", "op": "contains", "value": ["sen"]},
            {"field": "email", "op": "contains", "value": "@police.uk"},
        ]},
    ]}
    assert parse_filter(raw) == AllOf((
        Compare(field="agency", op="eq", value="police"),
        Not(Member(field="role", values=("lead",))),
        AnyOf((
            Member(field="attributes", key="team.name", values=(1, "a", True, 2.5), negated=True),
            Exists(field="confirmed_at"),
            Compare(field="created_at", op="gte", value=datetime(2024, 5, 1, 7, tzinfo=UTC)),
            Contains(field="attributes", key="tags", value=["sen"]),
            Contains(field="email", value="@police.uk"),
        )),
    ))
    assert parse_filter({"field": "name", "op": "exists", "value": False}) == Exists(field="name", present=False)


@pytest.mark.parametrize(("raw", "detail"), [
    ([], "filter: expected a filter object, got an empty list"),
    ({"all": {}}, "filter.all: expected a list of filters, got an object"),
    ({"any": [AGENCY_IS_POLICE, "x"]}, "filter.any[1]: expected a filter object, got the string 'x'"),
    ({"all": [], "field": "email"}, "filter: an object is one of"),
    ({"not": AGENCY_IS_POLICE, "any": []}, "filter: an object is one of"),
    ({"field": "email", "op": "eq", "value": "a", "extra": 1}, "filter: unknown key 'extra'"),
    ({"op": "eq", "value": "a"}, "filter.field: expected a field name, got null"),
    ({"field": "foo", "op": "eq", "value": "a"}, "filter.field: unknown field 'foo'"),
    ({"field": "attributes", "op": "eq", "value": "a"}, "filter.field: unknown field 'attributes'"),
    ({"field": "attributes.", "op": "exists"}, "filter.field: attribute key '' must be 1–64 characters"),
    ({"field": "attributes.a b", "op": "exists"}, "filter.field: attribute key 'a b' must be"),
    ({"field": "attributes." + "k" * 65, "op": "exists"}, "filter.field: attribute key 'kkk"),
    ({"field": "attributes.x'--", "op": "exists"}, "filter.field: attribute key \"x'--\" must be"),
    ({"all": [AGENCY_IS_POLICE, AGENCY_IS_POLICE, {"field": "email", "op": "like", "value": "x"}]},
     "filter.all[2].op: unknown operator 'like'"),
    ({"field": "email", "value": "x"}, "filter.op: expected an operator, got null"),
    ({"field": "email", "op": "gt", "value": "x"}, "filter.op: operator 'gt' does not apply to 'email'"),
    ({"field": "agency", "op": "contains", "value": "x"}, "filter.op: operator 'contains' does not apply to 'agency'"),
    ({"field": "created_at", "op": "contains", "value": "x"}, "filter.op: operator 'contains' does not apply"),
    ({"field": "email", "op": "eq"}, "filter.value: operator 'eq' needs a value"),
    ({"field": "email", "op": "eq", "value": 3}, "filter.value: expected a non-empty string, got a number"),
    ({"field": "email", "op": "eq", "value": ""}, "filter.value: expected a non-empty string, got an empty string"),
    ({"field": "name", "op": "contains", "value": None}, "filter.value: expected a non-empty string, got null"),
    ({"field": "agency", "op": "in", "value": "police"}, "filter.value: 'in' needs a non-empty list of values"),
    ({"field": "agency", "op": "not_in", "value": []}, "filter.value: 'not_in' needs a non-empty list of values, got an empty list"),
    ({"field": "agency", "op": "in", "value": ["police", 3]}, "filter.value[1]: expected a non-empty string, got a number"),
    ({"field": "status", "op": "eq", "value": "actve"}, "filter.value: unknown status 'actve'"),
    ({"field": "role", "op": "exists", "value": "yes"}, "filter.value: 'exists' takes true, false or no value"),
    ({"field": "role", "op": "exists", "value": None}, "filter.value: 'exists' takes true, false or no value, got null"),
    ({"field": "created_at", "op": "gt", "value": "2024-05-01"}, "filter.value: expected an ISO 8601 date-time"),
    ({"field": "created_at", "op": "gt", "value": "yesterday"}, "filter.value: expected an ISO 8601 date-time"),
    ({"field": "created_at", "op": "lt", "value": 1714550400}, "filter.value: expected an ISO 8601 date-time with a time zone, e.g. 2024-05-01T09:00:00Z, got a number"),
    ({"field": "confirmed_at", "op": "lte", "value": "2024-05-01T09:00:00"}, "filter.value: expected an ISO 8601 date-time with a time zone, e.g. 2024-05-01T09:00:00Z; '2024-05-01T09:00:00' has no time zone"),
    ({"field": "confirmed_at", "op": "in", "value": ["2024-05-01T09:00:00Z", "x"]}, "filter.value[1]: expected an ISO 8601"),
    ({"field": "attributes.x", "op": "eq", "value": None}, "filter.value: expected a string, number or boolean, got null (for null, use 'exists')"),
    ({"field": "attributes.x", "op": "eq", "value": {"a": 1}}, "filter.value: expected a string, number or boolean, got an object"),
    ({"field": "attributes.x", "op": "in", "value": [1, [2]]}, "filter.value[1]: expected a string, number or boolean, got a list"),
    ({"field": "attributes.x", "op": "gt", "value": True}, "filter.value: 'gt' on an attribute needs a number or a string, got a boolean"),
    ({"field": "attributes.x", "op": "eq", "value": float("nan")}, "filter.value: expected a string, number or boolean"),
    ({"field": "attributes.x", "op": "contains", "value": None}, "filter.value: 'contains' needs a value other than null"),
    ({"field": "attributes.x", "op": "contains", "value": {"a": [1, float("inf")]}}, "filter.value.a[1]: expected a JSON value"),
    ({"field": "attributes.x", "op": "contains", "value": {"a": "\x00"}}, "filter.value.a: text values may not contain the NUL character"),
    ({"field": "name", "op": "eq", "value": "x" * 1001}, "filter.value: text values may be at most 1,000 characters long"),
    ({"field": "attributes.x", "op": "eq", "value": "nul\x00"}, "filter.value: text values may not contain the NUL character"),
])
def test_faults_name_their_json_path(raw: object, detail: str) -> None:
    assert _error(raw).startswith(detail)


def test_the_path_prefix_is_the_callers() -> None:
    assert _error({"not": {"field": "x"}}, path="segment.filter").startswith("segment.filter.not.field: unknown field")


def _nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = AGENCY_IS_POLICE
    for _ in range(levels - 1):
        node = {"not": node}
    return node


def test_at_most_eight_levels() -> None:
    assert parse_filter(_nested(8)) is not None
    assert _error(_nested(9)) == "filter" + ".not" * 8 + ": filters may be nested at most 8 levels deep"
    deep_any: dict[str, Any] = AGENCY_IS_POLICE
    for kind in ["all", "any"] * 4:
        deep_any = {kind: [deep_any]}
    assert _error(deep_any).startswith("filter.any[0].all[0].any[0].all[0].any[0].all[0].any[0].all[0]: filters may")
    # A deeper attribute value is refused too, before any recursion gets far.
    value: Any = 1
    for _ in range(9):
        value = [value]
    assert "values may be nested at most 8 levels deep" in _error({"field": "attributes.x", "op": "contains", "value": value})


def test_at_most_two_hundred_nodes() -> None:
    assert parse_filter({"any": [AGENCY_IS_POLICE] * 199}) is not None
    assert _error({"any": [AGENCY_IS_POLICE] * 200}) == "filter.any[199]: a filter may have at most 200 groups and conditions"
    assert _error({"any": [{"not": AGENCY_IS_POLICE}] * 100}).startswith("filter.any[99].not: a filter may have at most 200")


def test_at_most_five_thousand_values() -> None:
    many = {"field": "email", "op": "in", "value": [f"p{i}@example.org" for i in range(5000)]}
    assert parse_filter(many) is not None
    many["value"].append("one@more.org")  # type: ignore[attr-defined]
    assert _error(many) == "filter.value[5000]: a filter may hold at most 5,000 values in all"
    split = {"all": [{"field": "attributes.n", "op": "in", "value": list(range(2500))},
                     {"field": "attributes.n", "op": "contains", "value": {"a": list(range(2500))}}]}
    assert _error(split) == "filter.all[1].value.a[2498]: a filter may hold at most 5,000 values in all"


# -- compiling -------------------------------------------------------------------


def _compile(raw: dict[str, Any], first_param: int = 1) -> tuple[str, list[object]]:
    return compile_filter(parse_filter(raw), first_param=first_param)


def test_columns_and_null_rule() -> None:
    assert _compile(AGENCY_IS_POLICE, 2) == ("s.agency = $2::text", ["police"])
    # NULL is "not equal": the negative forms include people with no agency.
    assert _compile({"field": "agency", "op": "ne", "value": "police"}) == (
        "(s.agency IS NULL OR NOT (s.agency = $1::text))", ["police"])
    assert _compile({"not": AGENCY_IS_POLICE}) == _compile({"field": "agency", "op": "ne", "value": "police"})
    assert _compile({"field": "role", "op": "not_in", "value": ["a", "b"]}) == (
        "(s.role IS NULL OR NOT (s.role = ANY ($1::text[])))", [["a", "b"]])
    assert _compile({"field": "status", "op": "ne", "value": "active"}) == ("NOT (s.status = $1::text)", ["active"])
    assert _compile({"field": "confirmed_at", "op": "exists", "value": False}) == ("NOT (s.confirmed_at IS NOT NULL)", [])
    assert _compile({"field": "name", "op": "exists"}) == ("s.name <> ''", [])


def test_email_is_caseless() -> None:
    assert _compile({"field": "email", "op": "eq", "value": "A@B.org"}) == ("lower(s.email) = lower($1::text)", ["A@B.org"])
    sql, params = _compile({"field": "email", "op": "in", "value": ["A@B.org"]})
    assert sql == "lower(s.email) = ANY (ARRAY(SELECT lower(v) FROM unnest($1::text[]) AS v))" and params == [["A@B.org"]]
    assert _compile({"field": "name", "op": "contains", "value": "Ann"}) == ("strpos(lower(s.name), lower($1::text)) > 0", ["Ann"])


def test_not_is_pushed_down_with_de_morgan() -> None:
    raw = {"not": {"all": [AGENCY_IS_POLICE, {"any": [{"field": "role", "op": "eq", "value": "lead"}, {"all": []}]}]}}
    assert _compile(raw) == (
        "((s.agency IS NULL OR NOT (s.agency = $1::text)) OR ((s.role IS NULL OR NOT (s.role = $2::text)) AND FALSE))",
        ["police", "lead"],
    )
    assert _compile({"any": []}) == ("FALSE", [])
    assert _compile({"not": {"not": AGENCY_IS_POLICE}}) == _compile(AGENCY_IS_POLICE)


def test_attributes_keys_and_values_are_parameters() -> None:
    assert _compile({"field": "attributes.team", "op": "eq", "value": 3}, 3) == ("s.attributes @> $3::jsonb", [{"team": 3}])
    assert _compile({"field": "attributes.team", "op": "ne", "value": "x"}) == ("NOT (s.attributes @> $1::jsonb)", [{"team": "x"}])
    assert _compile({"field": "attributes.t", "op": "exists"}) == ("s.attributes ? $1::text", ["t"])
    assert _compile({"field": "attributes.tags", "op": "contains", "value": "sen"}) == (
        "s.attributes @> $1::jsonb", [{"tags": ["sen"]}])
    assert _compile({"field": "attributes.m", "op": "contains", "value": {"a": 1}}) == ("s.attributes @> $1::jsonb", [{"m": {"a": 1}}])
    assert _compile({"field": "attributes.n", "op": "gt", "value": 2}) == (
        "(jsonb_typeof(s.attributes -> $1::text) = 'number' AND (s.attributes -> $1::text) > $2::jsonb)", ["n", 2])
    assert _compile({"field": "attributes.n", "op": "lte", "value": "m"}) == (
        "(jsonb_typeof(s.attributes -> $1::text) = 'string' AND (s.attributes ->> $1::text) COLLATE \"C\" <= $2::text)",
        ["n", "m"])
    assert _compile({"field": "attributes.n", "op": "not_in", "value": [1, "1"]}) == (
        "NOT coalesce((s.attributes -> $1::text) = ANY ($2::jsonb[]), false)", ["n", [1, "1"]])


def test_no_user_text_reaches_the_sql() -> None:
    hostile = "x'); DROP TABLE subscribers; --"
    raw = {"all": [
        {"field": "email", "op": "contains", "value": hostile},
        {"field": "name", "op": "in", "value": [hostile]},
        {"field": "attributes.drop_table-1.x", "op": "gt", "value": hostile},
        {"field": "attributes.drop_table-1.x", "op": "contains", "value": {hostile: [hostile]}},
    ]}
    sql, params = _compile(raw, 4)
    assert "DROP" not in sql and "drop_table" not in sql and "'x'" not in sql
    assert sorted({int(p) for p in re.findall(r"\$(\d+)", sql)}) == list(range(4, 4 + len(params)))
