"""A real HTTP server on loopback (uvicorn) that records the event messages it receives.

Each path answers 200 unless told otherwise: ``answer("/hook", 500, 503)`` makes the
next two requests to ``/hook`` fail first.  ``hold("/slow")`` keeps requests to that
path waiting until the returned event is set (a slow endpoint).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass
class Delivered:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Start with :meth:`start`, stop with :meth:`stop`; read :attr:`received`."""

    def __init__(self) -> None:
        self.received: list[Delivered] = []
        self._answers: dict[str, deque[int]] = {}
        self._held: dict[str, asyncio.Event] = {}
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(self, log_config=None, lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://{host}:{self.port}{path}"

    def answer(self, path: str, *statuses: int) -> None:
        """Answer the next requests to ``path`` with these statuses, in order (then 200)."""
        self._answers.setdefault(path, deque()).extend(statuses)

    def hold(self, path: str) -> asyncio.Event:
        """Keep requests to ``path`` unanswered until the returned event is set."""
        self._held[path] = asyncio.Event()
        return self._held[path]

    def to(self, path: str) -> list[Delivered]:
        """What arrived at ``path``, in order."""
        return [d for d in self.received if d.path == path]

    async def wait_for(self, count: int, path: str = "/hook", within: float = 20.0) -> list[Delivered]:
        """At least ``count`` requests to ``path``; fails the test after ``within`` seconds."""
        deadline = time.monotonic() + within
        while len(self.to(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.to(path))} of {count} requests arrived at {path}")
            await asyncio.sleep(0.02)
        return self.to(path)

    async def start(self) -> None:
        """Serve on 127.0.0.1:``port`` in this event loop."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving and release anything still held."""
        for event in self._held.values():
            event.set()
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._socket.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI app: record the request, wait if held, answer as scripted."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        self.received.append(Delivered(path, headers, body))
        if path in self._held:
            await self._held[path].wait()
        queue = self._answers.get(path)
        status = queue.popleft() if queue else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": f"receiver answered {status}".encode()})
