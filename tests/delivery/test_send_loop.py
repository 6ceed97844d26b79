"""Nothing a reader, an edition or a fault does stops the send loop (issue 12, finding 1).

A real worker sends through a real SMTP server (aiosmtpd): international
addresses with and without SMTPUTF8 on offer, an unexpected error on one copy,
a relay that refuses the sender, a relay down longer than the retry window, an
edition past its expiry, a copy whose worker keeps dying, and a worker task
that ends under ``serve``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.background import run_worker
from service.db.pool import open_database
from service.delivery.housekeeping import LOST_LEASE_LIMIT, housekeeping
from service.delivery.transport import Outcome, SmtpTransport
from service.runtime import assemble, runtime_of
from service.settings import Settings
from tests.conftest import replace_settings
from tests.editions.test_posting import edition
from tests.support.seed import seed_readers, seed_taxonomy
from tests.support.smtp import SmtpSink

# The delivery worker end to end against a real SMTP server: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

Client = AsyncTestClient[Litestar]


async def _add_reader(database_url: str, email: str) -> None:
    """A confirmed reader on 'news' stored exactly as given (as older rows or other tools may hold them)."""
    conn = await asyncpg.connect(database_url)
    try:
        await seed_taxonomy(conn)
        subscriber_id = await conn.fetchval(
            "INSERT INTO subscribers (email, name, status, confirmed_at) VALUES ($1, 'Intl', 'active', now()) "
            "RETURNING id", email,
        )
        await conn.execute(
            "INSERT INTO subscriptions (list_id, subscriber_id, status) "
            "SELECT id, $1, 'confirmed' FROM lists WHERE slug = 'news'", subscriber_id,
        )
    finally:
        await conn.close()


async def _post(client: Client, headers: dict[str, str], key: str, **changes: Any) -> int:
    response = await client.post("/v1/editions", json=edition(**changes), headers={**headers, "Idempotency-Key": key})
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


async def _until(client: Client, headers: dict[str, str], edition_id: int, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = (await client.get(f"/v1/editions/{edition_id}", headers=headers)).json()
        if shown["status"] == status:
            return shown
        await asyncio.sleep(0.05)
    raise AssertionError(f"edition {edition_id} never reached {status}: {shown}")


async def _deliveries(client: Client, headers: dict[str, str], edition_id: int) -> list[dict[str, Any]]:
    page = await client.get(f"/v1/editions/{edition_id}/deliveries", headers=headers)
    assert page.status_code == 200
    items: list[dict[str, Any]] = page.json()["items"]
    return items


class _Worker:
    """The real worker on the test's loop, optionally over a given transport."""

    def __init__(self, app: Litestar, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self, transport: Any = None) -> None:
        self.db = await open_database(self.settings.database_url or "", pool_size=4, run_migrations=False)
        self.task = asyncio.create_task(
            run_worker(assemble(self.settings, self.db, metrics=runtime_of(self.app.state).metrics), self.stop,
                       transport=transport)
        )

    async def close(self) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task  # raises if the worker died: every test below also proves it did not
        await self.db.close()


@pytest.fixture
async def worker(app: Litestar, settings: Settings) -> AsyncIterator[_Worker]:
    running = _Worker(app, settings)
    yield running
    await running.close()


