"""When a background task of a process stops for good, the process says so and ends non-zero.

``serve`` runs the delivery worker (and, optionally, the bounce receiver) beside
the HTTP API. If one of them ends unexpectedly the process must not carry on
answering ``/readyz`` 200 while nothing is sent: it reports not ready at once,
logs the reason at error level, and asks its own shutdown so that its
supervisor (systemd, Kubernetes, compose) restarts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class Supervision:
    """The first fatal failure of this process, and what to do about it."""

    def __init__(self, on_fatal: Callable[[str], None] | None = None) -> None:
        self.failure: str | None = None
        self._on_fatal = on_fatal

    def fail(self, reason: str) -> None:
        """Record a fatal failure (the first one wins) and ask the process to stop."""
        if self.failure is not None:
            return
        self.failure = reason
        log.error("process_failing", reason=reason)
        if self._on_fatal is not None:
            self._on_fatal(reason)

    def watch(self, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        """Treat ``task`` ending before ``stop`` is set as fatal."""

        def done(finished: asyncio.Task[None]) -> None:
            if stop.is_set():
                return
            error = None if finished.cancelled() else finished.exception()
            detail = f"{type(error).__name__}: {error}" if error is not None else "it returned"
            self.fail(f"{finished.get_name()} stopped unexpectedly ({detail})")

        task.add_done_callback(done)
