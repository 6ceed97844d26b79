"""uvicorn's httptools protocol, writing each answer to its socket once instead of once per part.

uvicorn writes a response's head when the app starts it and its body when the
app sends it: two ``send()`` calls, two TCP segments, for an answer that is
nearly always ready whole.  On loopback a ``send()`` also runs the receiver's
side of TCP and wakes it, and under load the two writes were the largest single
cost of a request: py-spy under wrk put them at more than half of a bare
Litestar request's CPU, and answering in one write took 17–20 µs off every
Letterbox request (bench/http.py).
So each connection's writes wait for the end of the event loop's turn and go
out together: an answer sent in one turn, as every non-streamed one is, is one
``send()``.  A streamed body still goes out turn by turn, and uvicorn's flow
control still sees the socket's own buffer.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class OneWritePerTurn(HttpToolsProtocol):
    """uvicorn's httptools protocol whose writes wait for the end of the loop's turn (see the module)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Hand uvicorn the socket's transport behind one that gathers the turn's writes."""
        # A stream server's transport (uvloop's does not derive from asyncio.Transport, but is one).
        super().connection_made(_TurnWrites(cast(asyncio.Transport, transport), asyncio.get_running_loop()))


class _TurnWrites(asyncio.Transport):
    """A transport whose writes are gathered and written at the end of the loop's turn; the rest is the socket's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._waiting: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._waiting:
            self._loop.call_soon(self._write_waiting)
        self._waiting.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _write_waiting(self) -> None:
        if not self._waiting:
            return
        data = self._waiting[0] if len(self._waiting) == 1 else b"".join(self._waiting)
        self._waiting.clear()
        if not self._transport.is_closing():  # the client went away: nobody to write to
            self._transport.write(data)

    def close(self) -> None:
        self._write_waiting()  # what was written before the close goes out before it
        self._transport.close()

    def abort(self) -> None:
        self._waiting.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        self._write_waiting()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._waiting)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()
