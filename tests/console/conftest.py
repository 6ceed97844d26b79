"""The console's tests drive it as a browser does: a client that answers redirects rather than following them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.console import console_client


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app's client, answering redirects rather than following them (overrides the suite's)."""
    async with console_client(app) as test_client:
        yield test_client
