"""POST /v1/editions and the edition state API: idempotency, validation, frozen audience."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.support.seed import seed_readers

Client = AsyncTestClient[Litestar]


def edition(**changes: Any) -> dict[str, Any]:
    """A valid edition body with some fields changed."""
    body: dict[str, Any] = {"subject": "November briefing", "html": "<p>Hello {{name}}</p>", "lists": ["news"]}
    body.update(changes)
    return body


async def _count(settings: Settings, table: str) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - test-only table names
    finally:
        await conn.close()


async def test_post_freezes_one_copy_per_person(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    both = await seed_readers(settings.database_url or "", 3, lists=("news", "training"), prefix="both")
    await seed_readers(settings.database_url or "", 2, lists=("training",), prefix="train")
    response = await client.post(
        "/v1/editions", json=edition(lists=["news", "training"]), headers={**admin_headers, "Idempotency-Key": "k1"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["recipients"] == len(both) + 2
    assert await _count(settings, "deliveries") == 5
    shown = (await client.get(f"/v1/editions/{body['id']}", headers=admin_headers)).json()
    assert shown["recipients"] == 5 and shown["queued"] == 5 and shown["sent"] == 0
    assert shown["lists"] == ["news", "training"]


async def test_audience_excludes_the_unconfirmed_the_departed_and_the_suppressed(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    emails = await seed_readers(settings.database_url or "", 5)
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute("UPDATE subscribers SET status = 'pending' WHERE email = $1", emails[0])
    await conn.execute(
        "UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id = "
        "(SELECT id FROM subscribers WHERE email = $1)",
        emails[1],
    )
    await conn.execute(
        "INSERT INTO suppressions (email_hash, email, reason) VALUES (email_hash($1), $1, 'manual')", emails[2].upper()
    )
    await conn.close()
    response = await client.post("/v1/editions", json=edition(), headers={**admin_headers, "Idempotency-Key": "k"})
    assert response.json()["recipients"] == 2


async def test_same_key_same_body_answers_the_same_edition(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    await seed_readers(settings.database_url or "", 2)
    headers = {**admin_headers, "Idempotency-Key": "renderer-2026-11"}
    first = await client.post("/v1/editions", json=edition(), headers=headers)
    again = await client.post("/v1/editions", json=edition(), headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert await _count(settings, "editions") == 1
    assert await _count(settings, "deliveries") == 2
    other = await client.post("/v1/editions", json=edition(subject="Something else"), headers=headers)
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")


async def test_missing_idempotency_key_is_400(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    response = await client.post("/v1/editions", json=edition(), headers=admin_headers)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert await _count(settings, "editions") == 0


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"subject": ""}, 422),
        ({"subject": "x" * 301}, 422),
        ({"subject": "Hello\r\nBcc: victim@example.org"}, 422),
        ({"subject": "Hello\nthere"}, 422),
        ({"from": "news@example.org\r\nBcc: victim@example.org"}, 422),
        ({"from": "not an address"}, 422),
        ({"reply_to": "a@b\nc"}, 422),
        ({"lists": ["no-such-list"]}, 422),
        ({"lists": []}, 422),
        ({"html": ""}, 422),
        ({"filter": {"field": "agency", "op": "like", "value": "x"}}, 422),
        ({"filter": {"field": "password", "op": "eq", "value": "x"}}, 422),
        ({"send_at": "2026-12-01T09:00:00"}, 422),
        ({"send_at": "tomorrow"}, 422),
        ({"unknown": 1}, 422),
        ({"segment": "nope", "lists": []}, 422),
    ],
)
async def test_bad_editions_are_refused_and_write_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings, changes: dict[str, Any], status: int
) -> None:
    await seed_readers(settings.database_url or "", 1)
    response = await client.post(
        "/v1/editions", json=edition(**changes), headers={**admin_headers, "Idempotency-Key": "k"}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]
    assert await _count(settings, "editions") == 0
    assert await _count(settings, "deliveries") == 0


async def test_oversized_body_is_413(client: Client, admin_headers: dict[str, str], settings: Settings) -> None:
    huge = "x" * (settings.max_body_bytes + 1)
    response = await client.post(
        "/v1/editions", json=edition(html=huge), headers={**admin_headers, "Idempotency-Key": "k"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _count(settings, "editions") == 0


async def test_scopes_are_enforced(client: Client) -> None:
    for method, path in [("POST", "/v1/editions"), ("GET", "/v1/editions/1"), ("POST", "/v1/editions/1/pause")]:
        response = await client.request(method, path, json=edition())
        assert response.status_code == 401


async def test_future_send_at_schedules_and_state_changes_follow_the_rules(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    await seed_readers(settings.database_url or "", 2)
    posted = await client.post(
        "/v1/editions", json=edition(send_at="2099-01-01T09:00:00Z"), headers={**admin_headers, "Idempotency-Key": "s"}
    )
    assert posted.json()["status"] == "scheduled"
    edition_id = posted.json()["id"]
    paused = await client.post(f"/v1/editions/{edition_id}/pause", headers=admin_headers)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert (await client.post(f"/v1/editions/{edition_id}/pause", headers=admin_headers)).status_code == 409
    resumed = await client.post(f"/v1/editions/{edition_id}/resume", headers=admin_headers)
    assert resumed.json()["status"] == "scheduled"
    cancelled = await client.post(f"/v1/editions/{edition_id}/cancel", headers=admin_headers)
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["skipped"] == 2 and cancelled.json()["queued"] == 0
    assert (await client.post(f"/v1/editions/{edition_id}/resume", headers=admin_headers)).status_code == 409
    assert (await client.post("/v1/editions/999999/cancel", headers=admin_headers)).status_code == 404
    assert (await client.get("/v1/editions/0", headers=admin_headers)).status_code in (400, 404, 422)


async def test_deliveries_are_paged(client: Client, admin_headers: dict[str, str], settings: Settings) -> None:
    await seed_readers(settings.database_url or "", 5)
    edition_id = (
        await client.post("/v1/editions", json=edition(), headers={**admin_headers, "Idempotency-Key": "p"})
    ).json()["id"]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "status": "queued"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(f"/v1/editions/{edition_id}/deliveries", params=params, headers=admin_headers)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen)
    bad = await client.get(f"/v1/editions/{edition_id}/deliveries", params={"cursor": "abc"}, headers=admin_headers)
    assert bad.status_code == 422
