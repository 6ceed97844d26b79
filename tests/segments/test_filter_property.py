"""Property: for random people and random filters, PostgreSQL and plain Python agree on who matches.

Each example draws a population, writes it inside a transaction that is rolled back,
then checks a handful of random filters two ways: the bare compiled filter (the set of
ids) and the whole audience count (lists, status, suppressions) through count_audience.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.db.pool import Database, open_database
from service.segments.audience_count import count_audience
from service.segments.compile import compile_filter
from service.segments.filter import STATUSES, parse_filter
from tests.segments.evaluate import Person, in_audience, matches

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

AGENCIES = ("police", "health", "school")
ROLES = ("lead", "practitioner")
KEYS = ("team", "level", "tags", "flag", "meta", "score.v")
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
FILTERS_PER_POPULATION = 12

# Names mix ASCII with characters that have no case, so Python's lower() and PostgreSQL's agree
# whatever the server's locale.
names = st.text(alphabet="abcXYZ -'’名0", max_size=8)
moments = st.integers(min_value=0, max_value=1000).map(lambda h: EPOCH + timedelta(hours=h, microseconds=h * 7))
scalars = st.one_of(
    st.integers(min_value=-3, max_value=3), st.sampled_from([0.5, 1.0, 2.5, -1.5]),
    st.sampled_from(["a", "b", "A", "ab", "", "1"]), st.booleans(),
)
json_values = st.recursive(
    st.one_of(scalars, st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("xy"), inner, max_size=2)),
    max_leaves=5,
)


@st.composite
def people(draw: st.DrawFn) -> list[Person]:
    """A small population; addresses are unique regardless of case."""
    count = draw(st.integers(min_value=0, max_value=25))
    result = []
    for i in range(count):
        local = draw(st.text(alphabet="abAB.", min_size=1, max_size=4))
        result.append(Person(
            id=0,
            email=f"{local}{i}@{draw(st.sampled_from(['example.org', 'Police.UK']))}",
            name=draw(names),
            agency=draw(st.none() | st.sampled_from(AGENCIES)),
            role=draw(st.none() | st.sampled_from(ROLES)),
            status=draw(st.sampled_from(STATUSES)),
            created_at=draw(moments),
            confirmed_at=draw(st.none() | moments),
            attributes=draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)),
            confirmed_lists=draw(st.sets(st.sampled_from([1, 2]))),
            suppressed=draw(st.booleans()),
        ))
    return result


def _iso(moment: datetime, offset_hours: int) -> str:
    return moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


@st.composite
def conditions(draw: st.DrawFn, population: list[Person]) -> dict[str, Any]:
    """One condition, with values often taken from the population so that matches are common."""
    field = draw(st.sampled_from(["email", "name", "agency", "role", "status", "created_at", "confirmed_at",
                                  *[f"attributes.{k}" for k in KEYS]]))
    if field in ("email", "name"):
        seen = [getattr(p, field) for p in population if getattr(p, field)] or ["x"]
        text = draw(st.sampled_from(seen) | st.text(alphabet="abAB.0名", min_size=1, max_size=3))
        text = draw(st.sampled_from([text, text.upper(), text.lower()]))
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "exists", "contains"]))
        if op == "contains":
            start = draw(st.integers(min_value=0, max_value=len(text) - 1))
            return {"field": field, "op": op, "value": text[start:start + draw(st.integers(1, 4))]}
        values: st.SearchStrategy[Any] = st.just(text)
    elif field in ("agency", "role", "status"):
        domain = {"agency": AGENCIES, "role": ROLES, "status": STATUSES}[field]
        values = st.sampled_from([*domain, "other"] if field != "status" else domain)
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "exists"]))
    elif field in ("created_at", "confirmed_at"):
        seen_moments = [m for p in population if (m := getattr(p, field)) is not None] or [EPOCH]
        moment = draw(st.sampled_from(seen_moments) | moments)
        offset = draw(st.sampled_from([0, 2, -5]))
        values = st.just(_iso(moment, offset)) | moments.map(lambda m: _iso(m, offset))
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "exists", "gt", "gte", "lt", "lte"]))
    else:
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "exists", "gt", "gte", "lt", "lte", "contains"]))
        # Values held under this key, and the elements of arrays held there, make matches likely.
        key = field.removeprefix("attributes.")
        held = [p.attributes[key] for p in population if key in p.attributes]
        held += [element for value in held if isinstance(value, list) for element in value]
        held = [v for v in held if v is not None]
        if op == "contains":
            return {"field": field, "op": op, "value": draw(st.sampled_from(held or [1]) | json_values.filter(
                lambda v: v is not None))}
        held_scalars = [v for v in held if not isinstance(v, list | dict)] or [0]
        values = st.sampled_from(held_scalars) | scalars
        if op in ("gt", "gte", "lt", "lte"):
            values = values.filter(lambda v: not isinstance(v, bool))
    if op == "exists":
        return {"field": field, "op": op, **draw(st.sampled_from([{}, {"value": True}, {"value": False}]))}
    if op in ("in", "not_in"):
        return {"field": field, "op": op, "value": draw(st.lists(values, min_size=1, max_size=3))}
    return {"field": field, "op": op, "value": draw(values)}


@st.composite
def filters(draw: st.DrawFn, population: list[Person], depth: int = 0) -> dict[str, Any]:
    """A random filter up to four levels deep."""
    kind = draw(st.sampled_from(["leaf", "leaf", "all", "any", "not"] if depth < 4 else ["leaf"]))
    if kind == "leaf":
        return draw(conditions(population))
    if kind == "not":
        return {"not": draw(filters(population, depth + 1))}
    return {kind: draw(st.lists(filters(population, depth + 1), max_size=3))}


async def _insert(conn: asyncpg.Connection, population: list[Person]) -> None:
    for person in population:
        person.id = await conn.fetchval(
            "INSERT INTO subscribers (email, name, agency, role, status, created_at, confirmed_at, attributes)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            person.email, person.name, person.agency, person.role, person.status, person.created_at,
            person.confirmed_at, person.attributes,
        )
        await conn.executemany(
            "INSERT INTO subscriptions (list_id, subscriber_id, status) VALUES ($1, $2, 'confirmed')",
            [(list_id, person.id) for list_id in person.confirmed_lists],
        )
        if person.suppressed:
            await conn.execute(
                "INSERT INTO suppressions (email_hash, email, reason) VALUES (email_hash($1), $1, 'manual')",
                person.email,
            )


async def _check(db: Database, population: list[Person], raw_filters: list[dict[str, Any]]) -> None:
    async with db.pool.acquire() as proxy:
        conn = cast(asyncpg.Connection, proxy)
        transaction = conn.transaction()
        await transaction.start()
        try:
            await _insert(conn, population)
            for raw in raw_filters:
                node = parse_filter(raw)
                fragment, params = compile_filter(node, first_param=1)
                rows = await conn.fetch(f"SELECT id FROM subscribers s WHERE {fragment or 'TRUE'}", *params)  # noqa: S608
                expected = {p.id for p in population if matches(raw, p)}
                assert {r["id"] for r in rows} == expected, (raw, fragment, params)
                for list_ids in ([1], [2], [1, 2]):
                    want = sum(in_audience(p, list_ids, raw) for p in population)
                    assert await count_audience(conn, db, list_ids, node) == want, (raw, list_ids)
        finally:
            await transaction.rollback()


def test_sql_and_python_agree_on_random_filters(database_url: str) -> None:
    with asyncio.Runner() as runner:
        db = runner.run(open_database(database_url, pool_size=1))
        try:
            runner.run(_seed_taxonomy(db))

            @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(st.data())
            def check(data: st.DataObject) -> None:
                population = data.draw(people(), label="people")
                raw_filters = data.draw(st.lists(filters(population), min_size=FILTERS_PER_POPULATION,
                                                 max_size=FILTERS_PER_POPULATION), label="filters")
                runner.run(_check(db, population, raw_filters))

            check()
        finally:
            runner.run(db.close())


async def _seed_taxonomy(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.executemany("INSERT INTO agencies (slug, name) VALUES ($1, $1)", [(a,) for a in AGENCIES])
        await conn.executemany("INSERT INTO roles (slug, name) VALUES ($1, $1)", [(r,) for r in ROLES])
        list_ids = await conn.fetch("INSERT INTO lists (slug, name) VALUES ('one', 'One'), ('two', 'Two') RETURNING id")
        assert [r["id"] for r in list_ids] == [1, 2]

