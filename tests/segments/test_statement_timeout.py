"""A costly filter meets the statement timeout (issue 12, finding 7): a 422 naming the limit, nothing written.

The filter is the issue's: 190 ``contains`` conditions, here over 20,000 readers, which
takes far longer than the 1 ms limit these tests set (and well within the defaults).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import replace_settings
from tests.support.clock import FakeClock
from tests.support.seed import seed_readers

# Waits out real statement timeouts: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

Client = AsyncTestClient[Litestar]
COSTLY = {"any": [{"field": "name", "op": "contains", "value": f"nobody-{i}"} for i in range(190)]}


@pytest.fixture
async def tight(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    """The app with 1 ms limits on previews and fan-out, over 20,000 readers."""
    await seed_readers(settings.database_url or "", 20_000)
    limited = replace_settings(settings, preview_timeout_seconds=0.001, fan_out_timeout_seconds=0.001)
    async with AsyncTestClient(create_app(limited, clock=clock), base_url="https://news.example.org") as client:
        yield client


def _names_the_limit(body: dict[str, Any], variable: str) -> None:
    assert body["status"] == 422 and body["timeout_seconds"] == 0.001
    assert variable in body["detail"] and "narrow the filter" in body["detail"]


async def test_a_preview_over_its_time_limit_is_a_422_naming_it(tight: Client, admin_headers: dict[str, str]) -> None:
    response = await tight.post("/v1/segments/preview", json={"lists": ["news"], "filter": COSTLY},
                                headers=admin_headers)  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    _names_the_limit(response.json(), "LETTERBOX_PREVIEW_TIMEOUT_SECONDS")


async def test_a_fan_out_over_its_time_limit_is_a_422_and_writes_nothing(
    tight: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    body = {"subject": "Costly", "html": "<p>Hi</p>", "lists": ["news"], "filter": COSTLY}
    response = await tight.post("/v1/editions", json=body, headers={**admin_headers, "Idempotency-Key": "costly"})
    assert response.status_code == 422, response.text
    _names_the_limit(response.json(), "LETTERBOX_FAN_OUT_TIMEOUT_SECONDS")
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM editions") == 0
        assert await conn.fetchval("SELECT count(*) FROM deliveries") == 0
    finally:
        await conn.close()


async def test_the_same_filter_answers_within_the_default_limits(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    await seed_readers(settings.database_url or "", 20_000)
    preview = await client.post("/v1/segments/preview", json={"lists": ["news"], "filter": COSTLY},
                                headers=admin_headers)  # fmt: skip
    assert preview.status_code == 200 and preview.json() == {"recipients": 0}
    body = {"subject": "Costly", "html": "<p>Hi</p>", "lists": ["news"], "filter": COSTLY}
    posted = await client.post("/v1/editions", json=body, headers={**admin_headers, "Idempotency-Key": "costly"})
    assert posted.status_code == 202 and posted.json()["recipients"] == 0
