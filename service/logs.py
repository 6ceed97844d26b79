"""Structured logging: JSON in production, readable on a terminal, a request id on every line.

Readers' addresses and tokens are personal or secret.  Call sites log ids,
and :func:`mask_email` / :func:`mask_path` where an address or a path must
appear; :func:`scrub` is the net under them: every line, ours and the
standard-library loggers' (uvicorn, asyncpg, aiosmtplib, aiosmtpd), goes
through it on its way out, because exception messages quote values nobody
chose to log (PostgreSQL's ``DETAIL: Failing row contains (…)``, an SMTP
reply naming the recipient).

The one line per HTTP request (:func:`log_request`) is written without
structlog's processor chain when the format is JSON: it runs on every request,
and the chain cost more than a whole bare request (see bench/http.py).  Its
fields and shape are those of every other line.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import io
import logging
import os
import re
import sys
import threading
import time
from typing import Any

import msgspec
import structlog
from structlog.typing import EventDict

from .settings import Settings

_TOKEN_PATH = re.compile(r"/(confirm|unsubscribe|preferences)/[^/?]+")
# In free text a token ends where URL-safe characters do.
_TOKEN_URL = re.compile(r"(/(?:confirm|unsubscribe|preferences)/)[A-Za-z0-9._~%-]+")
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_API_KEY = re.compile(r"\b(lbk_[0-9a-f]{8}_)[\w-]+")
# PostgreSQL's DETAIL quotes the values of the row or key at fault.
_PG_DETAIL = re.compile(r"^DETAIL:.*$", re.MULTILINE)
_JSON = msgspec.json.Encoder(enc_hook=repr)

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("letterbox_request_id", default=None)
"""The id of the HTTP request being answered (set by service/http_observation.py), on every line it causes."""


class _HeldLines:
    """Info and debug lines held until the event loop's current turn ends, then written together (in as few
    writes as a pipe keeps whole).

    A busy process answers many requests per loop turn, and a write to a log file or pipe cost
    as much as a fifth of a bare request.  Lines wait never beyond the turn (or the process's
    exit); a warning or worse first writes out what is held, then itself, so the order stays.
    A write stays under a pipe's atomic size, so the lines of a ``serve``'s processes sharing
    one standard error never run into each other.  Only ``serve``'s processes hold lines
    (:func:`configure_logging`'s ``hold_lines``): their loops run for the process's life, where a
    test's loop may end before its turn does, and its lines would go out in another test.
    """

    _MAX_WRITE = 4096  # PIPE_BUF on Linux: writes up to it are never interleaved with others'
    _MAX_HELD = 64  # lines held at most: a turn that logs more writes them as it goes

    def __init__(self) -> None:
        self._lines: list[str | _Answered] = []
        self._lock = threading.Lock()  # lines may come from threads (asyncio.to_thread) as well
        self.enabled = False

    def hold(self, line: str | _Answered) -> None:
        """Write ``line`` (a whole line, newline included, or a request's line to be made when written: a busy
        process then makes its turn's request lines together, where making each as its request ended cost
        several times as much, see bench/http.py) at the end of the current loop turn, or now when not
        holding or outside a loop."""
        if not self.enabled:
            self.write(line if isinstance(line, str) else _request_line(line))
            return
        with self._lock:
            if len(self._lines) >= self._MAX_HELD:
                self._write_held()
            first = not self._lines
            self._lines.append(line)
        if first:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not in a loop's thread: nothing would write it later
                self.flush()

    def write(self, text: str) -> int:
        """Write what is held, then ``text``, in that order."""
        with self._lock:
            self._write_held()
            return sys.stderr.write(text)

    def flush(self) -> None:
        """Write what is held now."""
        with self._lock:
            self._write_held()

    def _write_held(self) -> None:
        """Write the held lines in as few writes as keep each within :attr:`_MAX_WRITE` bytes (a longer line alone)."""
        if not self._lines:
            return
        lines = [line if isinstance(line, str) else _request_line(line) for line in self._lines]
        self._lines.clear()
        chunk: list[str] = []
        size = 0
        for line in lines:
            length = len(line) if line.isascii() else len(line.encode())
            if chunk and size + length > self._MAX_WRITE:
                sys.stderr.write("".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += length
        sys.stderr.write("".join(chunk))


_held = _HeldLines()
atexit.register(_held.flush)


class _Stderr(io.TextIOBase):
    """Whatever ``sys.stderr`` is at write time (test runners swap it), after any request lines held."""

    def write(self, text: str) -> int:
        return _held.write(text)

    def flush(self) -> None:
        _held.flush()
        sys.stderr.flush()


class _LineWriter:
    """structlog's output: debug and info lines may wait for the end of the loop turn (:class:`_HeldLines`);
    warnings and worse are written at once (after what is held, so the order stays).

    Each line is whole, newline included, in one write: the processes of one ``serve`` share
    standard error and their lines must not run into each other.
    """

    def __init__(self, *_: Any) -> None:
        """structlog's logger factory is called with the logger's name, which no line needs here."""

    def _held_line(self, message: str) -> None:
        _held.hold(message + "\n")

    def _line_now(self, message: str) -> None:
        _held.write(message + "\n")

    debug = info = msg = _held_line
    warning = warn = error = err = critical = exception = fatal = _line_now


class _StdlibHandler(logging.StreamHandler[_Stderr]):
    """Our handler on the root logger; a later ``configure_logging`` replaces it rather than adding another."""


def configure_logging(settings: Settings, *, hold_lines: bool = False, cache_loggers: bool = False) -> None:
    """Set up structlog, and route the standard-library loggers through the same rendering and scrubbing.

    For the processes of ``serve``, which configure once: ``hold_lines``, info and debug lines
    wait for the end of the event loop's turn (:class:`_HeldLines`); ``cache_loggers``, each
    logger keeps what it was first built with instead of being built again for every line (a
    process that configures again, a test, would leave loggers on the old set-up).
    """
    _held.flush()  # lines held under the old set-up go out before it changes
    _held.enabled = hold_lines
    fmt = settings.log_format or ("console" if sys.stderr.isatty() else "json")
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    renderer: Any = structlog.processors.JSONRenderer(_json) if fmt == "json" else structlog.dev.ConsoleRenderer()
    structlog.configure(
        # No merge_contextvars: nothing binds structlog's context variables; the request id, the one
        # value every line of a request carries, is REQUEST_ID (merging copied the whole context per line).
        processors=[
            add_request_id,
            add_process,
            structlog.processors.add_log_level,
            add_timestamp,
            structlog.processors.format_exc_info,
            scrub_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_LineWriter,
        cache_logger_on_first_use=cache_loggers,
    )
    handler = _StdlibHandler(_Stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                add_request_id,
                add_process,
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                add_timestamp,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                scrub_event,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _StdlibHandler)] + [handler]
    _request_lines.configure(json=fmt == "json", enabled=level <= logging.INFO)
    # Libraries' info and debug lines (aiosmtplib's would quote every RCPT TO) stay off at any level of ours.
    root.setLevel(max(level, logging.WARNING))


def add_request_id(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``request_id``, when the line is logged while an HTTP request is answered."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


class _Timestamps:
    """Times in UTC as ISO 8601 with microseconds (``2026-11-30T13:27:37.106274Z``), the date and time
    formatted once a second: a line's stamp through :class:`datetime.datetime` cost a quarter of its processors."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")
        """The last second formatted, and its text: one value, so a thread never sees one without the other."""

    def format(self, now: float) -> str:
        """``now`` (seconds since the epoch) as every line's ``timestamp``."""
        second = int(now)
        known, text = self._second
        if second != known:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int((now - second) * 1_000_000):06d}Z"


