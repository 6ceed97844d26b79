"""The complaint guard: a sending edition whose complaints or hard bounces pass their limit pauses itself."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.db.pool import open_database
from service.delivery.housekeeping import housekeeping
from service.settings import Settings
from tests.conftest import replace_settings
from tests.editions.test_posting import edition
from tests.support.seed import seed_readers

Client = AsyncTestClient[Litestar]


async def _sending_edition(
    client: Client, settings: Settings, headers: dict[str, str], readers: int
) -> tuple[int, list[str]]:
    """An edition in the middle of its send: all copies but one sent, as a worker would have recorded."""
    emails = await seed_readers(settings.database_url or "", readers)
    answer = await client.post("/v1/editions", json=edition(), headers={**headers, "Idempotency-Key": "guarded"})
    assert answer.status_code == 202, answer.text
    edition_id = int(answer.json()["id"])
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("UPDATE editions SET status = 'sending' WHERE id = $1", edition_id)
        await conn.execute(
            "UPDATE deliveries SET status = 'sent', sent_at = now() WHERE edition_id = $1 AND id < "
            "(SELECT max(id) FROM deliveries WHERE edition_id = $1)", edition_id,
        )
    finally:
        await conn.close()
    return edition_id, emails


async def _report(client: Client, headers: dict[str, str], email: str, kind: str, edition_id: int) -> None:
    answer = await client.post("/v1/bounces", json={"email": email, "kind": kind, "edition_id": edition_id},
                               headers=headers)
    assert answer.status_code in (200, 202), answer.text


async def _guard(settings: Settings, **limits: Any) -> None:
    db = await open_database(settings.database_url or "", pool_size=2, run_migrations=False)
    try:
        await housekeeping(db, replace_settings(settings, **limits))
    finally:
        await db.close()


async def _status(client: Client, headers: dict[str, str], edition_id: int) -> dict[str, Any]:
    shown: dict[str, Any] = (await client.get(f"/v1/editions/{edition_id}", headers=headers)).json()
    return shown


@pytest.mark.parametrize(
    ("kind", "reports", "words"),
    [("complaint", 1, "guard: 1 complaints in 20 copies sent (5.00 %), above the limit of 0.30 %"),
     ("hard", 2, "guard: 2 hard bounces in 20 copies sent (10.00 %), above the limit of 5.00 %")],
)
async def test_too_many_complaints_or_hard_bounces_pause_the_edition(
    client: Client, settings: Settings, admin_headers: dict[str, str], kind: str, reports: int, words: str
) -> None:
    edition_id, emails = await _sending_edition(client, settings, admin_headers, 21)
    for email in emails[:reports]:
        await _report(client, admin_headers, email, kind, edition_id)
    await _guard(settings, guard_min_sent=10)
    shown = await _status(client, admin_headers, edition_id)
    assert shown["status"] == "paused" and shown["status_reason"] == words
    scraped = (await client.get("/metrics")).text
    assert 'letterbox_editions_paused{cause="guard"} 1.0' in scraped
    assert 'letterbox_editions_paused{cause="operator"} 0.0' in scraped


async def test_the_guard_waits_for_enough_copies_and_stays_under_its_limits(
    client: Client, settings: Settings, admin_headers: dict[str, str]
) -> None:
    edition_id, emails = await _sending_edition(client, settings, admin_headers, 21)
    await _report(client, admin_headers, emails[0], "complaint", edition_id)
    await _guard(settings)  # the default minimum of 500 copies sent is not reached
    assert (await _status(client, admin_headers, edition_id))["status"] == "sending"
    await _guard(settings, guard_min_sent=10, guard_complaint_rate=0.1)  # 5 % is under a 10 % limit
    assert (await _status(client, admin_headers, edition_id))["status"] == "sending"


async def test_an_operator_who_resumes_a_guarded_edition_is_not_overruled(
    client: Client, settings: Settings, admin_headers: dict[str, str]
) -> None:
    edition_id, emails = await _sending_edition(client, settings, admin_headers, 21)
    await _report(client, admin_headers, emails[0], "complaint", edition_id)
    await _guard(settings, guard_min_sent=10)
    assert (await _status(client, admin_headers, edition_id))["status"] == "paused"
    assert (await client.post(f"/v1/editions/{edition_id}/resume", headers=admin_headers)).status_code == 200
    conn = await asyncpg.connect(settings.database_url)
    try:  # a worker picks it up again
        await conn.execute("UPDATE editions SET status = 'sending' WHERE id = $1", edition_id)
    finally:
        await conn.close()
    await _guard(settings, guard_min_sent=10)
    shown = await _status(client, admin_headers, edition_id)
    assert shown["status"] == "sending" and shown["status_reason"] is None
