"""Batches merged while the body is read leave what the import's rules say, however the rows fall into batches.

Each import runs inside a transaction that is rolled back, against readers written into the same
transaction first: a held reader on each status, one with a pending list, a suppressed address.
The rules, in plain Python (``_expected``): the last row for an address (compared lower-cased)
wins; a suppressed address is skipped; a new person is created active and confirmed, a pending or
active one is brought up to date (empty values keep what is held, attributes are merged), anyone
else is left alone; each person merged is confirmed on the row's lists (a list they left stays
left) and gets one consent record.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from service.db.pool import Database, open_database
from service.subscribers.demo import load_demo
from service.subscribers.import_formats import ndjson_rows
from service.subscribers.importer import _Batch, import_stream

Row = dict[str, Any]
State = tuple[list[tuple[Any, ...]], list[tuple[str, str, str]], list[tuple[str, tuple[str, ...]]]]

LISTS = ("newsletter", "training", "practice-reviews")
# Local parts in several cases: the same person for PostgreSQL, different text for Python.
LOCALS = ("ann", "Ann", "ANN", "bob", "Bob", "held", "HELD", "pending", "left", "gone", "Gone", "dan")
HELD = {  # address: (status, name, attributes, {list: status})
    "held@example.org": ("active", "Held", {"team": "a"}, {"newsletter": "confirmed", "training": "pending"}),
    "pending@example.org": ("pending", "", {}, {"training": "pending"}),
    "left@example.org": ("unsubscribed", "Left", {}, {"newsletter": "unsubscribed"}),
}
SUPPRESSED = "gone@example.org"

rows_strategy = st.lists(
    st.fixed_dictionaries(
        {"email": st.sampled_from(LOCALS).map(lambda local: f"{local}@example.org"),
         "lists": st.lists(st.sampled_from(LISTS), min_size=1, max_size=3)},
        optional={"name": st.sampled_from(["", "Ann Smith", "Bob"]),
                  "agency": st.sampled_from(["police", "health"]),
                  "attributes": st.sampled_from([{"team": "b"}, {"fte": 0.5}])},
    ),
    min_size=1, max_size=14,
)


async def _body(rows: list[Row]) -> AsyncIterator[bytes]:
    yield "".join(json.dumps(r) + "\n" for r in rows).encode()


async def _seed(conn: asyncpg.Connection) -> None:
    for email, (status, name, attributes, lists) in HELD.items():
        person = await conn.fetchval(
            "INSERT INTO subscribers (email, name, status, attributes, confirmed_at) "
            "VALUES ($1, $2, $3, $4, CASE WHEN $3 = 'pending' THEN NULL ELSE now() END) RETURNING id",
            email, name, status, attributes)
        await conn.execute(
            "INSERT INTO subscriptions (list_id, subscriber_id, status) "
            "SELECT l.id, $1, s.status FROM lists l JOIN unnest($2::text[], $3::text[]) AS s(slug, status) USING (slug)",
            person, list(lists), list(lists.values()))
    await conn.execute("INSERT INTO suppressions (email_hash, email, reason) VALUES (email_hash($1), $1, 'manual')",
                       SUPPRESSED)


async def _state(conn: asyncpg.Connection) -> State:
    people = [tuple(r) for r in await conn.fetch(
        "SELECT email, name, agency, role, attributes, status, confirmed_at IS NOT NULL FROM subscribers ORDER BY email")]
    lists = [tuple(r) for r in await conn.fetch(
        "SELECT s.email, l.slug, x.status FROM subscriptions x JOIN subscribers s ON s.id = x.subscriber_id "
        "JOIN lists l ON l.id = x.list_id ORDER BY 1, 2")]
    consents = [(r["email"], tuple(r["lists"])) for r in await conn.fetch(
        "SELECT s.email, c.lists FROM consents c JOIN subscribers s ON s.id = c.subscriber_id "
        "WHERE c.action = 'import' AND c.source = 'import' ORDER BY 1")]
    assert await conn.fetchval("SELECT count(*) FROM import_staging") == 0, "staged rows never outlive the import"
    return people, lists, consents


async def _imported(db: Database, rows: list[Row], batch_rows: int) -> tuple[tuple[int, int, int], State]:
    async with db.pool.acquire() as proxy:
        conn = cast(asyncpg.Connection, proxy)
        transaction = conn.transaction()
        await transaction.start()
        try:
            await _seed(conn)
            result = await import_stream(conn, db.q, ndjson_rows, _body(rows), batch_rows=batch_rows)
            return (result.created, result.updated, result.skipped), await _state(conn)
        finally:
            await transaction.rollback()


def _expected(rows: list[Row]) -> tuple[tuple[int, int, int], State]:
    """What the import's rules leave, worked out in plain Python."""
    people: dict[str, list[Any]] = {}
    lists: dict[tuple[str, str], str] = {}
    for address, (status, held_name, held_attributes, held) in HELD.items():
        people[address] = [address, held_name, None, None, held_attributes, status, status != "pending"]
        lists.update({(address, slug): s for slug, s in held.items()})
    last = {r["email"].lower(): r for r in rows}
    consents = []
    created = 0
    for key, row in last.items():
        if key == SUPPRESSED:
            continue
        name, agency, attributes = row.get("name"), row.get("agency"), row.get("attributes") or {}
        person = people.get(key)
        if person is None:
            created += 1
            people[key] = [row["email"], name or "", agency, None, attributes, "active", True]
        elif person[5] in ("pending", "active"):
            person[1] = name or person[1]
            person[2] = agency or person[2]
            person[4] = {**person[4], **attributes}
            person[5], person[6] = "active", True
        else:
            continue
        email = people[key][0]
        slugs = tuple(dict.fromkeys(row["lists"]))
        for slug in slugs:
            if lists.get((email, slug), "pending") == "pending":
                lists[(email, slug)] = "confirmed"
        consents.append((email, slugs))
    members = len(consents)
    state = ([tuple(p) for p in sorted(people.values(), key=lambda p: p[0])],
             sorted((e, slug, s) for (e, slug), s in lists.items()), sorted(consents))
    return (created, members - created, len(rows) - members), state


