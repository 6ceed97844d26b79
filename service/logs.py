"""Structured logging: JSON in production, readable on a terminal, a request id on every line.

Readers' addresses and tokens are personal or secret.  Call sites log ids,
and :func:`mask_email` / :func:`mask_path` where an address or a path must
appear; :func:`scrub` is the net under them: every line, ours and the
standard-library loggers' (uvicorn, asyncpg, aiosmtplib, aiosmtpd), goes
through it on its way out, because exception messages quote values nobody
chose to log (PostgreSQL's ``DETAIL: Failing row contains (…)``, an SMTP
reply naming the recipient).
"""

from __future__ import annotations

import functools
import io
import itertools
import logging
import os
import re
import secrets
import sys
import time
from typing import Any, TextIO, cast

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from structlog.typing import EventDict

from .settings import Settings

_TOKEN_PATH = re.compile(r"/(confirm|unsubscribe|preferences)/[^/?]+")
# In free text a token ends where URL-safe characters do.
_TOKEN_URL = re.compile(r"(/(?:confirm|unsubscribe|preferences)/)[A-Za-z0-9._~%-]+")
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_API_KEY = re.compile(r"\b(lbk_[0-9a-f]{8}_)[\w-]+")
# PostgreSQL's DETAIL quotes the values of the row or key at fault.
_PG_DETAIL = re.compile(r"^DETAIL:.*$", re.MULTILINE)
_GIVEN_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class _Stderr(io.TextIOBase):
    """Whatever ``sys.stderr`` is at write time (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _StdlibHandler(logging.StreamHandler[_Stderr]):
    """Our handler on the root logger; a later ``configure_logging`` replaces it rather than adding another."""


def configure_logging(settings: Settings) -> None:
    """Set up structlog, and route the standard-library loggers through the same rendering and scrubbing."""
    fmt = settings.log_format or ("console" if sys.stderr.isatty() else "json")
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    renderer: Any = structlog.processors.JSONRenderer(_json) if fmt == "json" else structlog.dev.ConsoleRenderer()
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_process,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            scrub_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write per line, newline included (print() writes the newline apart): lines of the
        # processes of one `serve` share standard error and must not run into each other.
        # structlog asks for a TextIO and uses only write() and flush(), which _Stderr has.
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _Stderr())),
        cache_logger_on_first_use=False,
    )
    handler = _StdlibHandler(_Stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                add_process,
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                timestamper,
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
    # Libraries' info and debug lines (aiosmtplib's would quote every RCPT TO) stay off at any level of ours.
    root.setLevel(max(level, logging.WARNING))


def add_process(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``process``, the id of the process that logged the line.

    It tells the processes of one ``serve`` apart (service/serving.py); ``pid`` stays free for
    lines about another process (the embedded PostgreSQL's postmaster).
    """
    event_dict["process"] = os.getpid()
    return event_dict


def _json(event: EventDict, **_: Any) -> str:
    """One log line as JSON through msgspec (several times faster than the standard library's encoder)."""
    return msgspec.json.encode(event, enc_hook=repr).decode()


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
    """Hide the token in token-carrying public paths, and mask any address in a path (``/v1/suppressions/…``)."""
    path = _TOKEN_PATH.sub(lambda m: f"/{m[1]}/***", path)
    return "/".join(mask_email(segment) if "@" in segment else segment for segment in path.split("/"))


class RequestIdMiddleware:
    """Bind a request id (from ``X-Request-ID`` or new) to every log line and echo it back.

    A new id is this process's random prefix and a counter (32 hex digits, as a UUID's):
    unique is all an id needs to be, and a counter costs no read of the system's random source.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    @functools.cached_property
    def _log(self) -> Any:
        """The request logger, bound once, as logging is configured when the app serves its first request.

        ``structlog.get_logger()`` hands out a lazy proxy that, logger caching being off, builds a new
        bound logger on every call: a few per cent of a ``/healthz``.
        """
        return structlog.get_logger("letterbox.http").bind()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"").decode("latin-1")
        request_id = (
            incoming if _GIVEN_REQUEST_ID.fullmatch(incoming) else f"{self._prefix}{next(self._counter):016x}"
        )
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._log.info(
                "request",
                method=scope.get("method", ""),
                path=mask_path(scope["path"]),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
