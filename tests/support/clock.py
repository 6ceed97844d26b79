"""A clock tests can move."""

from __future__ import annotations

import time


class FakeClock:
    """Callable returning a Unix time that only moves when told to."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds
