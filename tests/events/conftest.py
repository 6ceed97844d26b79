"""Event tests: loopback endpoints allowed, two quick retries, a real HTTP receiver, helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from service.db.pool import Database, open_database
from service.events.types import EVENT_TYPES
from service.settings import Settings
from tests.conftest import replace_settings
from tests.events.receiver import Delivered, Receiver

Client = AsyncTestClient[Litestar]
Headers = dict[str, str]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The receiver is on 127.0.0.1, so private addresses are allowed; a message gets three tries, no waits."""
    return replace_settings(settings, event_allow_private=True, event_retry_seconds=(0.0, 0.0))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP server on loopback recording what it receives."""
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def db(client: Client, settings: Settings) -> AsyncIterator[Database]:
    """The test's own pool on the test's database (the app's pool lives in the test client's loop)."""
    database = await open_database(settings.database_url or "", pool_size=2, run_migrations=False)
    try:
        yield database
    finally:
        await database.close()


async def register(client: Client, headers: Headers, url: str, events: Sequence[str] = EVENT_TYPES,
                   **more: Any) -> dict[str, Any]:
    """Register an endpoint through the API; the answer carries its secret."""
    response = await client.post("/v1/event-endpoints", json={"url": url, "events": list(events), **more},
                                 headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def verified(secret: str, delivered: Delivered) -> dict[str, Any]:
    """The message's body once its Standard Webhooks signature checks out (raises otherwise)."""
    body: dict[str, Any] = Webhook(secret).verify(delivered.body, delivered.headers)
    return body


async def attempts(client: Client, headers: Headers, endpoint_id: int, **query: Any) -> list[dict[str, Any]]:
    """The endpoint's messages, newest first."""
    response = await client.get(f"/v1/event-endpoints/{endpoint_id}/attempts", params=query, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def settled(client: Client, headers: Headers, endpoint_id: int, count: int,
                  within: float = 20.0) -> list[dict[str, Any]]:
    """The endpoint's messages once ``count`` of them are delivered or failed."""
    deadline = time.monotonic() + within
    while True:
        items = await attempts(client, headers, endpoint_id)
        if sum(1 for i in items if i["status"] != "pending") >= count:
            return items
        if time.monotonic() > deadline:
            raise AssertionError(f"messages never settled: {items}")
        await asyncio.sleep(0.05)


async def outbox(db: Database) -> list[asyncpg.Record]:
    """Every outbox row, oldest first."""
    rows: list[asyncpg.Record] = await db.pool.fetch("SELECT * FROM event_messages ORDER BY id")
    return rows
