"""DKIM signatures made in a child process of the worker's own, beside its event loop.

A signature costs about 350 µs of CPU for a 38 KB copy: the RSA-2048 operation (about 250 µs)
plus reading, canonicalising and hashing the copy. Made in threads of the worker's process, the
threads and the event loop took turns with one GIL: the signed rate was 0.40–0.61 of the unsigned
one, and the worker's CPU per copy 1,025–1,254 µs against 306–416 µs unsigned (bench/send.py).
A child process has an interpreter of its own: the event loop writes each copy down a pipe and
reads its DKIM-Signature field back, a few microseconds of its time, while the child signs on
another core.

The child is ``python -m service.delivery.dkim_process``; the key reaches it through the pipe,
never the command line or the environment. It ends when the pipe closes, so it never outlives
the worker, and a child that dies is replaced on the next copy (the copies it held are signed
again by the new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import struct
import sys
from typing import BinaryIO

import structlog

from .dkim import KeyRing

log = structlog.get_logger(__name__)

_KEY = struct.Struct("!HI")  # selector length, key length; then both
# Request id, split, domain length, lengths of two parts; then the domain and the parts: the message
# and nothing, or (split) its header fields and its relaxed body lines (see dkim.BodyPieces).
_REQUEST = struct.Struct("!I?HII")
_REPLY = struct.Struct("!I?I")  # request id, signed (else the payload is the ValueError's text), payload length
_PIPE_BYTES = 1 << 20  # room for many copies in the pipe (Linux's default is 64 KB, less than two copies)
_STOP_SECONDS = 5.0


class SignerGone(Exception):
    """The signing process ended before it answered."""


class _Child:
    """One running signing process and the requests it has not answered yet."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.reader = asyncio.create_task(self._read(), name="letterbox-dkim-reader")

    @property
    def alive(self) -> bool:
        return not self.reader.done()

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while True:
                request, signed, size = _REPLY.unpack(await self.process.stdout.readexactly(_REPLY.size))
                payload = await self.process.stdout.readexactly(size)
                future = self.pending.pop(request, None)
                if future is None or future.done():  # the copy's sender gave up on it (stopping)
                    continue
                if signed:
                    future.set_result(payload)
                else:
                    future.set_exception(ValueError(payload.decode("utf-8", "replace")))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(SignerGone("the DKIM signing process ended"))
            self.pending.clear()


class SigningProcess:
    """Signs copies in a child process with one key, for whatever domain each copy names."""

    def __init__(self, selector: str, key_pem: bytes) -> None:
        self._key_frame = _KEY.pack(len(selector.encode()), len(key_pem)) + selector.encode() + key_pem
        self._child: _Child | None = None
        self._starting = asyncio.Lock()
        self._ids = itertools.count()

    async def header(self, message: bytes, domain: str) -> bytes:
        """The DKIM-Signature field for a CRLF-normal ``message`` (see :meth:`DkimSigner.header`);
        ValueError as it raises. When the child dies meanwhile, a new one signs the copy."""
        return await self._ask(domain, False, message, b"")

    async def header_for(self, fields: bytes, canonical_lines: bytes, domain: str) -> bytes:
        """The same for a message given as its header fields and relaxed body lines (see
        :meth:`DkimSigner.header_for`)."""
        return await self._ask(domain, True, fields, canonical_lines)

    async def _ask(self, domain: str, split: bool, first: bytes, second: bytes) -> bytes:
        name = domain.encode()
        sizes = (len(name), len(first), len(second))
        for attempt in (1, 2):
            child = await self._running()
            request = next(self._ids)
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            child.pending[request] = future
            stdin = child.process.stdin
            assert stdin is not None
            try:
                stdin.write(b"".join((_REQUEST.pack(request, split, *sizes), name, first, second)))
                await stdin.drain()
                return await future
            except (SignerGone, ConnectionError):
                child.pending.pop(request, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _running(self) -> _Child:
        child = self._child
        if child is not None and child.alive:
            return child
        async with self._starting:
            if self._child is None or not self._child.alive:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", __name__, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
                )
                assert process.stdin is not None
                pipe = process.stdin.get_extra_info("pipe")
                if pipe is not None:
                    with contextlib.suppress(OSError):  # a larger pipe is an optimisation, not a need
                        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
                process.stdin.write(self._key_frame)
                self._child = _Child(process)
                log.info("dkim_signer_started", pid=process.pid)
            return self._child

    @property
    def pid(self) -> int | None:
        """The running signing process (None before the first copy and after :meth:`close`)."""
        return self._child.process.pid if self._child is not None and self._child.alive else None

    async def close(self) -> None:
        """Close the pipe, which ends the child; kill it if it does not end within a few seconds."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.process.stdin is not None:
            child.process.stdin.close()
        try:
            await asyncio.wait_for(child.process.wait(), _STOP_SECONDS)
        except TimeoutError:
            child.process.kill()
            await child.process.wait()
        await child.reader


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The child's loop: read the key, then answer each request in order until the pipe closes."""
    head = _read_exactly(stdin, _KEY.size)
    if head is None:
        return
    selector_size, key_size = _KEY.unpack(head)
    selector, key = stdin.read(selector_size).decode(), stdin.read(key_size)
    keys = KeyRing(selector, key)
    while (head := _read_exactly(stdin, _REQUEST.size)) is not None:
        request, split, domain_size, first_size, second_size = _REQUEST.unpack(head)
        domain, first, second = stdin.read(domain_size).decode(), stdin.read(first_size), stdin.read(second_size)
        if len(second) != second_size:
            return
        try:
            signer = keys.signer_for(domain)
            payload = signer.header_for(first, second) if split else signer.header(first)
            signed = True
        except ValueError as exc:
            payload, signed = str(exc).encode(), False
        stdout.write(_REPLY.pack(request, signed, len(payload)) + payload)
        stdout.flush()


if __name__ == "__main__":
    with contextlib.suppress(OSError):
        fcntl.fcntl(0, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):  # the worker's Ctrl-C reaches us too
        serve(sys.stdin.buffer, sys.stdout.buffer)
