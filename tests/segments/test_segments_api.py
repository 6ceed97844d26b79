"""The segments API end to end: previews, saved segments, scopes, and 422s that write nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.auth import generate_key

Client = AsyncTestClient[Litestar]
NOT_LEADS = {"all": [
    {"field": "agency", "op": "in", "value": ["police", "health"]},
    {"not": {"field": "role", "op": "eq", "value": "lead"}},
]}


async def _scoped(database_url: str, scope: str) -> dict[str, str]:
    key = generate_key()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO api_keys (name, prefix, secret_hash, scopes) VALUES ('t', $1, $2, $3)",
                           key.prefix, key.secret_hash, [scope])
    finally:
        await conn.close()
    return {"Authorization": f"Bearer {key.token}"}


@pytest.fixture
async def readers(client: Client, admin_headers: dict[str, str], database_url: str) -> None:
    """Taxonomy through the API, and seven people written straight into the database."""
    for path, slug in [("agencies", "police"), ("agencies", "health"), ("roles", "lead"), ("roles", "practitioner"),
                       ("lists", "news"), ("lists", "training")]:
        assert (await client.post(f"/v1/{path}", json={"slug": slug, "name": slug.title()},
                                  headers=admin_headers)).status_code == 201
    people = [  # email, agency, role, status, lists confirmed on, attributes
        ("ann@police.uk", "police", "lead", "active", ["news"], '{"team": "north", "years": 5}'),
        ("Bob@police.uk", "police", "practitioner", "active", ["news"], '{"tags": ["sen", "dsl"]}'),
        ("cat@nhs.uk", "health", None, "active", ["news", "training"], '{"years": 2}'),
        ("dan@nhs.uk", "health", "lead", "active", ["training"], "{}"),
        ("eve@police.uk", "police", None, "pending", ["news"], "{}"),
        ("fay@school.org", None, "practitioner", "active", ["news"], "{}"),
        ("gus@school.org", None, None, "active", ["news"], '{"years": "5"}'),
    ]
    conn = await asyncpg.connect(database_url)
    try:
        for email, agency, role, status, lists, attributes in people:
            person = await conn.fetchval(
                "INSERT INTO subscribers (email, agency, role, status, attributes) VALUES ($1, $2, $3, $4, $5::jsonb)"
                " RETURNING id", email, agency, role, status, attributes)
            await conn.execute("INSERT INTO subscriptions (list_id, subscriber_id, status)"
                               " SELECT id, $1, 'confirmed' FROM lists WHERE slug = ANY ($2::text[])", person, lists)
        await conn.execute("INSERT INTO suppressions (email_hash, email, reason)"
                           " VALUES (email_hash('fay@school.org'), 'fay@school.org', 'manual')")
    finally:
        await conn.close()


async def _recipients(client: Client, headers: dict[str, str], body: dict[str, Any]) -> int:
    response = await client.post("/v1/segments/preview", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["recipients"])


@pytest.mark.usefixtures("readers")
async def test_preview_counts_the_audience(client: Client, admin_headers: dict[str, str]) -> None:
    # On news: ann, bob, cat, gus (eve is pending, fay suppressed, dan only on training).
    assert await _recipients(client, admin_headers, {"lists": ["news"]}) == 4
    assert await _recipients(client, admin_headers, {"lists": ["news", "training"]}) == 5
    # Cat has no role: NULL is "not equal" to lead, so she is in.
    assert await _recipients(client, admin_headers, {"lists": ["news"], "filter": NOT_LEADS}) == 2
    cases: list[tuple[dict[str, Any], int]] = [
        ({"field": "agency", "op": "ne", "value": "police"}, 2),  # cat, gus
        ({"field": "agency", "op": "exists", "value": False}, 1),  # gus
        ({"field": "email", "op": "eq", "value": "BOB@POLICE.UK"}, 1),
        ({"field": "email", "op": "contains", "value": "@Police."}, 2),
        ({"field": "attributes.years", "op": "gte", "value": 2}, 2),  # ann, cat; gus's "5" is a string
        ({"field": "attributes.years", "op": "eq", "value": "5"}, 1),  # gus
        ({"field": "attributes.tags", "op": "contains", "value": "dsl"}, 1),
        ({"field": "attributes.team", "op": "ne", "value": "north"}, 3),
        ({"field": "created_at", "op": "lt", "value": "2000-01-01T00:00:00Z"}, 0),
        ({"all": []}, 4),
        ({"any": []}, 0),
    ]
    for raw, expected in cases:
        assert await _recipients(client, admin_headers, {"lists": ["news"], "filter": raw}) == expected, raw


@pytest.mark.usefixtures("readers")
async def test_saved_segments_round_trip_and_preview(client: Client, admin_headers: dict[str, str]) -> None:
    body = {"slug": "not-leads", "name": "Everyone but leads", "lists": ["news", "news"], "filter": NOT_LEADS}
    created = await client.post("/v1/segments", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    saved = created.json()
    assert {k: saved[k] for k in ("slug", "name", "lists", "filter")} == {**body, "lists": ["news"]}
    assert (await client.get("/v1/segments/not-leads", headers=admin_headers)).json() == saved
    assert [s["slug"] for s in (await client.get("/v1/segments", headers=admin_headers)).json()] == ["not-leads"]
    assert await _recipients(client, admin_headers, {"segment": "not-leads"}) == 2

    duplicate = await client.post("/v1/segments", json=body, headers=admin_headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == "A segment with this slug already exists."

    renamed = await client.patch("/v1/segments/not-leads", json={"name": "Not leads", "lists": ["training"]},
                                 headers=admin_headers)
    assert renamed.status_code == 200 and renamed.json()["filter"] == NOT_LEADS
    assert renamed.json()["lists"] == ["training"] and renamed.json()["name"] == "Not leads"
    assert await _recipients(client, admin_headers, {"segment": "not-leads"}) == 1  # cat
    unfiltered = await client.patch("/v1/segments/not-leads", json={"filter": None}, headers=admin_headers)
    assert unfiltered.json()["filter"] is None and unfiltered.json()["name"] == "Not leads"
    assert await _recipients(client, admin_headers, {"segment": "not-leads"}) == 2  # cat, dan

    assert (await client.delete("/v1/segments/not-leads", headers=admin_headers)).status_code == 204
    assert (await client.get("/v1/segments/not-leads", headers=admin_headers)).status_code == 404
    assert (await client.delete("/v1/segments/not-leads", headers=admin_headers)).status_code == 404
    assert (await client.patch("/v1/segments/not-leads", json={"name": "x"}, headers=admin_headers)).status_code == 404


@pytest.mark.usefixtures("readers")
async def test_bad_previews_are_422_with_a_clear_detail(client: Client, admin_headers: dict[str, str]) -> None:
    bad_filter = {"all": [NOT_LEADS, {"field": "email", "op": "eq", "value": "a"},
                          {"field": "name", "op": "like", "value": "x"}]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"lists": ["news"], "filter": bad_filter}, "filter.all[2].op: unknown operator 'like'"),
        ({"lists": ["news"], "filter": {"field": "attributes.a b", "op": "exists"}}, "filter.field: attribute key"),
        ({"lists": ["news", "nope", "gone"]}, "There is no list 'nope', 'gone'."),
        ({"segment": "nothing"}, "There is no segment 'nothing'."),
        ({"segment": "x", "lists": ["news"]}, "Give either 'segment' or 'lists'"),
        ({}, "'lists' must name at least one list"),
        ({"lists": []}, "The request is not valid"),
        ({"lists": ["news"], "filter": [1]}, "The request is not valid"),
        ({"lists": ["news"], "where": {}}, "The request is not valid"),
    ]
    for body, detail in cases:
        response = await client.post("/v1/segments/preview", json=body, headers=admin_headers)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"].startswith(detail), (body, response.json())
    unknown = await client.post("/v1/segments/preview", json={"lists": ["nope"]}, headers=admin_headers)
    assert unknown.json()["unknown_lists"] == ["nope"]


@pytest.mark.usefixtures("readers")
async def test_filters_at_the_limits(client: Client, admin_headers: dict[str, str]) -> None:
    many = {"field": "email", "op": "in", "value": [f"p{i}@example.org" for i in range(5000)] + ["ann@police.uk"]}
    response = await client.post("/v1/segments/preview", json={"lists": ["news"], "filter": many}, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["detail"] == "filter.value[5000]: a filter may hold at most 5,000 values in all"
    many["value"] = many["value"][1:]
    assert await _recipients(client, admin_headers, {"lists": ["news"], "filter": many}) == 1
    # Nesting far beyond any limit, sent as raw JSON, is still a 4xx and never a 500.
    deep = b'{"lists": ["news"], "filter": ' + b'{"not": ' * 3000 + b"{}" + b"}" * 3001
    response = await client.post("/v1/segments/preview", content=deep,
                                 headers={**admin_headers, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("The request body is nested too deeply")


@pytest.mark.usefixtures("readers")
async def test_bad_saves_are_422_and_write_nothing(
    client: Client, admin_headers: dict[str, str], database_url: str
) -> None:
    good = {"slug": "seg", "name": "Seg", "lists": ["news"], "filter": NOT_LEADS}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "filter": {"not": {"field": "role", "op": "gt", "value": "x"}}},
         "filter.not.op: operator 'gt' does not apply to 'role'"),
        ({**good, "lists": ["news", "nope"]}, "There is no list 'nope'."),
        ({**good, "slug": "Bad Slug"}, "The request is not valid"),
        ({**good, "lists": []}, "The request is not valid"),
        ({**good, "extra": True}, "The request is not valid"),
    ]
    for body, detail in cases:
        response = await client.post("/v1/segments", json=body, headers=admin_headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"].startswith(detail), (body, response.json())
    assert (await client.post("/v1/segments", json=good, headers=admin_headers)).status_code == 201
    for patch, detail in [({}, "Nothing to change"), ({"filter": {"field": "x", "op": "eq", "value": 1}}, "filter.field"),
                          ({"lists": ["gone"], "name": "New"}, "There is no list 'gone'.")]:
        response = await client.patch("/v1/segments/seg", json=patch, headers=admin_headers)
        assert response.status_code == 422 and response.json()["detail"].startswith(detail), response.text
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT slug, name, lists FROM segments")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("seg", "Seg", ["news"])]


@pytest.mark.usefixtures("readers")
async def test_scopes(client: Client, database_url: str) -> None:
    assert (await client.post("/v1/segments/preview", json={"lists": ["news"]})).status_code == 401
    assert (await client.get("/v1/segments")).status_code == 401
    reader = await _scoped(database_url, "subscribers:read")
    writer = await _scoped(database_url, "editions:write")
    assert await _recipients(client, reader, {"lists": ["news"]}) == 4
    assert (await client.get("/v1/segments", headers=reader)).status_code == 200
    refused = await client.post("/v1/segments", json={"slug": "s", "name": "S", "lists": ["news"]}, headers=reader)
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert (await client.delete("/v1/segments/s", headers=reader)).status_code == 403
    assert (await client.patch("/v1/segments/s", json={"name": "x"}, headers=reader)).status_code == 403
    assert (await client.post("/v1/segments/preview", json={"lists": ["news"]}, headers=writer)).status_code == 403
    assert (await client.get("/v1/segments/s", headers=writer)).status_code == 403
