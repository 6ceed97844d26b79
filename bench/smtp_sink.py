"""A minimal asyncio SMTP sink for benchmarks: accepts everything, counts messages.

aiosmtpd tops out near 2,300 msg/s on this machine and would be the
bottleneck, so this speaks only what a sender needs (EHLO/HELO, MAIL, RCPT,
DATA, RSET, NOOP, QUIT) and does no parsing beyond finding the end of DATA.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.sharedctypes
import socket
from typing import Any


class _Session(asyncio.Protocol):
    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.buffer = b""
        self.in_data = False
        self.scan_from = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies: list[bytes] = []
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n", self.scan_from)
                if end < 0:
                    # Next time, search only what is new (plus room for a split terminator).
                    self.scan_from = max(0, len(self.buffer) - 4)
                    break
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                self.scan_from = 0
                with self.counter.get_lock():
                    self.counter.value += 1
                replies.append(b"250 OK queued\r\n")
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                break
            line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                replies.append(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
            elif verb == b"DATA":
                self.in_data = True
                replies.append(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 bye\r\n")
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
            else:
                replies.append(b"250 OK\r\n")
        if replies:
            self.transport.write(b"".join(replies))


def _serve(port: int, counter: Any, ready: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Session(counter), "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Sink:
    """The sink in its own process; ``count`` is the number of messages accepted so far."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self._counter = multiprocessing.Value("q", 0)
        ready = multiprocessing.Event()
        self._process = multiprocessing.Process(target=_serve, args=(self.port, self._counter, ready), daemon=True)
        self._process.start()
        ready.wait(10)

    @property
    def count(self) -> int:
        """Messages accepted."""
        return int(self._counter.value)

    def reset(self) -> None:
        """Start counting from zero."""
        with self._counter.get_lock():
            self._counter.value = 0

    def stop(self) -> None:
        """End the sink process."""
        self._process.terminate()
        self._process.join(5)
