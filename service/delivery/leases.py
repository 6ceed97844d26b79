"""Keeping a worker's leases alive while it works, so that they can be short.

A lease says "this worker is sending these copies"; another worker takes them
again once it expires. Long leases made a SIGKILLed worker's copies wait two
minutes; short leases would expire under a slow SMTP server and let a second
worker send the same copies. So leases are short and a live worker renews
those it holds every third of a lease: a dead worker's copies are free again
within one lease, a slow live worker's never.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from ..db.pool import DATABASE_TROUBLE, Database

log = structlog.get_logger(__name__)


class LeaseKeeper:
    """Renews the leases of the deliveries and system mails this worker holds."""

    def __init__(self, db: Database, lease_seconds: float) -> None:
        self._db = db
        self._lease_seconds = lease_seconds
        self.deliveries: set[int] = set()
        self.system_mails: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseKeeper:
        self._task = asyncio.create_task(self._renew_forever(), name="letterbox-leases")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                await self.renew()
            except DATABASE_TROUBLE as exc:
                # The recorder keeps the results; if the leases lapse meanwhile, the copies
                # are taken again: the bound on repeats is the recorder's, not ours.
                log.warning("leases_not_renewed", error=type(exc).__name__)

    async def renew(self) -> None:
        """Extend every lease held now by one lease from now."""
        if self.deliveries:
            await self._db.pool.execute(self._db.q["delivery-renew-leases"], list(self.deliveries), self._lease_seconds)
        if self.system_mails:
            await self._db.pool.execute(
                self._db.q["system-mail-renew-leases"], list(self.system_mails), self._lease_seconds
            )
