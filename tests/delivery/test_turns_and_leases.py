"""Editions take turns, and a live worker's leases never lapse under a slow SMTP server (issue 14)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.db.pool import open_database
from service.delivery.leases import LeaseKeeper
from service.settings import Settings
from tests.conftest import replace_settings
from tests.editions.test_posting import edition
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

# The delivery worker end to end against a real SMTP server: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

Client = AsyncTestClient[Litestar]


async def _post(client: Client, headers: dict[str, str], key: str, **changes: Any) -> int:
    response = await client.post("/v1/editions", json=edition(**changes), headers={**headers, "Idempotency-Key": key})
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


async def _shown(client: Client, headers: dict[str, str], edition_id: int) -> dict[str, Any]:
    shown: dict[str, Any] = (await client.get(f"/v1/editions/{edition_id}", headers=headers)).json()
    return shown


async def test_a_small_edition_posted_behind_a_big_one_is_not_held_back(
    client: Client, app: Litestar, settings: Settings, admin_headers: dict[str, str], smtp_sink: SmtpSink
) -> None:
    await seed_readers(settings.database_url or "", 400, lists=("news",), prefix="many")
    await seed_readers(settings.database_url or "", 5, lists=("training",), prefix="few")
    big = await _post(client, admin_headers, "big", lists=["news"])
    small = await _post(client, admin_headers, "small", lists=["training"], subject="Briefing")
    smtp_sink.delay = 0.005  # every copy takes a moment, as on a real relay
    turns = replace_settings(settings, worker_batch_size=40, smtp_concurrency=1)
    async with running_worker(app, turns):
        deadline = time.monotonic() + 60
        while (await _shown(client, admin_headers, big))["status"] != "done":
            assert time.monotonic() < deadline, "the editions never finished"
            await asyncio.sleep(0.05)
    order = [r.rcpt_tos[0] for r in smtp_sink.received]
    assert len(order) == 405
    # The briefing's copies went out in the second batch, not after the 400 copies before them.
    last_small = max(i for i, address in enumerate(order) if address.startswith("few"))
    assert last_small < 2 * turns.worker_batch_size, f"the last briefing copy was copy {last_small + 1}"
    assert (await _shown(client, admin_headers, small))["sent"] == 5


async def test_an_urgent_edition_goes_before_the_rest(
    client: Client, app: Litestar, settings: Settings, admin_headers: dict[str, str], smtp_sink: SmtpSink
) -> None:
    await seed_readers(settings.database_url or "", 120, lists=("news",), prefix="many")
    await seed_readers(settings.database_url or "", 5, lists=("training",), prefix="alert")
    first = await _post(client, admin_headers, "first", lists=["news"])
    urgent = await _post(client, admin_headers, "urgent", lists=["training"], subject="Alert", priority="urgent")
    assert (await _shown(client, admin_headers, urgent))["priority"] == "urgent"
    assert (await _shown(client, admin_headers, first))["priority"] == "normal"
    turns = replace_settings(settings, worker_batch_size=40, smtp_concurrency=1)
    async with running_worker(app, turns):
        await smtp_sink.wait_for(125, within=60)
    order = [r.rcpt_tos[0] for r in smtp_sink.received]
    assert all(address.startswith("alert") for address in order[:5]), order[:8]


@pytest.mark.slow
async def test_a_slow_relay_never_lets_a_live_workers_lease_lapse(
    client: Client, app: Litestar, settings: Settings, admin_headers: dict[str, str], smtp_sink: SmtpSink
) -> None:
    readers = await seed_readers(settings.database_url or "", 8)
    smtp_sink.delay = 1.0  # a batch takes 8 s on one connection: four leases of 2 s
    slow = replace_settings(settings, lease_seconds=2, smtp_concurrency=1, worker_batch_size=8)
    edition_id = await _post(client, admin_headers, "slow")
    # Two workers: the second reclaims expired leases (housekeeping) and would send them again.
    async with running_worker(app, slow), running_worker(app, slow):
        deadline = time.monotonic() + 60
        while (await _shown(client, admin_headers, edition_id))["status"] != "done":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    copies = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert copies == Counter(readers), "every reader got exactly one copy"


async def test_renewing_leases_never_waits_for_a_copy_whose_result_is_being_written(
    client: Client, settings: Settings, admin_headers: dict[str, str]
) -> None:
    """The recorder writes results while leases are renewed; a renewal that waited for its rows
    (in its own order) deadlocked with it now and then (bench/send.py: DeadlockDetectedError)."""
    url = settings.database_url or ""
    await seed_readers(url, 2)
    await _post(client, admin_headers, "leases")
    conn, writer = await asyncpg.connect(url), await asyncpg.connect(url)
    # Unknown DSN parameters are server settings: a renewal that waits for a lock at all fails.
    db = await open_database(url + ("&" if "?" in url else "?") + "lock_timeout=500", pool_size=1)
    try:
        held, free = [r["id"] for r in await conn.fetch(
            "UPDATE deliveries SET status = 'sending', lease_until = now() RETURNING id")]
        keeper = LeaseKeeper(db, lease_seconds=60)
        keeper.deliveries |= {held, free}
        async with writer.transaction():
            await writer.execute("UPDATE deliveries SET status = 'sent' WHERE id = $1", held)  # a result being written
            await keeper.renew()
        renewed = {r["id"]: r["renewed"] for r in await conn.fetch(
            "SELECT id, lease_until > now() + interval '30 seconds' AS renewed FROM deliveries")}
    finally:
        await db.close()
        await conn.close()
        await writer.close()
    assert renewed == {held: False, free: True}
