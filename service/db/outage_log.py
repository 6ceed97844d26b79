"""One warning per database outage, not one per request or per loop.

While PostgreSQL is away, every request and every worker loop meets the same
fault; a line for each buries the one that matters. The first occurrence logs,
later ones are counted into a line at most every 30 seconds.
"""

from __future__ import annotations

import time

import structlog

log = structlog.get_logger(__name__)

# One warning per this many seconds while the database stays away, counting what it stopped.
_OUTAGE_LOG_SECONDS = 30.0


class OutageLog:
    """Rate-limits one warning: the first occurrence logs, the rest are counted into the next line."""

    def __init__(self, event: str, counted: str) -> None:
        self._event = event
        self._counted = counted
        self._last: float | None = None
        self._count = 0

    def note(self, exc: BaseException, **fields: object) -> None:
        """Count one occurrence of ``exc``; log when the last line is old enough."""
        self._count += 1
        now = time.monotonic()
        if self._last is None or now - self._last >= _OUTAGE_LOG_SECONDS:
            log.warning(self._event, error=type(exc).__name__, reason=str(exc)[:200],
                        **{self._counted: self._count}, **fields)
            self._last, self._count = now, 0
