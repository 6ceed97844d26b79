"""``/metrics`` on a port of its own, for the processes that serve no HTTP API.

``letterbox worker`` and ``letterbox bounce-receiver`` answer ``GET /metrics``
(and ``GET /healthz``) on ``LETTERBOX_METRICS_PORT``.  The server runs on the
process's event loop, so a scrape reads the queue figures through the
process's own pool, exactly as the API's ``/metrics`` does.

It speaks just enough HTTP/1.1 for a scraper: one request per connection,
its head read within a few seconds and at most 8 KiB, then the answer and
close.  Anything but ``GET`` of those two paths is a 404 or 405.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from http import HTTPStatus

import structlog

from .db.pool import Database
from .metrics import Metrics
from .settings import Settings, SettingsError

log = structlog.get_logger(__name__)

_HEAD_LIMIT = 8 * 1024
_READ_TIMEOUT_SECONDS = 5.0
_PROMETHEUS_TEXT = b"text/plain; version=0.0.4; charset=utf-8"


def _response(status: HTTPStatus, body: bytes, content_type: bytes = b"text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()
        + b"Content-Type: " + content_type + b"\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + b"Connection: close\r\n\r\n"
    )  # fmt: skip
    return head + body


class MetricsServer:
    """``async with MetricsServer(metrics, db, host, port)``: serve until the block ends.

    ``db`` is the pool the queue figures are read through (None: this process's own figures only).
    ``port=0`` picks a free port; :attr:`port` says which.
    """

    def __init__(self, metrics: Metrics, db: Database | None, host: str, port: int) -> None:
        self.metrics = metrics
        self.db = db
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> MetricsServer:
        self._server = await asyncio.start_server(self._answer, self.host, self.port, limit=_HEAD_LIMIT)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("metrics_listening", host=self.host, port=self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.write(await self._respond(head.split(b"\r\n", 1)[0]))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that is too slow, too long or gone gets nothing
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, request_line: bytes) -> bytes:
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _response(HTTPStatus.BAD_REQUEST, b"Bad request\n")
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target not in (b"/metrics", b"/healthz"):
            return _response(HTTPStatus.NOT_FOUND, b"Not found: try /metrics\n")
        if method != b"GET":
            return _response(HTTPStatus.METHOD_NOT_ALLOWED, b"Only GET\n")
        if target == b"/healthz":
            return _response(HTTPStatus.OK, b"ok\n")
        return _response(HTTPStatus.OK, await self.metrics.scrape(self.db), _PROMETHEUS_TEXT)


@contextlib.asynccontextmanager
async def metrics_endpoint(settings: Settings, metrics: Metrics, db: Database | None) -> AsyncIterator[None]:
    """Serve ``/metrics`` on ``LETTERBOX_METRICS_PORT`` for the duration, when it is set."""
    if settings.metrics_port is None:
        yield
        return
    try:
        server = MetricsServer(metrics, db, settings.host, settings.metrics_port)
        await server.__aenter__()
    except OSError as exc:
        where = f"{settings.host}:{settings.metrics_port}"
        raise SettingsError("LETTERBOX_METRICS_PORT", f"cannot listen on {where}: {exc.strerror or exc}") from exc
    try:
        yield
    finally:
        await server.__aexit__()
