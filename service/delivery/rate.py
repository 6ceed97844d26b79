"""A token bucket that holds a worker to ``LETTERBOX_SEND_RATE`` messages per second."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """``acquire()`` returns at most ``rate`` times a second (bursts of up to one second's worth)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for a token; free when the rate is 0 (unlimited)."""
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)
