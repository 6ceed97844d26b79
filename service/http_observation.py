"""What every HTTP request leaves behind: a request id, its metrics and its log line.

One middleware does all three, so a request pays for one wrapped ``send`` and
one clock read; they cost more than a whole bare request when each had its own
layer (bench/http.py).

- **Request id**: ``X-Request-ID`` when the client sent a sane one, else this
  process's random prefix and a counter (32 hex digits, as a UUID's: unique is
  all an id needs to be, and a counter costs no read of the system's random
  source).  It is on every log line of the request (:data:`service.logs.REQUEST_ID`)
  and echoed back.
- **Metrics**: count and latency by route template, never by raw path.  A raw
  path carries tokens and ids (``/unsubscribe/3f…``): one series per reader
  would be both a leak and a cardinality explosion.  Litestar puts the matched
  route's template in the scope, and app middleware runs after routing.  They
  are counted at the end of the event loop's turn, for all the requests it
  answered, as their log lines are written (:func:`service.logs.log_request`):
  counted as each request ended, they cost a busy process more than its lines.
- **Log line**: :func:`service.logs.log_request`.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import time

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Histogram

from .logs import REQUEST_ID, log_request
from .metrics import Metrics
from .runtime import runtime_of

_GIVEN_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class ObserveRequests:
    """Give each HTTP request an id, count and time it by route template, and log one line for it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        """Per method, route template and status: the label children its request counts into."""
        self._metrics: Metrics | None = None
        """The metrics the cached label children belong to: an app restarted on a new runtime starts afresh."""
        self._answered: list[tuple[Litestar, tuple[str, str, int], float]] = []
        """The requests answered in this turn of the loop, not yet counted."""
        self._counting: asyncio.AbstractEventLoop | None = None
        """The loop that will count them (a test's loop may end first: the next request's loop counts then)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        bound = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                echoed = (b"x-request-id", request_id.encode())
                headers = message.get("headers")
                if isinstance(headers, list):  # Litestar's: add to it rather than copy it
                    headers.append(echoed)
                else:
                    message["headers"] = [*(headers or ()), echoed]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"]
            loop = asyncio.get_running_loop()
            if self._counting is not loop:
                loop.call_soon(self._count)
                self._counting = loop
            self._answered.append((scope["app"], (method, scope["path_template"], status), seconds))
            log_request(request_id, method, scope["path"], status, round(seconds * 1000, 2))
            REQUEST_ID.reset(bound)

    def _request_id(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                if _GIVEN_REQUEST_ID.fullmatch(given):
                    return given
                break
        return f"{self._prefix}{next(self._counter):016x}"

    def _count(self) -> None:
        """Count and time the requests answered in this turn of the loop."""
        answered, self._answered, self._counting = self._answered, [], None
        for app, key, seconds in answered:
            metrics = runtime_of(app.state).metrics
            if metrics is not self._metrics:
                self._children.clear()
                self._metrics = metrics
            children = self._children.get(key)
            if children is None:
                method, route, status = key
                children = self._children[key] = (metrics.http_requests.labels(method, route, str(status)),
                                                  metrics.http_duration.labels(method, route))
            children[0].inc()
            children[1].observe(seconds)
