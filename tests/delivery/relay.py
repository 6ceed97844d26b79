"""A TCP relay between an SMTP client and a real server that keeps what each side wrote, in order."""

from __future__ import annotations

import asyncio
import contextlib


class Relay:
    """Forwards a client's connections to ``upstream``; :attr:`written` is everything the clients
    wrote, :attr:`transcript` every chunk of either side in the order the relay received them."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.written = bytearray()
        self.transcript: list[tuple[str, bytes]] = []
        self.port = 0

    async def serve(self) -> asyncio.Server:
        """Listen on a free loopback port (:attr:`port`)."""
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, side: str) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    self.transcript.append((side, data))
                    if side == "client":
                        self.written += data
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer, "client"), pump(up_reader, writer, "server"))

    def transactions(self) -> list[bytes]:
        """Each MAIL FROM ... final '.' written so far; forgets them."""
        found, rest = [], bytes(self.written)
        while (start := rest.find(b"MAIL FROM:")) >= 0:
            end = rest.index(b"\r\n.\r\n", start) + 5  # dot-stuffed data cannot hold this earlier
            found.append(rest[start:end])
            rest = rest[end:]
        self.written.clear()
        return found

    def written_before_reply(self, command: bytes) -> bytes:
        """What the client wrote from its first ``command`` until the server's next reply arrived."""
        out = bytearray()
        for side, data in self.transcript:
            if out and side == "server":
                break
            if side == "client" and (out or command in data):
                out += data[data.find(command):] if not out else data
        return bytes(out)