def _check(runner: asyncio.Runner, db: Database, rows: list[Row]) -> None:
    expected = _expected(rows)
    for batch_rows in (1, 2, 3, 10_000):
        assert runner.run(_imported(db, rows, batch_rows)) == expected, batch_rows


@pytest.fixture
def demo_database(database_url: str) -> str:
    """The test's database with the demo taxonomy, written before the test's own event loop starts."""
    async def load() -> None:
        db = await open_database(database_url, pool_size=1)
        try:
            await load_demo(db)
        finally:
            await db.close()

    asyncio.run(load())
    return database_url


def _scenarios(demo_database: str, scenarios: list[list[Row]]) -> None:
    with asyncio.Runner() as runner:
        db = runner.run(open_database(demo_database, pool_size=1))
        try:
            for rows in scenarios:
                _check(runner, db, rows)
        finally:
            runner.run(db.close())


def test_repeats_across_batches_and_cases_leave_what_one_merge_leaves(demo_database: str) -> None:
    new = {"email": "ann@example.org", "lists": ["newsletter"], "name": "Ann", "attributes": {"team": "b"}}
    _scenarios(demo_database, [
        # A new person, then the same address later (another batch, another case): the later row
        # alone makes them, with its own lists and an empty name.
        [new, {"email": "bob@example.org", "lists": ["training"]}, {"email": "Ann@example.org", "lists": ["training"]}],
        # The later row in a case the earlier batch did not write.
        [{"email": "Ann@example.org", "lists": ["training"]}, new, {"email": "dan@example.org", "lists": ["training"]}],
        # A held reader named twice: the last row, merged once, one consent record.
        [{"email": "HELD@example.org", "lists": ["training"], "name": "First"},
         {"email": "bob@example.org", "lists": ["newsletter"]},
         {"email": "held@example.org", "lists": ["practice-reviews"], "attributes": {"fte": 0.5}}],
        # Known people after batches of new ones: a batch that follows new people only is sent as
        # new people only (subscribers-import-ids, then COPY), fails on the known people and goes again.
        [new, {"email": "bob@example.org", "lists": ["training"]}, {"email": "dan@example.org", "lists": ["training"]},
         {"email": "Held@example.org", "lists": ["practice-reviews"], "name": "Hal"},
         {"email": "pending@example.org", "lists": ["newsletter"]}, {"email": "left@example.org", "lists": ["training"]},
         {"email": "ANN@example.org", "lists": ["newsletter"], "agency": "police"}],
        # Suppressed, unsubscribed and pending addresses among repeats.
        [{"email": "gone@example.org", "lists": ["newsletter"]}, {"email": "left@example.org", "lists": ["training"]},
         {"email": "pending@example.org", "lists": ["newsletter"]}, {"email": "Gone@example.org", "lists": ["training"]},
         {"email": "pending@example.org", "lists": ["training", "newsletter"], "name": "Pat"}],
    ])


@pytest.mark.slow
def test_any_rows_in_any_batches_leave_what_the_rules_say(demo_database: str) -> None:
    with asyncio.Runner() as runner:
        db = runner.run(open_database(demo_database, pool_size=1))
        try:
            @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(rows_strategy)
            @example([{"email": "ann@example.org", "lists": ["newsletter"]},
                      {"email": "ANN@example.org", "lists": ["training"]},
                      {"email": "ann@example.org", "lists": ["practice-reviews"]}])
            def check(rows: list[Row]) -> None:
                _check(runner, db, rows)

            check()
        finally:
            runner.run(db.close())


def test_a_batch_is_sent_as_a_line_per_row_and_an_address_once() -> None:
    # An address written twice keeps its first row's place and its last row's values; absent
    # values are empty lines (read as NULL by the statement).
    batch = _Batch()
    batch.add(2, "ann@example.org", "Ann", "police", None, None, "{newsletter}", "{1}")
    batch.add(3, "bob@example.org", None, None, "practitioner", '{"team":"x"}', "{training}", "{2}")
    batch.add(4, "ann@example.org", None, None, None, None, "{training,newsletter}", "{2,1}")
    assert batch.columns() == ("4\n3", "ann@example.org\nbob@example.org", "\n", "\n", "\npractitioner",
                               '\n{"team":"x"}', "{training,newsletter}\n{training}", "{2,1}\n{2}")


def test_a_batch_value_with_a_line_break_is_never_sent() -> None:
    # Checked values cannot hold one (names and addresses refuse control characters); one that
    # did would shift its column's later values onto other people.
    batch = _Batch()
    batch.add(2, "ann@example.org", "Ann\nSmith", None, None, None, "{newsletter}", "{1}")
    batch.add(3, "bob@example.org", "Bob", None, None, None, "{newsletter}", "{1}")
    with pytest.raises(ValueError, match="line break"):
        batch.columns()
