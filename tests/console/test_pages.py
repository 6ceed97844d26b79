"""The console's read pages: what they show for seeded data, paging, bad ids and bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.support.console import console_client, signed_in
from tests.support.console_data import seed_console

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[Client]:
    """The app's client, answering redirects rather than following them."""
    async with console_client(app) as test_client:
        yield test_client


@pytest.fixture
async def seeded(client: Client, settings: Settings, admin_headers: dict[str, str]) -> dict[str, Any]:
    """Six readers, an edition part-way through, bounces, a complaint, an unsubscribe; signed in as a viewer."""
    data = await seed_console(settings.database_url or "", client, admin_headers)
    await signed_in(client, settings, "viewer")
    return data


async def test_dashboard_shows_progress_days_and_readers(client: Client, seeded: dict[str, Any]) -> None:
    page = await client.get("/console/")
    assert page.status_code == 200, page.text
    assert "Spring safeguarding update" in page.text
    assert "3 of 6 copies done (50%)" in page.text
