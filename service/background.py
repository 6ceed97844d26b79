"""What a worker process runs: the delivery loop, with the chores of the packages that use delivery.

Delivery sits below subscribers (whose mails it sends), so it cannot call them; this module sits
above both and hands the loop their periodic work: deciding sign-ups a crashed process left
undecided, and purging sign-ups never confirmed.
"""

from __future__ import annotations

import asyncio

from .delivery.transport import Transport
from .delivery.worker import run_delivery
from .runtime import Runtime
from .subscribers.purge import purge_pending
from .subscribers.signups import decide_left_behind


async def run_worker(runtime: Runtime, stop: asyncio.Event, *, transport: Transport | None = None) -> None:
    """Run one worker until ``stop`` is set (``serve`` runs one; so does each ``letterbox worker``)."""
    db, settings = runtime.db, runtime.settings

    async def decide_sign_ups() -> int:
        return await decide_left_behind(db)

    async def purge_sign_ups() -> int:
        return await purge_pending(db, settings)

    await run_delivery(runtime, stop, transport=transport, chores=[decide_sign_ups], periodic=[purge_sign_ups])
