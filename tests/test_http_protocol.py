"""One write per answer (service/http_protocol.py): a turn's writes go out together at its end, in order,
before a close; a streamed body still arrives whole; and a real uvicorn serves through it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from service.http_protocol import OneWritePerTurn, _TurnWrites
from service.serving import HTTP_LOOP
from tests.support.smtp import free_port


@pytest.fixture
async def connected() -> AsyncIterator[tuple[_TurnWrites, socket.socket]]:
    """A real socket's transport behind :class:`_TurnWrites`, and the socket at the other end."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    writes = _TurnWrites(transport, loop)
    try:
        yield writes, theirs
    finally:
        transport.close()
        theirs.close()


def _received(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return b""


async def test_writes_of_one_turn_go_out_together_when_it_ends(connected: tuple[_TurnWrites, socket.socket]) -> None:
    writes, theirs = connected
    writes.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    writes.write(b"ok")
    assert _received(theirs) == b""  # nothing yet: the turn has not ended
    assert writes.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert _received(theirs) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    writes.write(b"next")
    await asyncio.sleep(0)
    assert _received(theirs) == b"next"


async def test_a_close_writes_what_was_written_before_it(connected: tuple[_TurnWrites, socket.socket]) -> None:
    writes, theirs = connected
    writes.write(b"last words")
    writes.close()
    await asyncio.sleep(0.05)
    assert _received(theirs) == b"last words"
    assert theirs.recv(10) == b""  # then the end of the stream
    assert writes.is_closing()


async def test_an_abort_drops_what_waits(connected: tuple[_TurnWrites, socket.socket]) -> None:
    writes, theirs = connected
    writes.write(b"never sent")
    writes.abort()
    await asyncio.sleep(0.05)
    assert theirs.recv(10) == b""


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Plain, streamed (with a turn between parts) and close-asking answers, straight in ASGI."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in range(3):
            await send({"type": "http.response.body", "body": f"part {part}\n".encode(), "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"end\n"})
        return
    body = b"x" * 300_000 if scope["path"] == "/large" else b"plain"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def test_uvicorn_serves_plain_streamed_large_and_closing_answers_through_it() -> None:
    port = free_port()
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, loop=HTTP_LOOP, http=OneWritePerTurn,
                            log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):  # one kept-alive connection, answer after answer
                assert (await client.get("/")).text == "plain"
            assert (await client.get("/stream")).text == "part 0\npart 1\npart 2\nend\n"
            assert (await client.get("/large")).content == b"x" * 300_000
            closing = await client.get("/", headers={"connection": "close"})
            assert closing.text == "plain" and closing.headers["connection"] == "close"
    finally:
        server.should_exit = True
        await serving
