"""Values read from the database and kept by the process until PostgreSQL announces their change.

Some reads are the same for every request and change a few times a year (what
the public form offers).  :class:`KeptValues` keeps each :class:`Kept` value
it has read, while a connection of its own LISTENs on the channels that the
values' triggers notify at commit; any notification drops everything kept, so
the next request in every process reads the database again.

A value is kept only while that connection listens.  Before it is up, after it
is lost, and for a read that began before the last notification (or before
listening began), nothing is kept: every request reads the database.  Kept
values are also dropped after a minute whatever happens, since a connection
that dies unnoticed by the operating system hears nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import asyncpg
import structlog

from .pool import Executor
from .queries import Queries

log = structlog.get_logger(__name__)

T = TypeVar("T")
MAX_AGE_SECONDS = 60.0
RETRY_SECONDS = 5.0
"""How long to wait before trying to listen again after a failed connection."""


@dataclass(frozen=True, eq=False)
class Kept(Generic[T]):
    """A value to keep: how to read it, and the channel whose notification says it changed."""

    channel: str
    read: Callable[[Executor, Queries], Awaitable[T]]


class KeptValues:
    """The values this process keeps, and the connection that listens for their change (see the module)."""

    def __init__(self, dsn: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._dsn = dsn
        self._clock = clock
        self._values: dict[Kept[Any], tuple[object, float]] = {}
        self._generation = 0
        """Counts what makes a read in flight unfit to keep: a notification, listening begun."""
        self._channels: set[str] = set()
        self._listener: asyncpg.Connection | None = None
        self._heard: frozenset[str] = frozenset()
        self._connecting: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._closed = False

    def listening(self, channel: str) -> bool:
        """Whether a notification on ``channel`` would reach us now (a lost connection is closed)."""
        return self._listener is not None and not self._listener.is_closed() and channel in self._heard

    async def get(self, kept: Kept[T], db: Executor, q: Queries) -> T:
        """``kept``'s value: the one kept while it is known to be current, else read from ``db``."""
        found = self._values.get(kept)
        if found is not None and self.listening(kept.channel) and self._clock() - found[1] < MAX_AGE_SECONDS:
            return cast(T, found[0])  # stored below under this same key, so of its type
        self._values.pop(kept, None)
        self._listen_soon(kept.channel)
        generation = self._generation
        value = await kept.read(db, q)
        if self.listening(kept.channel) and generation == self._generation:
            self._values[kept] = (value, self._clock())
        return value

    async def close(self) -> None:
        """Stop listening; nothing is kept after."""
        self._closed = True
        self._forget()
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()

    def _listen_soon(self, channel: str) -> None:
        self._channels.add(channel)
        if self._closed or self.listening(channel) or self._clock() < self._retry_at:
            return
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._listen(), name="letterbox-kept-values")

    async def _listen(self) -> None:
        """Listen on every channel asked for so far, on a new connection (the old one, if any, is closed)."""
        channels = frozenset(self._channels)
        listener: asyncpg.Connection | None = None
        try:
            listener = await asyncpg.connect(self._dsn, timeout=RETRY_SECONDS)
            for channel in sorted(channels):
                await listener.add_listener(channel, self._notified)
        except Exception as exc:  # requests read the database meanwhile; try again later
            if listener is not None:
                listener.terminate()
            self._retry_at = self._clock() + RETRY_SECONDS
            # Not a warning: the database being away is what the requests themselves report, once
            # (database_unavailable); nothing is kept meanwhile, so nothing is wrong beyond that.
            log.info("kept_values_not_listening", error=type(exc).__name__)
            return
        except BaseException:  # cancelled by close()
            if listener is not None:
                listener.terminate()
            raise
        old, self._listener, self._heard = self._listener, listener, channels
        self._forget()  # a read begun before this could not have heard of a change made before it
        if old is not None:
            old.terminate()

    def _notified(self, *_: Any) -> None:
        self._forget()

    def _forget(self) -> None:
        self._values.clear()
        self._generation += 1
