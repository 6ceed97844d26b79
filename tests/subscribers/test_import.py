"""Importing people who consented elsewhere: CSV and NDJSON, line-numbered errors, suppressions, batches."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.db.pool import Database
from service.settings import Settings
from service.subscribers.import_formats import ndjson_rows
from service.subscribers.importer import import_stream
from service.subscribers.validation import normalise_email
from tests.subscribers.conftest import Client, rows, value
from tests.subscribers.test_unsubscribe import confirmed_reader, subscription_statuses

pytestmark = pytest.mark.usefixtures("demo")
Headers = dict[str, str]
CSV = {"content-type": "text/csv; charset=utf-8"}
NDJSON = {"content-type": "application/x-ndjson"}


async def _import(client: Client, headers: Headers, body: bytes, kind: dict[str, str]) -> dict[str, object]:
    response = await client.post("/v1/subscribers/import", content=body, headers={**headers, **kind})
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_csv(client: Client, db: Database, admin_headers: Headers) -> None:
    await db.pool.execute("INSERT INTO suppressions (email_hash, email, reason) "
                          "VALUES (email_hash('gone@example.org'), NULL, 'erasure')")
    pending = await db.pool.fetchval(
        "INSERT INTO subscribers (email, name) VALUES ('pending@example.org', 'Old name') RETURNING id")
    left = await confirmed_reader(db, "left@example.org", ("newsletter",))
    await db.pool.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE id = $1", left)
    await db.pool.execute("UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id = $1", left)
    body = "\n".join([
        "\ufeffEmail,Name,Agency,Role,Lists,Attributes,Team",
        'ann@example.org,Ann Smith,police,practitioner,newsletter;training,"{""fte"": 0.5}",north',  # 2
        "not-an-address,Bad,,,newsletter,,",  # 3
        'bob@example.org,Bob Jones,health,,newsletter|practice-reviews,,"North\nEast"',  # 4-5
        "cat@example.org,Cat,,,nonsense,,",  # 6
        "",  # 7: blank
        "dan@example.org,Dan,mi5,,newsletter,,",  # 8
        "GONE@example.org,Gone,,,newsletter,,",  # 9
        "pending@example.org,,,,training,,",  # 10
        "left@example.org,Left,,,newsletter,,",  # 11
        "eve@example.org,Eve,,,newsletter,,,too,many",  # 12
        "ann@EXAMPLE.org,Ann Again,,,newsletter,,",  # 13: the last row for an address wins
        "fay@example.org,Fay,,,,,",  # 14: no list
        "gus@example.org,Gus,,,newsletter,[1],",  # 15: attributes not an object
    ]).encode() + b"\nhal@example.org,H\xe9l,,,newsletter,,\n"  # 16: Latin-1, not UTF-8
    result = await _import(client, admin_headers, body, CSV)
    assert result["invalid"] == [
        {"line": 3, "detail": "email: Enter a valid e-mail address, like name@example.org "
                              "(An email address must have an @-sign.)."},
        {"line": 6, "detail": "lists: there is no list 'nonsense'"},
        {"line": 8, "detail": "agency: there is no agency 'mi5'"},
        {"line": 12, "detail": "9 cells, but the header names 7 columns"},
        {"line": 14, "detail": "lists: give at least one list slug"},
        {"line": 15, "detail": "attributes: must be a JSON object"},
        {"line": 16, "detail": "not valid UTF-8"},
    ]
    # ann (created), bob (created); pending (updated); gone, left and the first ann row skipped.
    assert (result["created"], result["updated"], result["skipped"], result["invalid_total"]) == (2, 1, 3, 7)

    people = {r["email"]: r for r in await rows(db, "SELECT * FROM subscribers")}
    assert set(people) == {"ann@example.org", "bob@example.org", "pending@example.org", "left@example.org"}
    ann = people["ann@example.org"]
    assert (ann["name"], ann["status"], ann["agency"], ann["role"]) == ("Ann Again", "active", None, None)
    assert ann["confirmed_at"] is not None and ann["attributes"] == {}
    bob = people["bob@example.org"]
    assert (bob["name"], bob["agency"], bob["attributes"]) == ("Bob Jones", "health", {"team": "North\nEast"})
    assert await subscription_statuses(db, bob["id"]) == {"newsletter": "confirmed", "practice-reviews": "confirmed"}
    assert people["pending@example.org"]["status"] == "active"
    assert people["pending@example.org"]["name"] == "Old name", "an empty cell keeps what is there"
    assert people["left@example.org"]["status"] == "unsubscribed", "an import does not override an unsubscribe"
    assert await subscription_statuses(db, left) == {"newsletter": "unsubscribed"}
    assert await subscription_statuses(db, pending) == {"training": "confirmed"}
    consents = await rows(db, "SELECT c.action, c.source, c.lists, s.email FROM consents c "
                              "JOIN subscribers s ON s.id = c.subscriber_id ORDER BY s.email")
    assert [(c["email"], c["action"], c["source"]) for c in consents] == [
        ("ann@example.org", "import", "import"), ("bob@example.org", "import", "import"),
        ("pending@example.org", "import", "import")]


async def test_csv_name_with_a_line_break_is_refused(client: Client, db: Database, admin_headers: Headers) -> None:
    body = b'email,name,lists\nbob@example.org,"Bob\nJones",newsletter\ncat@example.org,Cat,newsletter\n'
    result = await _import(client, admin_headers, body, CSV)
    assert result["invalid"] == [{"line": 2, "detail": "The name cannot contain line breaks or other control characters."}]
    assert result["created"] == 1, "the record after a multi-line cell is read from the right line"


async def test_csv_extra_columns_and_a_json_cell_become_attributes(
    client: Client, db: Database, admin_headers: Headers
) -> None:
    body = b'email,lists,attributes,team,grade\nann@example.org,newsletter,"{""fte"": 0.5, ""team"": ""x""}",north,\n'
    await _import(client, admin_headers, body, CSV)
    assert await value(db, "SELECT attributes FROM subscribers") == {"fte": 0.5, "team": "north"}


async def test_ndjson(client: Client, db: Database, admin_headers: Headers) -> None:
    lines = [
        json.dumps({"email": "ann@example.org", "name": "Ann", "agency": "police", "role": "practitioner",
                    "lists": ["newsletter", "training"], "attributes": {"team": "north"}}),
        "{not json",
        json.dumps(["a", "list"]),
        "",
        json.dumps({"email": "bob@example.org", "lists": ["newsletter"], "colour": "blue"}),
        json.dumps({"email": "cat@example.org", "lists": "newsletter"}),
        json.dumps({"email": "dan@example.org", "lists": ["newsletter"], "name": 7}),
        json.dumps({"email": "eve@example.org", "lists": ["practice-reviews"]}),
    ]
    result = await _import(client, admin_headers, "\r\n".join(lines).encode(), NDJSON)
    assert [i["line"] for i in result["invalid"]] == [2, 3, 5, 6, 7]  # type: ignore[attr-defined]
    assert result["invalid"][1]["detail"] == "a line must hold one JSON object"  # type: ignore[index]
    assert result["invalid"][2]["detail"] == "unknown field(s) colour"  # type: ignore[index]
    assert (result["created"], result["updated"], result["skipped"]) == (2, 0, 0)
    ann = (await rows(db, "SELECT * FROM subscribers WHERE email = 'ann@example.org'"))[0]
    assert (ann["agency"], ann["role"], ann["attributes"], ann["status"]) == (
        "police", "practitioner", {"team": "north"}, "active")
    assert await subscription_statuses(db, ann["id"]) == {"newsletter": "confirmed", "training": "confirmed"}


async def test_batches_and_repeats_across_them(client: Client, db: Database, admin_headers: Headers) -> None:
    emails = [f"p{i}@example.org" for i in range(4500)] + [f"p{i}@example.org" for i in range(100)]
    body = "".join(json.dumps({"email": e, "lists": ["newsletter"]}) + "\n" for e in emails).encode()
    result = await _import(client, admin_headers, body, NDJSON)
    # A repeat is superseded by its last row wherever it falls: counted skipped, not (as when
    # rows were merged in batches) skipped within a batch and updated across two.
    assert (result["created"], result["updated"], result["skipped"], result["invalid"]) == (4500, 0, 100, [])
    assert await value(db, "SELECT count(*) FROM subscribers WHERE status = 'active'") == 4500
    again = await _import(client, admin_headers, body, NDJSON)
    assert (again["created"], again["updated"], again["skipped"]) == (0, 4500, 100)
    assert await value(db, "SELECT count(*) FROM import_staging") == 0, "staged rows never outlive the import"


async def test_a_re_import_rewrites_only_people_whose_details_change(
    client: Client, db: Database, admin_headers: Headers
) -> None:
    body = "".join(json.dumps({"email": f"p{i}@example.org", "name": f"P{i}", "lists": ["newsletter"]}) + "\n"
                   for i in range(3)).encode()
    await _import(client, admin_headers, body, NDJSON)
    before = {r["email"]: r["version"] for r in await rows(db, "SELECT email, xmin::text AS version FROM subscribers")}
    again = await _import(client, admin_headers, body.replace(b'"P1"', b'"Pat"'), NDJSON)
    assert (again["created"], again["updated"], again["skipped"]) == (0, 3, 0), "unchanged people still count"
    after = {r["email"]: r["version"] for r in await rows(db, "SELECT email, xmin::text AS version FROM subscribers")}
    assert [email for email in before if before[email] != after[email]] == ["p1@example.org"]
    assert await value(db, "SELECT name FROM subscribers WHERE email = 'p1@example.org'") == "Pat"
    assert await value(db, "SELECT count(*) FROM consents") == 6, "every import records consent, changed or not"


async def test_new_and_known_people_in_one_import_each_get_their_lists(
    client: Client, db: Database, admin_headers: Headers
) -> None:
    # New people's subscriptions are written without a conflict check, known people's with one:
    # a known reader's pending list is confirmed, a list they left stays left, a new one is added.
    known = await confirmed_reader(db, "known@example.org", ())
    await db.pool.execute("INSERT INTO subscriptions (list_id, subscriber_id, status) SELECT id, $1, "
                          "CASE slug WHEN 'training' THEN 'pending' ELSE 'unsubscribed' END FROM lists "
                          "WHERE slug IN ('training', 'newsletter')", known)
    body = (b"email,lists\nnew@example.org,newsletter;training\n"
            b"known@example.org,newsletter;training;practice-reviews\n")
    result = await _import(client, admin_headers, body, CSV)
    assert (result["created"], result["updated"], result["skipped"]) == (1, 1, 0)
    assert await subscription_statuses(db, known) == {
        "newsletter": "unsubscribed", "training": "confirmed", "practice-reviews": "confirmed"}
    new = await value(db, "SELECT id FROM subscribers WHERE email = 'new@example.org'")
    assert await subscription_statuses(db, new) == {"newsletter": "confirmed", "training": "confirmed"}
    assert await value(db, "SELECT count(*) FROM consents WHERE action = 'import'") == 2


async def test_a_re_import_moves_people_to_another_agency_and_role(
    client: Client, db: Database, admin_headers: Headers
) -> None:
    first = b"email,agency,role,lists\nann@example.org,police,practitioner,newsletter\n"
    await _import(client, admin_headers, first, CSV)
    again = await _import(client, admin_headers, first.replace(b"police", b"health").replace(b"practitioner", b""), CSV)
    assert (again["created"], again["updated"]) == (0, 1)
    assert await value(db, "SELECT agency || '/' || role FROM subscribers") == "health/practitioner"


async def test_a_nul_in_attributes_refuses_only_its_line(client: Client, db: Database, admin_headers: Headers) -> None:
    lines = [json.dumps({"email": "ann@example.org", "lists": ["newsletter"], "attributes": {"team": "a\u0000b"}}),
             json.dumps({"email": "bob@example.org", "lists": ["newsletter"], "attributes": {"note": "\\u0000"}})]
    result = await _import(client, admin_headers, "\n".join(lines).encode(), NDJSON)
    assert result["invalid"] == [{"line": 1, "detail": "attributes: text cannot contain the NUL character (\\u0000)"}]
    assert await value(db, "SELECT attributes FROM subscribers") == {"note": "\\u0000"}, "a backslash is no NUL"


@pytest.mark.parametrize(
    ("body", "kind", "status"),
    [
        (b"email,lists\nann@example.org,newsletter\n", {"content-type": "application/json"}, 415),
        (b"name,lists\nAnn,newsletter\n", CSV, 422),
        (b"email,email\nann@example.org,x\n", CSV, 422),
        (b"", CSV, 422),
        (b"x" * (1024 * 1024 + 10), NDJSON, 413),
    ],
)
async def test_unreadable_bodies_are_refused_and_write_nothing(
    client: Client, db: Database, admin_headers: Headers, body: bytes, kind: dict[str, str], status: int
) -> None:
    response = await client.post("/v1/subscribers/import", content=body, headers={**admin_headers, **kind})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await value(db, "SELECT count(*) FROM subscribers") == 0


async def test_a_broken_line_at_the_end_rolls_everything_back(
    client: Client, db: Database, admin_headers: Headers
) -> None:
    good = "".join(json.dumps({"email": f"p{i}@example.org", "lists": ["newsletter"]}) + "\n" for i in range(3000))
    response = await client.post("/v1/subscribers/import", content=good.encode() + b"y" * (1024 * 1024 + 10),
                                 headers={**admin_headers, **NDJSON})
    assert response.status_code == 413
    assert await value(db, "SELECT count(*) FROM subscribers") == 0, "the first batch is not left behind"


async def test_import_needs_the_write_scope(client: Client, db: Database) -> None:
    from tests.subscribers.test_api import key_with

    reader = await key_with(db, "subscribers:read")
    response = await client.post("/v1/subscribers/import", content=b"email,lists\n", headers={**reader, **CSV})
    assert response.status_code == 403


async def test_people_an_import_merges_stay_locked_until_it_ends(db: Database, settings: Settings) -> None:
    # An unsubscribe that ran while the import was still open could miss the lists the import
    # writes; it must wait for the import instead, even for a reader the import leaves unchanged.
    await confirmed_reader(db, "same@example.org", ("newsletter",))
    await confirmed_reader(db, "changed@example.org", ("newsletter",))

    async def body() -> AsyncIterator[bytes]:
        yield (json.dumps({"email": "same@example.org", "name": "Ann", "lists": ["newsletter"]}) + "\n"
               + json.dumps({"email": "changed@example.org", "name": "Cat", "lists": ["training"]}) + "\n").encode()

    importing, other = await asyncpg.connect(settings.database_url), await asyncpg.connect(settings.database_url)
    try:
        async with importing.transaction():
            result = await import_stream(importing, db.q, ndjson_rows, body())
            assert (result.created, result.updated) == (0, 2)
            for email in ("same@example.org", "changed@example.org"):
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await other.execute("SELECT FROM subscribers WHERE email = $1 FOR NO KEY UPDATE NOWAIT", email)
        await other.execute("SELECT FROM subscribers FOR NO KEY UPDATE NOWAIT")
    finally:
        await importing.close()
        await other.close()


@pytest.mark.parametrize("analysed", [True, False])
async def test_a_merge_planned_on_stale_statistics_uses_hash_joins(
    db: Database, settings: Settings, analysed: bool
) -> None:
    # While autovacuum or another import holds the staging table, ANALYZE is skipped and the
    # statistics describe an earlier import, in which this one's rows look absent: a plan for
    # one row that met 100,000 looped over them for each (minutes). The merge then hashes.
    async def body() -> AsyncIterator[bytes]:
        yield "".join(json.dumps({"email": f"p{i}@example.org", "lists": ["newsletter"]}) + "\n"
                      for i in range(60)).encode()

    importing, holder = await asyncpg.connect(settings.database_url), await asyncpg.connect(settings.database_url)
    try:
        for _ in range(2):  # new people, then a re-import whose staged rows are analysed
            async with importing.transaction():
                await import_stream(importing, db.q, ndjson_rows, body())
        async with holder.transaction():
            if not analysed:
                await holder.execute("LOCK TABLE import_staging IN SHARE UPDATE EXCLUSIVE MODE")
            async with importing.transaction():
                result = await import_stream(importing, db.q, ndjson_rows, body())
                assert (result.created, result.updated) == (0, 60)
                assert await importing.fetchval("SELECT current_setting('enable_nestloop')") == (
                    "on" if analysed else "off")
    finally:
        await importing.close()
        await holder.close()


async def test_imports_side_by_side_do_not_wait_for_each_other(db: Database, settings: Settings) -> None:
    async def body(prefix: str) -> AsyncIterator[bytes]:
        yield "".join(json.dumps({"email": f"{prefix}{i}@example.org", "lists": ["newsletter"]}) + "\n"
                      for i in range(3)).encode()

    first, second = await asyncpg.connect(settings.database_url), await asyncpg.connect(settings.database_url)
    try:
        async with first.transaction():
            await import_stream(first, db.q, ndjson_rows, body("a"))
            async with second.transaction():
                beside = asyncio.ensure_future(import_stream(second, db.q, ndjson_rows, body("b")))
                for _ in range(3000):
                    if beside.done():
                        break
                    if await value(db, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                                  second.get_server_pid()):
                        beside.cancel()
                        raise AssertionError("the second import waited for the first to finish")
                    await asyncio.sleep(0.01)
                assert (await beside).created == 3
    finally:
        await first.close()
        await second.close()
    assert await value(db, "SELECT count(*) FROM subscribers") == 6


@pytest.mark.parametrize("path", ["copy", "look-up"])
async def test_values_reach_the_database_as_written(
    client: Client, db: Database, admin_headers: Headers, path: str
) -> None:
    # New people go by COPY (import_copy.CopyRows: backslashes doubled, \\N is NULL); after a batch
    # meets someone held, as one text per column, a line per row (importer._Batch.columns), split by
    # the statement. Either way quotes, braces, commas, backslashes, the word NULL and international
    # addresses are plain text.
    names = ['O\'Brien, "Jr" {x} \\ y', "NULL", "", "Zoë \\N", "tab\\t"]
    addresses = [f"r{i}@example.org" for i in range(len(names) - 1)] + ["zoë.ünïcode@bücher.example"]
    held = []
    if path == "look-up":
        held = [json.dumps({"email": "held@example.org", "lists": ["newsletter"]}) + "\n"]
        await confirmed_reader(db, "held@example.org", ("newsletter",))
    body = "".join(held + [json.dumps({"email": address, "name": name, "lists": ["newsletter"],
                                       "attributes": {"note": name} if name else {}}) + "\n"
                           for address, name in zip(addresses, names, strict=True)])
    assert (await _import(client, admin_headers, body.encode(), NDJSON))["created"] == len(names)
    stored = await rows(db, "SELECT email, name, attributes, agency FROM subscribers "
                            "WHERE email <> 'held@example.org'")
    assert sorted((r["email"], r["name"], r["attributes"], r["agency"]) for r in stored) == sorted(
        (normalise_email(address), name, {"note": name} if name else {}, None)
        for address, name in zip(addresses, names, strict=True))


async def test_people_a_fresh_batch_creates_take_their_ids_from_the_identity(
    client: Client, db: Database, admin_headers: Headers
) -> None:
    # subscribers-import-ids draws each new person's id before the COPY (so that their lists and consent
    # record need not find them again by address); a reader signing up after them takes the next.
    body = "email,lists\n" + "".join(f"r{i}@example.org,newsletter;training\n" for i in range(5))
    result = await _import(client, admin_headers, body.encode(), CSV)
    assert result["created"] == 5
    later = await db.pool.fetchval("INSERT INTO subscribers (email) VALUES ('later@example.org') RETURNING id")
    imported = await rows(db, "SELECT s.id, s.email, count(DISTINCT x.list_id) AS lists, count(DISTINCT c.id) AS consents "
                              "FROM subscribers s JOIN subscriptions x ON x.subscriber_id = s.id "
                              "JOIN consents c ON c.subscriber_id = s.id GROUP BY 1, 2 ORDER BY 2")
    assert [(r["email"], r["lists"], r["consents"]) for r in imported] == [
        (f"r{i}@example.org", 2, 1) for i in range(5)]
    assert later > max(r["id"] for r in imported)


async def test_people_a_batch_creates_are_not_locked_by_the_checks_of_their_own_lists(
    client: Client, db: Database, admin_headers: Headers
) -> None:
    # A batch of new people runs from a savepoint; the reference checks of their lists and consent
    # records know those rows for the transaction's own (migration 0017, for a batch of 64 people
    # or more) and lock none of them: a lock is a WAL record and a rewrite of each person's header,
    # a tenth of a large import.
    body = "email,lists\n" + "".join(f"r{i}@example.org,newsletter;training\n" for i in range(100))
    assert (await _import(client, admin_headers, body.encode(), CSV))["created"] == 100
    assert await value(db, "SELECT count(*) FILTER (WHERE xmax <> 0) FROM subscribers") == 0
    assert await value(db, "SELECT count(*) FROM subscriptions") == 200


async def test_an_imported_reader_carries_the_hash_of_the_lower_cased_address(
    client: Client, db: Database, admin_headers: Headers
) -> None:
    # email_hash() is PL/pgSQL since migration 0016 (cheaper per new reader); the hashes it gives,
    # stored on every reader and matched against suppressions, must stay those already stored.
    address = "Ann.Smith+News@Example.ORG"
    await _import(client, admin_headers, f"email,lists\n{address},newsletter\n".encode(), CSV)
    expected = hashlib.sha256(address.lower().encode()).digest()
    assert await value(db, "SELECT email_hash FROM subscribers WHERE lower(email) = lower($1)", address) == expected
    assert await value(db, "SELECT email_hash($1)", address) == expected
    assert await value(db, "SELECT email_hash($1)", "zoë@exämple.org") == hashlib.sha256("zoë@exämple.org".encode()).digest()


async def test_a_batch_of_new_people_meeting_an_address_written_meanwhile_is_sent_again(
    db: Database, settings: Settings
) -> None:
    # Batches after a batch of new people insert plainly, from a savepoint; an address another
    # transaction commits while the import runs makes such a batch fail, and it is sent again
    # through the look-up: that person is merged, nothing of the failed attempt stays.
    written: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield (json.dumps({"email": "new@example.org", "lists": ["newsletter"]}) + "\n").encode()
        written.append(await confirmed_reader(db, "meanwhile@example.org", ("newsletter",)))
        yield (json.dumps({"email": "other@example.org", "lists": ["training"]}) + "\n"
               + json.dumps({"email": "meanwhile@example.org", "name": "Mia", "lists": ["training"]}) + "\n").encode()

    importing = await asyncpg.connect(settings.database_url)
    try:
        async with importing.transaction():
            result = await import_stream(importing, db.q, ndjson_rows, body(), batch_rows=8)
    finally:
        await importing.close()
    assert (result.created, result.updated, result.skipped) == (2, 1, 0)
    consents = await rows(db, "SELECT s.email, s.name, c.lists FROM consents c "
                              "JOIN subscribers s ON s.id = c.subscriber_id ORDER BY 1")
    assert [tuple(r) for r in consents] == [("meanwhile@example.org", "Mia", ["training"]),
                                            ("new@example.org", "", ["newsletter"]),
                                            ("other@example.org", "", ["training"])]
    assert await subscription_statuses(db, written[0]) == {"newsletter": "confirmed", "training": "confirmed"}


async def test_batches_sent_from_savepoints_stay_within_the_cached_subtransactions(
    db: Database, settings: Settings
) -> None:
    # Past 64 subtransactions PostgreSQL stops keeping a transaction's subtransactions where other
    # sessions' snapshots find them (they then look its rows up in pg_subtrans while it runs);
    # the importer sends at most 48 batches from savepoints, the others through the look-up.
    async def body() -> AsyncIterator[bytes]:
        yield "".join(json.dumps({"email": f"r{i}@example.org", "lists": ["newsletter"]}) + "\n"
                      for i in range(80)).encode()

    importing = await asyncpg.connect(settings.database_url)
    try:
        async with importing.transaction():
            result = await import_stream(importing, db.q, ndjson_rows, body(), batch_rows=1)
            assert result.created == 80
            cached = await db.pool.fetchrow(
                "SELECT x.subxact_count, x.subxact_overflowed FROM pg_stat_get_backend_idset() AS b(id), "
                "pg_stat_get_backend_subxact(b.id) AS x WHERE pg_stat_get_backend_pid(b.id) = $1",
                importing.get_server_pid())
            assert cached is not None and tuple(cached) == (48, False)
    finally:
        await importing.close()
