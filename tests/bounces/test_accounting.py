"""Bounce accounting (DESIGN.md "Delivery guarantees"): delay warnings are recorded but never a
bounce, one copy counts at most one bounce however many reports arrive, and a 5xx at send time is
classified like any report. Reports go in through the real raw-bounce API, tied by VERP tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.bounces.ingest import record_send_refusal
from service.bounces.policy import BounceFacts, apply_bounce
from service.db.pool import Database, open_database
from service.settings import Settings
from service.tokens import Purpose, TokenSigner
from tests.bounces.sends import dsn_mail, fetch, reader_state, sent_edition, value
from tests.support.seed import seed_readers

Client = AsyncTestClient[Litestar]
RFC822 = {"Content-Type": "message/rfc822"}
DELAYED = {"action": "delayed", "status": "4.4.1", "diagnostic": "connect to mx.example.org: Connection timed out"}
EXPIRED = {"action": "failed", "status": "4.4.7", "diagnostic": "451 4.4.1 mx.example.org: Connection timed out"}
FULL = {"action": "failed", "status": "4.2.2", "diagnostic": "452 4.2.2 Mailbox full"}
UNKNOWN = {"action": "failed", "status": "5.1.1", "diagnostic": "550 5.1.1 User unknown"}


def _verp(settings: Settings, delivery_id: int) -> str:
    return f"bounce+{TokenSigner(settings.secret_keys).sign(Purpose.VERP, delivery_id)}@news.example.org"


async def _report(client: Client, headers: dict[str, str], settings: Settings, copy: int, email: str,
                  fields: dict[str, str]) -> list[tuple[str, bool]]:  # fmt: skip
    raw = dsn_mail(_verp(settings, copy), email, **fields)
    response = await client.post("/v1/bounces/raw", content=raw, headers={**headers, **RFC822})
    assert response.status_code == 200, response.text
    return [(e["kind"], e["matched"]) for e in response.json()["events"]]


async def _events(url: str) -> list[tuple[int, str, bool]]:
    rows = await fetch(url, "SELECT delivery_id, kind, counted FROM bounce_events ORDER BY id")
    return [(r["delivery_id"], r["kind"], r["counted"]) for r in rows]


async def test_delay_warnings_are_recorded_but_never_count(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    copies = [(await sent_edition(url, [alice]))[1][0] for _ in range(3)]
    for copy in copies:  # three editions Postfix is still retrying: three warnings
        assert await _report(client, admin_headers, settings, copy, alice, DELAYED) == [("delayed", True)]
    assert await reader_state(url, alice) == {
        "status": "active", "soft_bounces": 0, "suppressed": None, "lists": ["confirmed"],
    }  # fmt: skip
    assert await _events(url) == [(copy, "delayed", False) for copy in copies]


async def test_a_warning_and_the_later_expiry_of_one_copy_count_once(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (copy,) = await sent_edition(url, [alice])
    assert await _report(client, admin_headers, settings, copy, alice, DELAYED) == [("delayed", True)]
    assert await _report(client, admin_headers, settings, copy, alice, EXPIRED) == [("soft", True)]
    assert (await reader_state(url, alice))["soft_bounces"] == 1
    assert await _events(url) == [(copy, "delayed", False), (copy, "soft", True)]


async def test_the_same_report_three_times_counts_once(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (copy,) = await sent_edition(url, [alice])
    for _ in range(3):  # the soft-bounce limit is 3: three counts would suppress
        assert await _report(client, admin_headers, settings, copy, alice, FULL) == [("soft", True)]
    state = await reader_state(url, alice)
    assert (state["status"], state["soft_bounces"], state["suppressed"]) == ("active", 1, None)
    assert [counted for _, _, counted in await _events(url)] == [True, False, False]


async def test_a_hard_bounce_after_a_soft_one_upgrades_the_copy_without_counting_twice(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (copy,) = await sent_edition(url, [alice])
    assert await _report(client, admin_headers, settings, copy, alice, FULL) == [("soft", True)]
    assert await _report(client, admin_headers, settings, copy, alice, UNKNOWN) == [("hard", True)]
    state = await reader_state(url, alice)
    assert (state["status"], state["soft_bounces"], state["suppressed"]) == ("bounced", 1, "hard_bounce")
    assert await _events(url) == [(copy, "soft", True), (copy, "hard", False)]


async def test_soft_bounces_of_different_copies_still_add_up(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    for _ in range(3):
        _, (copy,) = await sent_edition(url, [alice])
        assert await _report(client, admin_headers, settings, copy, alice, FULL) == [("soft", True)]
    state = await reader_state(url, alice)
    assert (state["status"], state["soft_bounces"], state["suppressed"]) == ("bounced", 3, "soft_bounce")


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = await open_database(settings.database_url or "", pool_size=2, run_migrations=False)
    try:
        yield database
    finally:
        await database.close()


@pytest.mark.parametrize(
    ("reply", "kind", "suppressed"),
    [
        ("550 5.1.1 <reader1@example.org>: Recipient address rejected: User unknown", "hard", "hard_bounce"),
        ("552 5.2.2 Mailbox full", "soft", None),
        ("552 Requested mail action aborted: exceeded storage allocation", "soft", None),
    ],
)
async def test_a_refusal_at_send_time_is_classified_like_any_report(
    db: Database, settings: Settings, reply: str, kind: str, suppressed: str | None
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (copy,) = await sent_edition(url, [alice])
    async with db.transaction() as conn:
        assert await record_send_refusal(conn, db.q, settings, copy, reply)
    assert [(d, k) for d, k, _ in await _events(url)] == [(copy, kind)]
    assert (await reader_state(url, alice))["suppressed"] == suppressed


async def test_two_reports_of_one_copy_at_once_count_once_and_both_succeed(db: Database, settings: Settings) -> None:
    """The second report waits for the first (the copy is locked) instead of failing on the unique index."""
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (copy,) = await sent_edition(url, [alice])
    facts = BounceFacts(email="", kind="soft", status="4.2.2", source="api-raw", delivery_id=copy)
    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        first_tx = first.transaction()
        await first_tx.start()
        assert await apply_bounce(first, db.q, settings, facts)

        async def other() -> bool:
            async with second.transaction():
                return await apply_bounce(second, db.q, settings, facts)

        racing = asyncio.create_task(other())
        await _blocked_on_a_lock(url, second.get_server_pid())
        await first_tx.commit()
        assert await racing
    finally:
        await first.close()
        await second.close()
    assert [counted for _, _, counted in await _events(url)] == [True, False]
    assert (await reader_state(url, alice))["soft_bounces"] == 1


async def _blocked_on_a_lock(url: str, pid: int) -> None:
    """Return once backend ``pid`` waits on a lock (polled: no fixed delay is assumed)."""
    for _ in range(6000):
        if await value(url, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second report never waited for the first")
