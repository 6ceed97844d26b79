"""The one typed runtime: what every part of a running process shares.

``open_runtime`` builds it, for the HTTP app's lifespan and for every CLI
command alike; the app hands it to handlers as the ``runtime`` dependency (and
its parts as ``db``, ``settings``, ``signer``, ``links`` and ``metrics``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import msgspec
from litestar.datastructures import State

from .db.batches import Groups
from .db.kept import KeptValues
from .db.pool import Database, open_database
from .links import Links
from .metrics import Metrics
from .settings import Settings
from .tokens import TokenSigner


class Runtime(msgspec.Struct, frozen=True, kw_only=True):
    """Settings (the webhook secrets among them), the database, the values kept from it and the group
    commits run on it, the signer and its links, metrics and the clock."""

    settings: Settings
    db: Database
    signer: TokenSigner
    links: Links
    metrics: Metrics
    kept: KeptValues
    groups: Groups
    clock: Callable[[], float]


def assemble(
    settings: Settings, db: Database, *, clock: Callable[[], float] = time.time, metrics: Metrics | None = None
) -> Runtime:
    """The runtime over an open database: the one place a signer and its links are made."""
    if not settings.database_url:
        raise ValueError("a runtime needs a database URL; see service/startup.py")
    signer = TokenSigner(settings.secret_keys, now=clock)
    links = Links(settings, signer)
    return Runtime(settings=settings, db=db, signer=signer, links=links, metrics=metrics or Metrics(),
                   kept=KeptValues(settings.database_url), groups=Groups(db, settings), clock=clock)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
    pool_size: int | None = None,
) -> AsyncIterator[Runtime]:
    """Open the database (migrating it and checking every named query) and yield the runtime; close on exit.

    ``settings.database_url`` and ``settings.secret_keys`` must be resolved (service/startup.py does it),
    and the webhook secrets checked (``check_webhook_secrets``, by the CLI and by ``create_app``).
    """
    if not settings.database_url or not settings.secret_keys:
        raise ValueError("a runtime needs a database URL and secret keys; see service/startup.py")
    db = await open_database(settings.database_url, pool_size=pool_size or settings.db_pool_size)
    try:
        runtime = assemble(settings, db, clock=clock, metrics=metrics)
        try:
            yield runtime
        finally:
            await runtime.kept.close()
    finally:
        await db.close()


def runtime_of(state: State) -> Runtime:
    """The runtime a started app keeps in its state (the one place that state is read)."""
    runtime = getattr(state, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the app has not started: its runtime is opened by the lifespan")
    return runtime
