"""DKIM signatures made in a child process of the worker's own, beside its event loop.

A signature costs about 350 µs of CPU for a 38 KB copy: the RSA-2048 operation (about 250 µs)
plus canonicalising and hashing the copy. Made in threads of the worker's process, the threads
and the event loop took turns with one GIL: the signed rate was 0.40–0.61 of the unsigned one,
and the worker's CPU per copy 1,025–1,254 µs against 306–416 µs unsigned (bench/send.py). A
child process has an interpreter of its own: the event loop sends it each copy's header fields
and body parts and reads the DKIM-Signature field back, while the child hashes and signs on
another core.

An edition's shared body pieces (see :class:`.dkim.BodyPieces`) cross the pipe once: the child
keeps them by number, and a copy names them between its own short values. So per copy the
event loop writes about 2 KB, not the whole copy.

The child is ``python -m service.delivery.dkim_process``; the key reaches it through the pipe,
never the command line or the environment. It ends when the pipe closes, so it never outlives
the worker, and a child that dies is replaced on the next copy (the copies it held are signed
again by the new one, which is sent the pieces it needs anew).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import struct
import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO

import structlog

from .dkim import KeyRing, body_hash

log = structlog.get_logger(__name__)

_KEY = struct.Struct("!HI")  # selector length, key length; then both
# Frames to the child start with a kind and a number (a request id, or a piece's number):
_FRAME = struct.Struct("!BI")
_MESSAGE, _PARTS, _PIECE, _FORGET = range(4)
_MESSAGE_HEAD = struct.Struct("!HI")  # domain length, message length; then both
_PARTS_HEAD = struct.Struct("!HII")  # domain length, fields length, number of parts; then domain and fields
_PART = struct.Struct("!?I")  # a kept piece (then its number), or not (then the part's length and bytes)
_PIECE_HEAD = struct.Struct("!I")  # the piece's length; then the piece, kept under the frame's number
_REPLY = struct.Struct("!I?I")  # request id, signed (else the payload is the ValueError's text), payload length
_PIPE_BYTES = 1 << 20  # a larger pipe than Linux's default 64 KB: fewer wake-ups of the child
_STOP_SECONDS = 5.0
_MAX_PIECES = 4096  # pieces numbered before the child is told to forget them all and start again


class SignerGone(Exception):
    """The signing process ended before it answered."""


class _Child:
    """One running signing process and the requests it has not answered yet."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.pieces: set[int] = set()
        """The numbers of the pieces this child keeps."""
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
        self._piece_numbers = itertools.count()
        # id() of a shared piece -> (the piece, kept alive so that its id is not reused; its number).
        self._numbers: dict[int, tuple[bytes, int]] = {}
        self._forget = False

    async def header(self, message: bytes, domain: str) -> bytes:
        """The DKIM-Signature field for a CRLF-normal ``message`` (see :meth:`DkimSigner.header`);
        ValueError as it raises. When the child dies meanwhile, a new one signs the copy."""
        name = domain.encode()
        return await self._ask(lambda child, request: b"".join(
            (_FRAME.pack(_MESSAGE, request), _MESSAGE_HEAD.pack(len(name), len(message)), name, message)))

    async def signed_header(self, fields: bytes, parts: Sequence[bytes], shared: Callable[[bytes], bool],
                            domain: str) -> bytes:
        """The same for a message given as its header fields and its body's relaxed parts (see
        :meth:`.dkim.BodyPieces.split`); the parts for which ``shared`` holds are sent to the
        child once and named after that."""
        name = domain.encode()

        def frame(child: _Child, request: int) -> bytes:
            out = [b"", _FRAME.pack(_PARTS, request), _PARTS_HEAD.pack(len(name), len(fields), len(parts)), name,
                   fields]
            pieces = []
            for part in parts:
                if shared(part):
                    number = self._number(part)
                    if number not in child.pieces:
                        child.pieces.add(number)
                        pieces.append(_FRAME.pack(_PIECE, number) + _PIECE_HEAD.pack(len(part)) + part)
                    out.append(_PART.pack(True, number))
                else:
                    out += (_PART.pack(False, len(part)), part)
            out[0] = b"".join(pieces)
            return b"".join(out)

        return await self._ask(frame)

    def _number(self, piece: bytes) -> int:
        known = self._numbers.get(id(piece))
        if known is not None and known[0] is piece:
            return known[1]
        if len(self._numbers) >= _MAX_PIECES:
            self._numbers.clear()
            self._forget = True
        number = next(self._piece_numbers)
        self._numbers[id(piece)] = (piece, number)
        return number

    async def _ask(self, frame: Callable[[_Child, int], bytes]) -> bytes:
        for attempt in (1, 2):
            child = await self._running()
            if self._forget:  # numbers were handed out afresh: the child's pieces are of no more use
                self._forget = False
                child.pieces.clear()
                assert child.process.stdin is not None
                child.process.stdin.write(_FRAME.pack(_FORGET, 0))
            request = next(self._ids)
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            child.pending[request] = future
            stdin = child.process.stdin
            assert stdin is not None
            try:
                stdin.write(frame(child, request))
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


def _read(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The child's loop: read the key, then answer each request in order until the pipe closes."""
    try:
        selector_size, key_size = _KEY.unpack(_read(stdin, _KEY.size))
        keys = KeyRing(_read(stdin, selector_size).decode(), _read(stdin, key_size))
        pieces: dict[int, bytes] = {}
        while head := stdin.read(_FRAME.size):
            kind, number = _FRAME.unpack(head)
            if kind == _PIECE:
                (size,) = _PIECE_HEAD.unpack(_read(stdin, _PIECE_HEAD.size))
                pieces[number] = _read(stdin, size)
                continue
            if kind == _FORGET:
                pieces.clear()
                continue
            try:
                if kind == _MESSAGE:
                    domain_size, message_size = _MESSAGE_HEAD.unpack(_read(stdin, _MESSAGE_HEAD.size))
                    domain, message = _read(stdin, domain_size).decode(), _read(stdin, message_size)
                    payload = keys.signer_for(domain).header(message)
                else:
                    domain_size, fields_size, count = _PARTS_HEAD.unpack(_read(stdin, _PARTS_HEAD.size))
                    domain, fields = _read(stdin, domain_size).decode(), _read(stdin, fields_size)
                    parts = []
                    for _ in range(count):
                        kept, value = _PART.unpack(_read(stdin, _PART.size))
                        parts.append(pieces[value] if kept else _read(stdin, value))
                    payload = keys.signer_for(domain).signed_header(fields, body_hash(parts))
                signed = True
            except ValueError as exc:
                payload, signed = str(exc).encode(), False
            stdout.write(_REPLY.pack(number, signed, len(payload)) + payload)
            stdout.flush()
    except EOFError:
        return


if __name__ == "__main__":
    with contextlib.suppress(OSError):
        fcntl.fcntl(0, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):  # the worker's Ctrl-C reaches us too
        serve(sys.stdin.buffer, sys.stdout.buffer)
