"""Run the real delivery worker inside a test, against the app's own database pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from service.delivery.worker import run_worker
from service.settings import Settings


@asynccontextmanager
async def running_worker(app: Litestar, settings: Settings | None = None) -> AsyncIterator[asyncio.Event]:
    """Start a worker for the duration of the block (the app's lifespan must be running).

    Yields the stop event; leaving the block stops the worker and waits for it.
    """
    stop = asyncio.Event()
    state = app.state
    task = asyncio.create_task(run_worker(settings or state.settings, state.db, state.metrics, state.signer, stop))
    try:
        yield stop
    finally:
        stop.set()
        await task
