"""Run the real delivery worker inside a test, next to an app under the test client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from service.background import run_worker
from service.db.pool import open_database
from service.runtime import assemble, runtime_of
from service.settings import Settings


@asynccontextmanager
async def running_worker(app: Litestar, settings: Settings | None = None) -> AsyncIterator[asyncio.Event]:
    """Start a worker for the duration of the block, sharing the app's metrics and signer.

    The test client runs the app on its own event loop, so the worker gets its
    own pool on the test's loop. Leaving the block stops the worker and waits for it.
    """
    settings = settings or runtime_of(app.state).settings
    db = await open_database(settings.database_url or "", pool_size=4, run_migrations=False)
    stop = asyncio.Event()
    shared = runtime_of(app.state)
    task = asyncio.create_task(run_worker(assemble(settings, db, metrics=shared.metrics, clock=shared.clock), stop))
    try:
        yield stop
    finally:
        stop.set()
        await task
        await db.close()