@pytest.mark.parametrize("offered", [True, False], ids=["smtputf8-offered", "smtputf8-absent"])
async def test_international_readers_never_stop_the_loop(
    client: Client, app: Litestar, settings: Settings, admin_headers: dict[str, str], offered: bool
) -> None:
    sink = SmtpSink(smtputf8=offered)
    await asyncio.to_thread(sink.start)
    try:
        settings = replace_settings(settings, smtp_url=f"smtp://127.0.0.1:{sink.port}")
        plain = await seed_readers(settings.database_url or "", 3)
        await _add_reader(settings.database_url or "", "üser@example.com")  # needs SMTPUTF8
        await _add_reader(settings.database_url or "", "reader@bücher.example")  # an older row, Unicode domain
        running = _Worker(app, settings)
        await running.start()
        try:
            first = await _post(client, admin_headers, "intl-1")
            shown = await _until(client, admin_headers, first, "done")
            # The loop went on: a second edition after the international copies is delivered too.
            second = await _post(client, admin_headers, "intl-2", subject="December briefing")
            again = await _until(client, admin_headers, second, "done")
        finally:
            await running.close()
        received = {r.rcpt_tos[0]: r for r in sink.received}
        for address in plain:
            assert address in received
        # The Unicode domain goes out in its ASCII form, with no SMTPUTF8 needed.
        assert "reader@xn--bcher-kva.example" in received
        assert "SMTPUTF8" not in received["reader@xn--bcher-kva.example"].mail_options
        if offered:
            assert shown["sent"] == 5 and again["sent"] == 5
            copy = received["üser@example.com"]
            assert "SMTPUTF8" in copy.mail_options
            assert copy.parsed()["To"] == "Intl <üser@example.com>"
        else:
            assert shown["sent"] == 4 and shown["failed"] == 1 and again["failed"] == 1
            assert "üser@example.com" not in received
            failed = [d for d in await _deliveries(client, admin_headers, first) if d["status"] == "failed"]
            assert "SMTPUTF8" in failed[0]["last_reply"]
            assert failed[0]["attempts"] == 1, "a copy that cannot go is not retried"
    finally:
        await asyncio.to_thread(sink.stop)


class _FailsFor(SmtpTransport):
    """The real SMTP transport, with a fault injected for one recipient (a bug we cannot foresee)."""

    def __init__(self, url: str, victim: str) -> None:
        super().__init__(url)
        self.victim = victim

    async def send(self, envelope_from: str, recipient: str, message: bytes, *, data: bytes | None = None) -> Outcome:
        if recipient == self.victim:
            raise RuntimeError("injected fault")
        return await super().send(envelope_from, recipient, message, data=data)


