"""Form sign-ups are decided many at a time (issue 14): what a batch decides is what each alone would,
and the statements, triggers and commits are paid once per batch, not once per person."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import asyncpg
import msgspec
import pytest
from asyncpg.connection import LoggedQuery

from service.db.batches import Batches, Groups
from service.db.pool import Database, open_database
from service.errors import InvalidValue
from service.links import Links
from service.mail.confirmation import ConfirmationMails
from service.settings import Settings
from service.subscribers import lifecycle, signups
from service.subscribers.mails import check_recipient
from service.taxonomy.terms import ListRef
from service.tokens import TokenSigner
from tests.subscribers.conftest import rows, value

pytestmark = pytest.mark.usefixtures("demo")
ACTOR = lifecycle.Actor.of("form", "192.0.2.7", "browser", "v1")


@pytest.fixture
async def logged(settings: Settings) -> AsyncIterator[tuple[Database, list[str]]]:
    """A database handle whose pool holds one connection, and every statement that connection runs."""
    database = await open_database(settings.database_url or "", pool_size=1, run_migrations=False)
    statements: list[str] = []
    async with database.pool.acquire() as conn:
        # asyncpg looks up an array parameter's type once per connection, by statements of its own.
        await conn.fetch(database.q["sign-up-requests-record"], [], [], 1, [], [], 1, [], [])
        await conn.fetch(database.q["sign-up-requests-decide"], [])
        conn.add_query_logger(lambda entry: statements.append(cast(LoggedQuery, entry).query))
    try:
        yield database, statements
    finally:
        await database.close()


async def _lists(db: Database, *slugs: str) -> list[ListRef]:
    found = {r["slug"]: ListRef(r["id"], r["slug"], r["name"], r["public"])
             for r in await rows(db, "SELECT id, slug, name, public FROM lists")}
    return [found[slug] for slug in slugs]


async def _record(db: Database, settings: Settings, email: str, name: str, lists: list[ListRef],
                  client: str = "192.0.2.7") -> int:
    sign_up = lifecycle.SignUp(email=email, name=name, agency=None, role=None, lists=lists)
    recorded = await signups.record(db.pool, db.q, settings, sign_up, ACTOR, client, 0.0)
    assert recorded.request_id is not None
    return recorded.request_id


async def _decide_together(db: Database, settings: Settings, ids: list[int]) -> None:
    """Hand every sign-up over at once, as the background tasks of concurrent answers do."""
    groups = Groups(db, settings)
    await asyncio.gather(*(signups.decide(groups, request_id) for request_id in ids))


async def test_sign_ups_handed_over_together_are_decided_in_one_statement(
    db: Database, settings: Settings, logged: tuple[Database, list[str]]
) -> None:
    newsletter = await _lists(db, "newsletter")
    ids = [await _record(db, settings, f"reader{n}@example.org", f"Reader {n}", newsletter) for n in range(20)]
    handle, statements = logged

    await _decide_together(handle, settings, ids)
    assert [s.split()[0] for s in statements] == ["WITH"], "people, lists, consents and mails: one statement"
    assert await value(db, "SELECT count(*) FROM sign_up_requests") == 0
    assert await value(db, "SELECT count(*) FROM subscribers WHERE status = 'pending'") == 20
    assert await value(db, "SELECT count(*) FROM consents WHERE action = 'subscribe'") == 20
    mailed = {r["recipient"] for r in await rows(db, "SELECT recipient FROM system_mails WHERE kind = 'confirm'")}
    assert mailed == {f"reader{n}@example.org" for n in range(20)}


async def test_sign_ups_answered_together_are_counted_and_recorded_in_one_statement_in_their_order(
    db: Database, settings: Settings, logged: tuple[Database, list[str]]
) -> None:
    limited = msgspec.structs.replace(settings, subscribe_limit_per_client=6, subscribe_limit_per_address=2)
    newsletter = await _lists(db, "newsletter")
    handle, statements = logged
    emails = ["ann@example.org", "bob@example.org", "Ann@example.org", "ann@example.org", "cy@example.org",
              "bob@example.org", "di@example.org", "ed@example.org"]
    attempts = [signups.Attempt(lifecycle.SignUp(email=email, name="", agency=None, role=None, lists=newsletter),
                                ACTOR, "192.0.2.7", 1_000_000.0) for email in emails]

    groups = Groups(handle, limited)
    recorded = await asyncio.gather(*(signups.record_soon(groups, a) for a in attempts))
    assert [s.split()[0] for s in statements] == ["WITH"], statements
    # As one after another: Ann's third try is over her address's limit; the client's 7th and 8th over its own.
    refused = [(r.request_id is None, r.retry_after) for r in recorded]
    assert refused == [(False, None)] * 3 + [(True, 800)] + [(False, None)] * 2 + [(True, 200)] * 2
    waiting = [r["email"] for r in await rows(db, "SELECT email FROM sign_up_requests ORDER BY id")]
    assert waiting == ["ann@example.org", "bob@example.org", "Ann@example.org", "cy@example.org",
                       "bob@example.org"]
    assert [r.request_id for r in recorded if r.request_id is not None] == [
        r["id"] for r in await rows(db, "SELECT id FROM sign_up_requests ORDER BY id")], "each answer knows its own"
    counts = {r["bucket"].split(":")[0]: r["hits"] for r in await rows(
        db, "SELECT bucket, hits FROM rate_limits WHERE bucket LIKE 'subscribe-client:%'")}
    assert counts == {"subscribe-client": 8}, "every attempt counts against its client, refused or not"
    assert await value(db, "SELECT sum(hits) FROM rate_limits WHERE bucket LIKE 'subscribe-address:%'") == 6


async def test_a_batch_decides_each_sign_up_as_it_would_alone(
    db: Database, settings: Settings, logged: tuple[Database, list[str]]
) -> None:
    newsletter, training = await _lists(db, "newsletter", "training")
    active = await value(db, "INSERT INTO subscribers (email, name, status) VALUES ('al@example.org', 'Al', 'active') "
                             "RETURNING id")
    await db.pool.execute("INSERT INTO subscriptions (list_id, subscriber_id, status) VALUES ($1, $2, 'confirmed')",
                          newsletter.id, active)
    pending = await value(db, "INSERT INTO subscribers (email, name) VALUES ('pat@example.org', 'Old') RETURNING id")
    await db.pool.execute("INSERT INTO suppressions (email_hash, reason) VALUES (email_hash('sup@example.org'), 'manual')")
    ids = [
        await _record(db, settings, "new@example.org", "New", [training, newsletter]),
        await _record(db, settings, "AL@example.org", "Not Al", [newsletter]),  # confirmed already: nothing new
        await _record(db, settings, "al@example.org", "Not Al", [newsletter, training]),  # one list more
        await _record(db, settings, "pat@example.org", "Pat", [newsletter]),  # pending: takes the newest details
        await _record(db, settings, "sup@example.org", "Sup", [newsletter]),  # suppressed: nothing at all
    ]
    handle, _ = logged

    await _decide_together(handle, settings, ids)
    assert await value(db, "SELECT count(*) FROM sign_up_requests") == 0
    people = {r["email"]: (r["name"], r["status"]) for r in await rows(db, "SELECT email, name, status FROM subscribers")}
    assert people == {"new@example.org": ("New", "pending"), "al@example.org": ("Al", "active"),
                      "pat@example.org": ("Pat", "pending")}
    lists = {(r["email"], r["slug"]): r["status"] for r in await rows(
        db, "SELECT s.email, l.slug, sub.status FROM subscriptions sub JOIN subscribers s ON s.id = sub.subscriber_id "
            "JOIN lists l ON l.id = sub.list_id")}
    assert lists == {("new@example.org", "training"): "pending", ("new@example.org", "newsletter"): "pending",
                     ("al@example.org", "newsletter"): "confirmed", ("al@example.org", "training"): "pending",
                     ("pat@example.org", "newsletter"): "pending"}
    consents = sorted((r["email"], r["lists"], r["source"], r["ip"], r["wording_version"]) for r in await rows(
        db, "SELECT s.email, c.lists, c.source, host(c.ip) AS ip, c.wording_version FROM consents c "
            "JOIN subscribers s ON s.id = c.subscriber_id"))
    assert consents == [("al@example.org", ["training"], "form", "192.0.2.7", "v1"),
                        ("new@example.org", ["training", "newsletter"], "form", "192.0.2.7", "v1"),
                        ("pat@example.org", ["newsletter"], "form", "192.0.2.7", "v1")]
    mails = {r["recipient"]: (r["subscriber_id"], r["lists"], r["message"])
             for r in await rows(db, "SELECT recipient, subscriber_id, lists, message FROM system_mails")}
    people = {r["email"]: r["id"] for r in await rows(db, "SELECT id, email FROM subscribers")}
    assert mails == {"al@example.org": (people["al@example.org"], ["Training and events"], None),
                     "new@example.org": (people["new@example.org"], ["Training and events", "Partnership newsletter"], None),
                     "pat@example.org": (people["pat@example.org"], ["Partnership newsletter"], None)}, "only the lists waiting"
    assert pending == await value(db, "SELECT id FROM subscribers WHERE email = 'pat@example.org'")


async def test_a_second_sign_up_for_an_address_waits_for_the_next_batch(
    db: Database, settings: Settings, logged: tuple[Database, list[str]]
) -> None:
    newsletter = await _lists(db, "newsletter")
    first = await _record(db, settings, "di@example.org", "Di", newsletter)
    ids = [first, await _record(db, settings, "Di@Example.org", "Diana", newsletter, client="192.0.2.8")]
    handle, statements = logged

    # One statement cannot change a person twice: the later one is decided in a batch of its own.
    await signups._decide_all(handle, ids)
    assert len(statements) == 2, statements
    assert await value(db, "SELECT count(*) FROM sign_up_requests") == 0
    assert await value(db, "SELECT name FROM subscribers WHERE lower(email) = 'di@example.org'") == "Diana"
    assert await value(db, "SELECT count(*) FROM consents") == 2
    assert await value(db, "SELECT count(*) FROM system_mails") == 2


async def test_a_sign_up_that_cannot_be_decided_is_dropped_and_the_rest_of_its_batch_decided(
    db: Database, settings: Settings, logged: tuple[Database, list[str]]
) -> None:
    newsletter = await _lists(db, "newsletter")
    ids = [await _record(db, settings, f"ok{n}@example.org", "Ok", newsletter) for n in range(3)]
    # A list deleted between the answer and the decision: its reference check refuses the whole statement.
    gone = ListRef(id=999_999, slug="gone", name="Gone", public=True)
    ids.insert(1, await _record(db, settings, "gone@example.org", "Gone", [gone]))
    handle, _ = logged

    assert await signups._decide_all(handle, ids) == 4
    assert await value(db, "SELECT count(*) FROM sign_up_requests") == 0
    mailed = {r["recipient"] for r in await rows(db, "SELECT recipient FROM system_mails")}
    assert mailed == {"ok0@example.org", "ok1@example.org", "ok2@example.org"}
    assert await value(db, "SELECT count(*) FROM subscribers WHERE email = 'gone@example.org'") == 0


ADDRESSES = [
    "ann@example.org", "Ann.Lee+news@Example.ORG", "o'brien@example.org", "josé@example.org", "ann@bücher.example",
    "ann@xn--bcher-kva.example", "ann@localhost", "a@b", "ann example@example.org", "ann@example.org\r\nBcc: x@y.z",
    "ann@example.org\n", "\tann@example.org", "ann", "@example.org", "ann@", "ann@@example.org", "<ann@example.org>",
    "Ann <ann@example.org>", "ann@example.org, bob@example.org", "ann;bob@example.org", 'ann"@example.org',
    "ann@exa mple.org", "ann@[192.0.2.1]", "ann@example..org", "ann@-example.org", "ann@xn--.example",
    "ann@ex\u2028ample.org", "ann@\u00adexample.org", "ann@example.org\x00", "(comment)ann@example.org",
    "ann@" + "a" * 64 + ".example", "ann@ex\u0301ample.org", "ann@\u0627\u0644\u0639\u0631\u0628\u064a\u0629.example",
]


@pytest.mark.parametrize("email", ADDRESSES)
def test_the_address_check_refuses_exactly_what_the_composer_refuses(settings: Settings, email: str) -> None:
    """The form's check composes nothing (the worker composes at send time), so it must be the composer's
    own: what it refuses can never be sent, what it lets through the worker can write."""
    mails = ConfirmationMails(settings, Links(settings, TokenSigner(settings.secret_keys)))
    try:
        mails.compose(1, email, ["Newsletter"])
        composed = True
    except ValueError:
        composed = False
    try:
        check_recipient(email)
        checked = True
    except InvalidValue:
        checked = False
    assert checked == composed


async def test_a_sign_up_that_cannot_be_recorded_fails_alone_and_the_rest_of_its_group_is_recorded(
    db: Database, settings: Settings, logged: tuple[Database, list[str]]
) -> None:
    newsletter = await _lists(db, "newsletter")
    handle, _ = logged
    # PostgreSQL's jsonb refuses \u0000, so this request's record fails; it must not take the others with it.
    bad = lifecycle.Actor.of("form", "192.0.2.7", "agent\x00")
    attempts = [signups.Attempt(lifecycle.SignUp(email=f"p{n}@example.org", name="", agency=None, role=None,
                                                 lists=newsletter), bad if n == 1 else ACTOR, "192.0.2.7", 0.0)
                for n in range(3)]

    groups = Groups(handle, settings)
    outcomes = await asyncio.gather(*(signups.record_soon(groups, a) for a in attempts), return_exceptions=True)
    assert isinstance(outcomes[1], asyncpg.PostgresError), outcomes
    assert all(isinstance(o, signups.Recorded) and o.request_id is not None for o in (outcomes[0], outcomes[2]))
    waiting = [r["email"] for r in await rows(db, "SELECT email FROM sign_up_requests ORDER BY id")]
    assert waiting == ["p0@example.org", "p2@example.org"]


async def test_items_of_a_failed_batch_run_alone_and_only_the_bad_one_fails() -> None:
    ran: list[list[str]] = []

    async def run(items: list[str]) -> list[str]:
        ran.append(items)
        if "bad" in items:
            raise ValueError("bad item")
        return [item.upper() for item in items]

    batches = Batches(run, size=10)
    outcomes = await asyncio.gather(*(batches.submit(item) for item in ["a", "bad", "c"]), return_exceptions=True)
    assert outcomes[0] == "A" and outcomes[2] == "C"
    assert isinstance(outcomes[1], ValueError)
    assert ran == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert await batches.submit("d") == "D", "a later item starts a batch of its own"
