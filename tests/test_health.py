"""Health, readiness, metrics, problem+json and request ids."""

from __future__ import annotations

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings


async def test_health_ready_and_metrics(client: AsyncTestClient[Litestar]) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "letterbox_deliveries_sent_total 0.0" in metrics.text
    assert 'letterbox_queue_depth{state="queued"} 0.0' in metrics.text


async def test_readyz_reports_unapplied_migrations(client: AsyncTestClient[Litestar], settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute("DELETE FROM schema_migrations")
    await conn.close()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Migrations" in response.json()["detail"]


async def test_unknown_routes_and_methods_are_problem_json(client: AsyncTestClient[Litestar]) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["status"] == 404 and missing.json()["detail"]
    wrong = await client.delete("/healthz")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("application/problem+json")


async def test_request_id_is_echoed_or_made(client: AsyncTestClient[Litestar]) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc12345-trace"})
    assert given.headers["x-request-id"] == "abc12345-trace"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id\x01"})
    assert len(made.headers["x-request-id"]) == 32


async def test_bad_json_is_4xx_and_writes_nothing(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], settings: Settings
) -> None:
    cases = [b"{", b"[]", b'{"slug": "ok"}', b'{"slug": "Bad Slug", "name": "x"}', b'{"slug": "a", "name": "x", "extra": 1}']
    for body in cases:
        response = await client.post("/v1/lists", content=body, headers={**admin_headers, "Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (body, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"]
    conn = await asyncpg.connect(settings.database_url)
    assert await conn.fetchval("SELECT count(*) FROM lists") == 0
    await conn.close()


async def test_duplicates_are_409(client: AsyncTestClient[Litestar], admin_headers: dict[str, str]) -> None:
    body = {"slug": "news", "name": "News"}
    assert (await client.post("/v1/lists", json=body, headers=admin_headers)).status_code == 201
    again = await client.post("/v1/lists", json=body, headers=admin_headers)
    assert again.status_code == 409
    assert again.json()["detail"] == "A list with this slug already exists."
