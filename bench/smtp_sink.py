"""A minimal, fast asyncio SMTP sink in its own process, for benchmarks and scale tests.

aiosmtpd tops out near 2,300 msg/s on this machine and would be the
bottleneck, so this speaks only what a sender needs (EHLO/HELO, MAIL, RCPT,
DATA, BDAT, RSET, NOOP, QUIT; PIPELINING and CHUNKING as Postfix offers them)
and does no parsing beyond finding the end of DATA or of a BDAT chunk.
Its own ceiling is what Postfix's C load generator ``smtp-source`` (Debian's
``postfix`` package) pushes into it: :func:`smtp_source_rate`.

It counts accepted messages and, when given a file, records each message's
RCPT TO addresses there (one per line) for exactly-once checks.  The sink is
one asyncio process, so the appends never interleave; a message is written
(and flushed) before its ``250`` goes back, so every copy a sender saw accepted
is in the file.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any


def _address(line: bytes) -> bytes:
    """The address inside ``<…>`` of a MAIL FROM or RCPT TO command line."""
    start, end = line.find(b"<"), line.rfind(b">")
    return line[start + 1 : end] if 0 <= start < end else line.split(b":", 1)[-1].strip()


class _Session(asyncio.Protocol):
    def __init__(self, counter: Any, record: IO[bytes] | None, chunking: bool) -> None:
        self.counter = counter
        self.extensions = b"250-sink\r\n250-PIPELINING\r\n" + (b"250-CHUNKING\r\n" if chunking else b"") \
            + b"250-8BITMIME\r\n250 SIZE 52428800\r\n"
        self.record = record
        self.recipients: list[bytes] = []
        self.buffer = b""
        self.in_data = False
        self.scan_from = 0
        self.chunk_left = 0  # octets of a BDAT chunk still to come
        self.chunk_last = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def _accept_message(self) -> None:
        # Before the 250 is written: the sender must never see an acceptance the file lacks.
        if self.recipients and self.record is not None:
            self.record.write(b"".join(r + b"\n" for r in self.recipients))
            self.record.flush()
        self.recipients = []
        with self.counter.get_lock():
            self.counter.value += 1

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies: list[bytes] = []
        while True:
            if self.chunk_left:
                taken = min(self.chunk_left, len(self.buffer))
                self.buffer = self.buffer[taken:]
                self.chunk_left -= taken
                if self.chunk_left:
                    break
                if self.chunk_last:
                    self._accept_message()
                    replies.append(b"250 OK queued\r\n")
                else:
                    replies.append(b"250 OK chunk\r\n")
                continue
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n", self.scan_from)
                if end < 0:
                    # Next time, search only what is new (plus room for a split terminator).
                    self.scan_from = max(0, len(self.buffer) - 4)
                    break
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                self.scan_from = 0
                self._accept_message()
                replies.append(b"250 OK queued\r\n")
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                break
            line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                replies.append(self.extensions)
            elif verb in (b"MAIL", b"RSET"):
                self.recipients = []
                replies.append(b"250 OK\r\n")
            elif verb == b"RCPT":
                self.recipients.append(_address(line))
                replies.append(b"250 OK\r\n")
            elif verb == b"BDAT":  # RFC 3030: BDAT <octets> [LAST], the octets follow the line
                size, *last = line[5:].split()
                self.chunk_left, self.chunk_last = int(size), bool(last)
                if not self.chunk_left and self.chunk_last:
                    self._accept_message()
                    replies.append(b"250 OK queued\r\n")
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


def _serve(port: int, counter: Any, ready: Any, record_path: str | None, chunking: bool) -> None:
    async def main(record: IO[bytes] | None) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Session(counter, record, chunking), "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    if record_path is None:
        asyncio.run(main(None))
        return
    # Plain blocking appends from the event loop: a line per message to a local file is far
    # cheaper than handing each one to a thread, and the sink serves nothing else.
    with open(record_path, "ab") as record:
        asyncio.run(main(record))


class Sink:
    """The sink in its own (spawned) process; ``count`` messages accepted, :meth:`recipients` their RCPT TOs."""

    def __init__(self, record_path: Path | None = None, *, chunking: bool = True) -> None:
        """``chunking``: offer CHUNKING (BDAT), as Postfix does; without it senders use DATA."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.record_path = record_path
        if record_path is not None:
            record_path.write_bytes(b"")
        # Spawned, not forked: the test process has threads and a running event loop it must not copy.
        context = multiprocessing.get_context("spawn")
        self._counter = context.Value("q", 0)
        ready = context.Event()
        record = str(record_path) if record_path is not None else None
        self._process = context.Process(
            target=_serve, args=(self.port, self._counter, ready, record, chunking), daemon=True
        )
        self._process.start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError("the SMTP sink did not start within 30 s")

    @property
    def count(self) -> int:
        """Messages accepted so far."""
        return int(self._counter.value)

    def reset(self) -> None:
        """Start counting from zero."""
        with self._counter.get_lock():
            self._counter.value = 0

    def recipients(self) -> Counter[str]:
        """How many accepted messages each address received (lower-cased); needs a record file."""
        assert self.record_path is not None, "start the sink with a record_path"
        lines = self.record_path.read_bytes().splitlines()
        return Counter(line.decode().lower() for line in lines if line)

    def stop(self) -> None:
        """End the sink process."""
        self._process.terminate()
        self._process.join(5)


SMTP_SOURCE = "/usr/sbin/smtp-source"


def smtp_source_rate(sink: Sink, count: int, sessions: int, length: int) -> float | None:
    """Messages/s that ``smtp-source`` (C, one connection per session, kept open) gets into the
    sink: ``count`` messages with ``length`` bytes of body. None where smtp-source is missing."""
    program = shutil.which("smtp-source") or (SMTP_SOURCE if Path(SMTP_SOURCE).exists() else None)
    if program is None:
        return None
    sink.reset()
    started = time.perf_counter()
    subprocess.run(
        [program, "-d", "-s", str(sessions), "-m", str(count), "-l", str(length),
         "-f", "bounce@example.org", "-t", "reader@example.org", f"127.0.0.1:{sink.port}"],
        check=True, timeout=600, stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    if sink.count < count:
        raise RuntimeError(f"smtp-source finished but the sink accepted {sink.count} of {count} messages")
    return count / elapsed
