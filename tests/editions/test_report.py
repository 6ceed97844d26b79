"""GET /v1/editions/{id}/report: copies by agency and by role, bounces as accounted, erased readers."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.editions.test_posting import edition
from tests.support.seed import seed_readers

Client = AsyncTestClient[Litestar]
ZERO = {"recipients": 0, "sent": 0, "failed": 0, "skipped": 0, "bounced": 0, "complained": 0, "unsubscribed": 0}


def counts(**changes: int) -> dict[str, int]:
    """A report row's counts: zero but for ``changes``."""
    return {**ZERO, **changes}


async def _shape_the_send(settings: Settings, edition_id: int) -> dict[int, int]:
    """Six readers' copies in every state the report counts; returns reader number → subscriber id."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        ids = {int(r["email"].removeprefix("reader").split("@")[0]): r["id"]
               for r in await conn.fetch("SELECT id, email FROM subscribers")}
        await conn.execute("UPDATE subscribers SET role = 'lead' WHERE id = $1", ids[3])
        await conn.execute("UPDATE subscribers SET agency = NULL, role = NULL WHERE id = $1", ids[5])
        status = {1: "sent", 2: "sent", 3: "failed", 4: "skipped", 5: "sent", 6: "sent"}
        for reader, state in status.items():
            await conn.execute("UPDATE deliveries SET status = $3 WHERE edition_id = $1 AND subscriber_id = $2",
                               edition_id, ids[reader], state)
        events = [
            (1, "hard", True),  # the bounce that counted for reader 1's copy
            (1, "soft", False),  # a second report of the same copy: recorded, not counted
            (2, "complaint", False),
            (4, "delayed", False),  # a delay warning is never a bounce
            (6, "hard", True),  # erased below: the erasure drops it
        ]
        for reader, kind, counted in events:
            await conn.execute(
                """
                INSERT INTO bounce_events (subscriber_id, delivery_id, edition_id, email_hash, kind, source, counted)
                SELECT s.id, d.id, $2, email_hash(s.email), $3, 'test', $4
                FROM subscribers s JOIN deliveries d ON d.subscriber_id = s.id AND d.edition_id = $2
                WHERE s.id = $1
                """,
                ids[reader], edition_id, kind, counted,
            )
        await conn.execute("INSERT INTO edition_unsubscribes (edition_id, subscriber_id) VALUES ($1, $2)",
                           edition_id, ids[2])
        return ids
    finally:
        await conn.close()


async def test_report_counts_by_agency_and_role(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    await seed_readers(settings.database_url or "", 6)
    posted = await client.post("/v1/editions", json=edition(), headers={**admin_headers, "Idempotency-Key": "r"})
    assert posted.status_code == 202, posted.text
    edition_id = posted.json()["id"]
    ids = await _shape_the_send(settings, edition_id)
    erased = await client.delete(f"/v1/subscribers/{ids[6]}", headers=admin_headers)
    assert erased.status_code == 204, erased.text

    response = await client.get(f"/v1/editions/{edition_id}/report", headers=admin_headers)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    assert report["by_agency"] == [
        {"agency": "health", **counts(recipients=2, sent=1, failed=1, bounced=1)},
        {"agency": "police", **counts(recipients=2, sent=1, skipped=1, complained=1, unsubscribed=1)},
        # reader 5 has no agency; reader 6 was erased, so their copy names no one
        {"agency": None, **counts(recipients=2, sent=2)},
    ]
    assert report["by_role"] == [
        {"role": "lead", **counts(recipients=1, failed=1)},
        {"role": "practitioner", **counts(recipients=3, sent=2, skipped=1, bounced=1, complained=1, unsubscribed=1)},
        {"role": None, **counts(recipients=2, sent=2)},
    ]
    # The report adds up to the edition's own counts.
    shown = (await client.get(f"/v1/editions/{edition_id}", headers=admin_headers)).json()
    for key in ("sent", "failed", "skipped", "bounced", "complained", "unsubscribed"):
        assert sum(row[key] for row in report["by_agency"]) == shown[key], key
        assert sum(row[key] for row in report["by_role"]) == shown[key], key


async def test_report_of_an_edition_without_copies_is_empty(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    await seed_readers(settings.database_url or "", 1)
    posted = await client.post("/v1/editions", json=edition(lists=["training"]),
                               headers={**admin_headers, "Idempotency-Key": "empty"})
    assert posted.status_code == 202 and posted.json()["recipients"] == 0, posted.text
    response = await client.get(f"/v1/editions/{posted.json()['id']}/report", headers=admin_headers)
    assert response.status_code == 200
    assert response.json() == {"by_agency": [], "by_role": []}


async def test_report_of_an_unknown_edition_is_a_404_problem(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.get("/v1/editions/999/report", headers=admin_headers)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == "There is no edition 999."


async def test_report_needs_the_read_scope(client: Client) -> None:
    response = await client.get("/v1/editions/1/report")
    assert response.status_code == 401
