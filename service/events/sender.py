"""The worker's event step: sign and post due outbox messages, a few at once, retrying with back-off.

At least once: a message is claimed with a lease (its next try is pushed past the
request timeout), posted, and its result recorded; a worker that dies mid-post
leaves it due again.  A 2xx delivers it; any other answer, a timeout or a refused or
failed connection is retried after the next wait of ``LETTERBOX_EVENT_RETRY_SECONDS``
(the same ``webhook-id`` each time), and fails for good when the waits run out.

Each post runs in a task of its own, so the send loop only ever waits for the claim:
a slow or silent endpoint holds one of a few slots for at most the timeout, never the mail.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Final

import asyncpg
import httpx
import structlog

from ..db.pool import DATABASE_TROUBLE, Database
from ..settings import Settings
from .addresses import AddressRefused
from .http import TIMEOUT_SECONDS, event_client
from .signing import signed_message

log = structlog.get_logger(__name__)

CONCURRENCY: Final = 4
"""Posts in flight at once per worker."""
LEASE_SECONDS: Final = 60
"""Well past the timeout: a live worker always records its result before the lease ends."""
KEEP_DAYS: Final = 30
"""Delivered and failed messages stay this long in the attempts listing."""
_PURGE_EVERY_SECONDS: Final = 3600.0
_REPLY_CHARS: Final = 500


class EventSender:
    """Posts due event messages for one worker; keeps one HTTP client for the worker's life."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.waits = settings.event_retry_seconds
        self.client = event_client(allow_private=settings.event_allow_private)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._next_purge = 0.0

    async def send_due(self) -> int:
        """Start posting due messages while there is room; return how many were claimed (never waits for a reply)."""
        if time.monotonic() >= self._next_purge:
            await self.db.pool.execute(self.db.q["event-purge"], KEEP_DAYS)
            self._next_purge = time.monotonic() + _PURGE_EVERY_SECONDS
        room = CONCURRENCY - len(self._in_flight)
        if room <= 0:
            return 0
        rows = await self.db.pool.fetch(self.db.q["event-claim"], room, LEASE_SECONDS)
        for row in rows:
            task = asyncio.create_task(self._deliver(row), name=f"event-{row['id']}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(rows)

    async def close(self) -> None:
        """Let the posts in flight finish and record (each ends within the timeout), then close the client."""
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self.client.aclose()

    async def _deliver(self, row: asyncpg.Record) -> None:
        status, error, reply = await self._post(row)
        try:
            await self.db.pool.execute(
                self.db.q["event-attempt-insert"], row["id"], row["attempts"], status, _clean(error or reply) or None
            )
            await self._record(row, status, error)
        except DATABASE_TROUBLE as exc:
            # The lease brings the message back, and it is posted again: at least once.
            log.warning("event_result_not_recorded", message_id=row["id"], error=str(exc))

    async def _post(self, row: asyncpg.Record) -> tuple[int | None, str | None, str]:
        """Post one message: the HTTP status (None without an answer), what went wrong (None for a 2xx)
        and the start of the reply."""
        body, headers = signed_message(row["secret"], row["webhook_id"], row["type"], row["created_at"], row["data"],
                                       datetime.now(UTC))
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                async with self.client.stream("POST", row["url"], content=body, headers=headers) as response:
                    reply = await _start_of(response)
        except TimeoutError:
            return None, f"no answer within {TIMEOUT_SECONDS:g} s", ""
        except AddressRefused as exc:
            return None, f"not sent: {exc}", ""
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, ""
        except Exception as exc:  # one message must never stop the worker
            log.exception("event_post_failed_unexpectedly", message_id=row["id"])
            return None, f"internal error: {type(exc).__name__}: {exc}", ""
        if 200 <= response.status_code < 300:
            return response.status_code, None, reply
        answer = f"HTTP {response.status_code}"
        return response.status_code, f"{answer}: {reply}" if reply.strip() else answer, reply

    async def _record(self, row: asyncpg.Record, status: int | None, error: str | None) -> None:
        q, attempts = self.db.q, row["attempts"]
        if error is None:
            await self.db.pool.execute(q["event-delivered"], row["id"], status)
            log.info("event_delivered", message_id=row["id"], type=row["type"], attempts=attempts)
            return
        error = _clean(error)
        if attempts > len(self.waits):
            await self.db.pool.execute(q["event-failed"], row["id"], attempts, status, error)
            log.error("event_failed", message_id=row["id"], type=row["type"], attempts=attempts, error=error)
        else:
            await self.db.pool.execute(q["event-retry"], row["id"], attempts, self.waits[attempts - 1], status, error)
            log.warning("event_attempt_failed", message_id=row["id"], type=row["type"], attempts=attempts, error=error)


async def _start_of(response: httpx.Response) -> str:
    """The first few hundred characters of the reply (an endpoint could answer with gigabytes)."""
    received = bytearray()
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) >= _REPLY_CHARS:
            break
    return received.decode("utf-8", "replace")


def _clean(text: str) -> str:
    """One line of at most a few hundred characters, storable as PostgreSQL text (no NUL)."""
    return " ".join(text.replace("\x00", " ").split())[:_REPLY_CHARS]