async def test_an_unexpected_error_fails_that_copy_alone(
    client: Client, settings: Settings, admin_headers: dict[str, str], smtp_sink: SmtpSink, worker: _Worker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    readers = await seed_readers(settings.database_url or "", 4)
    await worker.start(_FailsFor(settings.smtp_url or "", readers[1]))
    edition_id = await _post(client, admin_headers, "fault")
    shown = await _until(client, admin_headers, edition_id, "done")
    assert shown["sent"] == 3 and shown["failed"] == 1
    failed = [d for d in await _deliveries(client, admin_headers, edition_id) if d["status"] == "failed"]
    assert failed[0]["last_reply"] == "internal error: RuntimeError: injected fault"
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == sorted(set(readers) - {readers[1]})
    logged = capsys.readouterr()
    assert "copy_failed_unexpectedly" in logged.out + logged.err and "Traceback" in logged.out + logged.err


async def test_a_sender_the_relay_refuses_pauses_the_edition(
    client: Client, settings: Settings, admin_headers: dict[str, str], smtp_sink: SmtpSink, worker: _Worker
) -> None:
    await seed_readers(settings.database_url or "", 5)
    smtp_sink.mail_reply = "550 5.7.1 Sender address rejected: not owned by user"
    await worker.start()
    edition_id = await _post(client, admin_headers, "refused-sender")
    shown = await _until(client, admin_headers, edition_id, "paused")
    assert "refuses every copy" in shown["status_reason"] and "5.7.1" in shown["status_reason"]
    assert shown["failed"] == 0 and shown["queued"] == 5, "no copy is spent on a shared problem"
    for delivery in await _deliveries(client, admin_headers, edition_id):
        assert delivery["attempts"] == 0 and delivery["status"] == "queued"
    # Once the operator fixed the sender, resuming delivers everything.
    smtp_sink.mail_reply = None
    assert (await client.post(f"/v1/editions/{edition_id}/resume", headers=admin_headers)).status_code == 200
    shown = await _until(client, admin_headers, edition_id, "done")
    assert shown["sent"] == 5 and shown["status_reason"] is None


async def test_temporary_failures_retry_within_the_window_then_give_up(
    client: Client, app: Litestar, settings: Settings, admin_headers: dict[str, str], smtp_sink: SmtpSink
) -> None:
    readers = await seed_readers(settings.database_url or "", 2)
    smtp_sink.default_reply = "451 4.3.0 Relay busy"
    # The default window (72 h) keeps retrying a failing relay; a window of a second does not.
    for window_hours, key, expected in ((72.0, "long", "queued"), (0.0003, "short", "failed")):
        windowed = replace_settings(settings, retry_for_hours=window_hours)
        running = _Worker(app, windowed)
        await running.start()
        edition_id = await _post(client, admin_headers, key)
        deadline = time.monotonic() + 20
        while True:
            deliveries = await _deliveries(client, admin_headers, edition_id)
            if all(d["attempts"] >= 1 and d["status"] != "sending" for d in deliveries) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        await running.close()
        assert [d["status"] for d in deliveries] == [expected] * len(readers), deliveries
        if expected == "failed":
            assert all(d["last_reply"].startswith("gave up after 1 tries: 451") for d in deliveries)


async def test_copies_past_the_editions_expiry_are_skipped(
    client: Client, settings: Settings, admin_headers: dict[str, str], smtp_sink: SmtpSink, worker: _Worker
) -> None:
    await seed_readers(settings.database_url or "", 3)
    expires = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    edition_id = await _post(client, admin_headers, "expiring", expires_at=expires)
    await asyncio.sleep(1.2)  # the edition's content is no longer timely when the worker gets to it
    await worker.start()
    shown = await _until(client, admin_headers, edition_id, "done")
    assert shown["skipped"] == 3 and shown["sent"] == 0 and not smtp_sink.received
    assert {d["last_reply"] for d in await _deliveries(client, admin_headers, edition_id)} == {"expired"}


async def test_expires_at_is_checked_when_posted(
    client: Client, settings: Settings, admin_headers: dict[str, str]
) -> None:
    await seed_readers(settings.database_url or "", 1)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for value, words in ((past, "later than"), ("2030-01-01T00:00:00", "time zone")):
        answer = await client.post("/v1/editions", json=edition(expires_at=value),
                                   headers={**admin_headers, "Idempotency-Key": f"exp-{words}"})
        assert answer.status_code == 422 and words in answer.json()["detail"]


async def test_a_copy_whose_worker_keeps_dying_fails(settings: Settings) -> None:
    await seed_readers(settings.database_url or "", 1)
    db = await open_database(settings.database_url or "", pool_size=2, run_migrations=False)
    try:
        edition_id = await db.pool.fetchval(
            "INSERT INTO editions (idempotency_key, request_hash, subject, html, from_addr, list_ids, status) "
            "SELECT 'dying', '\\x00', 's', '<p>x</p>', 'a@example.org', array_agg(id), 'sending' FROM lists "
            "RETURNING id"
        )
        await db.pool.execute(
            "INSERT INTO deliveries (edition_id, subscriber_id) SELECT $1, id FROM subscribers", edition_id
        )
        for death in range(1, LOST_LEASE_LIMIT + 1):
            claimed = await db.pool.fetch(db.q["delivery-claim"], 10, 60, "doomed", edition_id, 3600.0)
            assert len(claimed) == 1 and claimed[0]["attempts"] == death
            # The worker holding it is killed: its lease runs out with no result written.
            await db.pool.execute("UPDATE deliveries SET lease_until = now() - interval '1 second'")
            await housekeeping(db, settings)
        row = await db.pool.fetchrow("SELECT status, last_reply, attempts FROM deliveries")
        assert row is not None and row["status"] == "failed" and row["attempts"] == LOST_LEASE_LIMIT
        assert f"stopped {LOST_LEASE_LIMIT} times" in row["last_reply"]
        assert await db.pool.fetch(db.q["delivery-claim"], 10, 60, "next", edition_id, 3600.0) == []
    finally:
        await db.close()


async def test_a_worker_task_that_ends_makes_serve_unready_and_fatal(settings: Settings, tmp_path: Path) -> None:
    # The DKIM key went missing after the start checks: the worker cannot start, and must not do so silently.
    settings = replace_settings(settings, dkim_selector="s1", dkim_key_file=str(tmp_path / "gone.pem"))
    reasons: list[str] = []
    reported = threading.Event()  # set from the app's own loop, which may run in another thread

    def on_fatal(reason: str) -> None:
        reasons.append(reason)
        reported.set()

    app = create_app(settings, run_worker=True, on_fatal=on_fatal)
    async with AsyncTestClient(app, base_url="https://news.example.org") as client:
        assert await asyncio.to_thread(reported.wait, 10)
        assert "letterbox-worker stopped unexpectedly" in reasons[0] and "gone.pem" in reasons[0]
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "stopping" in ready.json()["detail"]
