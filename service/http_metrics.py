"""HTTP request metrics: count and latency by route template, never by raw path.

A raw path carries tokens and ids (``/unsubscribe/3f…``): one series per
reader would be both a leak and a cardinality explosion.  Litestar puts the
matched route's template (``/unsubscribe/{token:str}``) in the scope, and this
middleware runs after routing, so every request it sees has one.

Per request it costs a clock read, a wrapped ``send`` and two increments on
label children cached by (method, route, status).
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Histogram

from .metrics import Metrics
from .runtime import runtime_of


class HttpMetricsMiddleware:
    """Count each HTTP request by method, route template and status, and time it by method and route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._timers: dict[tuple[str, str], Histogram] = {}
        self._metrics: Metrics | None = None
        """The metrics the cached children belong to: an app restarted on a new runtime starts afresh."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._observe(scope, scope["method"], status, time.perf_counter() - started)

    def _observe(self, scope: Scope, method: str, status: int, seconds: float) -> None:
        route = scope["path_template"]
        metrics = runtime_of(scope["app"].state).metrics
        if metrics is not self._metrics:
            self._counters.clear()
            self._timers.clear()
            self._metrics = metrics
        counter = self._counters.get((method, route, status))
        timer = self._timers.get((method, route))
        if counter is None or timer is None:
            counter = self._counters[(method, route, status)] = metrics.http_requests.labels(method, route, str(status))
            timer = self._timers[(method, route)] = metrics.http_duration.labels(method, route)
        counter.inc()
        timer.observe(seconds)