_timestamps = _Timestamps()


def add_timestamp(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``timestamp``, now (see :class:`_Timestamps`)."""
    event_dict["timestamp"] = _timestamps.format(time.time())
    return event_dict


def add_process(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``process``, the id of the process that logged the line.

    It tells the processes of one ``serve`` apart (service/serving.py); ``pid`` stays free for
    lines about another process (the embedded PostgreSQL's postmaster).
    """
    event_dict["process"] = os.getpid()
    return event_dict


def _json(event: EventDict, **_: Any) -> str:
    """One log line as JSON through msgspec (several times faster than the standard library's encoder)."""
    return _JSON.encode(event).decode()


def scrub(text: str) -> str:
    """``text`` with addresses masked, personal-link tokens and API-key secrets hidden, DETAIL lines withheld."""
    # Each pattern runs only where what it needs to find anything is there: most values have none
    # of it (a path has a "/" but rarely a token), and a substring test costs a fraction of a
    # regular expression's scan (this runs on every value of every line).
    if "DETAIL:" in text:
        text = _PG_DETAIL.sub("DETAIL:  (withheld from the log: it quotes the row)", text)
    if "/confirm/" in text or "/unsubscribe/" in text or "/preferences/" in text:
        text = _TOKEN_URL.sub(r"\1***", text)
    if "lbk_" in text:
        text = _API_KEY.sub(r"\1***", text)
    if "@" in text:
        text = _EMAIL.sub(lambda m: mask_email(m[0]), text)
    return text


def scrub_event(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: :func:`scrub` every text value of the line (after exceptions are rendered)."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = scrub(value)
    return event_dict


def mask_email(address: str) -> str:
    """``alice@example.org`` → ``a***@example.org``: enough to debug, not enough to identify."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_path(path: str) -> str:
    """``path`` fit for a log: tokens in public paths hidden, API-key secrets hidden, addresses masked
    segment by segment (``/v1/suppressions/a***@example.org``).

    Not :func:`scrub`: its free-text address pattern would take the slashes before an address for
    part of it and leave ``/***@example.org``.
    """
    if "/confirm/" in path or "/unsubscribe/" in path or "/preferences/" in path:
        path = _TOKEN_PATH.sub(lambda m: f"/{m[1]}/***", path)
    if "lbk_" in path:
        path = _API_KEY.sub(r"\1***", path)
    if "@" not in path:  # most paths: nothing to mask (this runs on every request)
        return path
    return "/".join(mask_email(segment) if "@" in segment else segment for segment in path.split("/"))


class _RequestLines:
    """How :func:`log_request` writes, as :func:`configure_logging` last set it (through structlog until then)."""

    def __init__(self) -> None:
        self.json = False
        self.enabled = True

    def configure(self, *, json: bool, enabled: bool) -> None:
        self.json, self.enabled = json, enabled


_request_lines = _RequestLines()


def log_request(request_id: str, method: str, path: str, status: int, ms: float) -> None:
    """The line for one answered HTTP request (event ``request``, at info), its path masked and scrubbed.

    In JSON it is made here, not by structlog, with the keys every line has (``request_id``, ``process``,
    ``level``, ``timestamp``), when the held lines are written (see :class:`_HeldLines`); on a terminal
    it goes through structlog like any other line.  ``request_id`` is one
    :class:`service.http_observation.ObserveRequests` made or checked: nothing in it needs escaping.
    """
    lines = _request_lines
    if not lines.enabled:
        return
    if not lines.json:
        structlog.get_logger("letterbox.http").info("request", method=scrub(method), path=mask_path(path),
                                                    status=status, ms=ms)
        return
    _held.hold((request_id, method, path, status, ms, time.time()))


_Answered = tuple[str, str, str, int, float, float]
"""A request's line before it is made: request id, method, path, status, ms, and when it ended."""


def _request_line(answered: _Answered) -> str:
    request_id, method, path, status, ms, when = answered
    return (
        f'{{"event":"request","request_id":"{request_id}","method":{_json_text(scrub(method))},'
        f'"path":{_json_text(mask_path(path))},"status":{status},"ms":{ms},"process":{os.getpid()},"level":"info",'
        f'"timestamp":"{_timestamps.format(when)}"}}\n'
    )


def _json_text(text: str) -> str:
    """``text`` as a JSON string; most are printable ASCII with nothing to escape, and are quoted as they are."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return _JSON.encode(text).decode()
