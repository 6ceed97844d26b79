"""One small error hierarchy and its one mapping to RFC 9457 problem+json.

Handlers raise these; nothing else decides status codes.  Anything unexpected
becomes a bare 500 whose body says nothing about the internals (the log has
the traceback, tied to the request id).  A database that cannot be reached
(down, restarting, out of connections) is a 503 with ``Retry-After``: problem+json
on the API, a page on the public pages, and one warning line per outage rather
than a traceback per request.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from .db.outage_log import OutageLog

log = structlog.get_logger("letterbox.errors")

PROBLEM_JSON = "application/problem+json"
# Set (via a router's ``opt``) on routes whose errors are HTML pages rather than problem+json.
ERROR_PAGES = "error_pages"

UnavailablePage = Callable[[Request[Any, Any, Any], dict[str, str]], Response[Any]]
"""Renders the 503 page for people (the public pages' look), given the headers to send."""


class LetterboxError(Exception):
    """Base of the errors that map to a 4xx problem response."""

    status_code = 400

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(LetterboxError):
    status_code = 400


class Unauthorized(LetterboxError):
    status_code = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="letterbox"'})


class Forbidden(LetterboxError):
    status_code = 403


class NotFound(LetterboxError):
    status_code = 404


class Conflict(LetterboxError):
    status_code = 409


class PayloadTooLarge(LetterboxError):
    status_code = 413


class UnsupportedMediaType(LetterboxError):
    """The body is in a format this endpoint does not read."""

    status_code = 415


class Unprocessable(LetterboxError):
    status_code = 422


class InvalidValue(ValueError):
    """A value is not acceptable; the message is a sentence for the person who sent it.

    Raised by checking code that knows nothing of HTTP (and caught by the importer, which
    reports it per line). Let through a handler, it is a 422 whose detail names ``field``
    when the raiser gave one: the one mapping, in :func:`exception_handlers`.
    """

    def __init__(self, message: str, *, field: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.extra = extra or {}

    @property
    def detail(self) -> str:
        """The message, prefixed with the field it is about."""
        return f"{self.field}: {self}" if self.field else str(self)


# Unique constraints a client can trip, by name, and what to tell them.
_UNIQUE_MESSAGES = {
    "lists_slug_key": "A list with this slug already exists.",
    "agencies_pkey": "An agency with this slug already exists.",
    "roles_pkey": "A role with this slug already exists.",
    "segments_pkey": "A segment with this slug already exists.",
    "subscribers_email_key": "A subscriber with this address already exists.",
    "editions_idempotency_key": "An edition with this Idempotency-Key already exists.",
}


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> Response[Any]:
    """Build a problem+json response."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _letterbox_error(_: Request[Any, Any, Any], exc: LetterboxError) -> Response[Any]:
    return problem(exc.status_code, exc.detail, headers=exc.headers, **exc.extra)


def _invalid_value(_: Request[Any, Any, Any], exc: InvalidValue) -> Response[Any]:
    return problem(422, exc.detail, **exc.extra)


def _validation_detail(exc: ValidationException) -> str:
    messages: list[str] = []
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                where = item.get("key") or item.get("source") or ""
                message = str(item.get("message", "")).strip()
                messages.append(f"{where}: {message}" if where and message else message or str(where))
    text = "; ".join(m for m in messages if m)
    return f"The request is not valid: {text}." if text else "The request is not valid."


def _http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        status = 422 if exc.status_code == 400 else exc.status_code
        return problem(status, _validation_detail(exc))
    status = exc.status_code
    detail = exc.detail if exc.detail and exc.detail != HTTPStatus(status).phrase else _default_detail(status)
    return problem(status, detail, headers=exc.headers)


def _default_detail(status: int) -> str:
    return {
        404: "There is nothing at this address.",
        405: "This address does not accept that method.",
        413: "The request body is larger than this service accepts.",
    }.get(status, HTTPStatus(status).description or HTTPStatus(status).phrase)


def _unique_violation(_: Request[Any, Any, Any], exc: asyncpg.UniqueViolationError) -> Response[Any]:
    constraint = getattr(exc, "constraint_name", None) or ""
    return problem(409, _UNIQUE_MESSAGES.get(constraint, "This would duplicate an existing record."))


# PostgreSQL text and jsonb cannot hold U+0000: a value carrying it fails with one of these.
# The error rolls back the transaction it happened in, so the 422 leaves nothing behind.
_UNSTORABLE_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)


def _data_error(_: Request[Any, Any, Any], exc: asyncpg.DataError) -> Response[Any]:
    log.warning("data_error", error=type(exc).__name__)
    if isinstance(exc, _UNSTORABLE_TEXT):
        return problem(422, "Text in the request contains a character that cannot be stored (NUL, \\u0000).")
    return problem(422, "A value in the request is out of range or malformed.")


def _too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    # msgspec recurses while decoding; JSON nested thousands deep exhausts the stack.
    return problem(422, "The request body is nested too deeply.")


# The database cannot be reached, as opposed to refusing a statement: the connection failed,
# was cut (a restart, a killed postmaster) or timed out, the server is starting or shutting
# down, or it has no connection left. Narrower than DATABASE_TROUBLE (service/db/pool.py),
# whose PostgresError also covers mistakes in our own SQL, which must stay 500s.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,  # includes TimeoutError: a pool acquire or connect that timed out
    asyncpg.ConnectionDoesNotExistError,  # not all of InterfaceError: it also means misuse, a bug
    asyncpg.exceptions.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)
RETRY_AFTER_SECONDS = 5


def is_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` means the database cannot be reached (see ``DATABASE_UNAVAILABLE``).

    Also a pooled connection found closed when used (the server went away between the pool
    handing it out and the first statement): the driver raises a bare InterfaceError saying
    "connection is closed", while its other InterfaceErrors mean misuse, a bug.
    """
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)
def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled_error", exc_info=exc)
    return problem(500, "Something went wrong on our side; it has been logged.")


def exception_handlers(unavailable_page: UnavailablePage | None = None) -> ExceptionHandlersMap:
    """The app's exception handlers: every error becomes problem+json (a page on public pages).

    Built once per app: the outage log (one warning per database outage) is the app's own.
    ``unavailable_page`` answers people on routes marked :data:`ERROR_PAGES` when the database is away.
    """
    outages = OutageLog("database_unavailable", "refused_requests")

    def database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        outages.note(exc)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if unavailable_page is not None and request.route_handler.opt.get(ERROR_PAGES):
            return unavailable_page(request, headers)
        return problem(503, "The database is unavailable just now; nothing was changed. Try again shortly.",
                       headers=headers)

    def interface_error(request: Request[Any, Any, Any], exc: asyncpg.InterfaceError) -> Response[Any]:
        if is_unavailable(exc):
            return database_unavailable(request, exc)
        return _unexpected(request, exc)

    def exception_group(request: Request[Any, Any, Any], exc: ExceptionGroup[Exception]) -> Response[Any]:
        # Litestar groups the errors raised while closing a request's dependencies (its transaction)
        # and chains the handler's own error as the cause: a connection that dropped fails both.
        cause = exc.__cause__
        if is_unavailable(cause) or all(is_unavailable(member) for member in exc.exceptions):
            return database_unavailable(request, cause if isinstance(cause, Exception) else exc.exceptions[0])
        # Anything else is handled as any other unexpected error of this route (a page on public pages).
        fallback = request.route_handler.resolve_exception_handlers()[Exception]
        return fallback(request, exc)

    return {
        LetterboxError: _letterbox_error,
        InvalidValue: _invalid_value,
        HTTPException: _http_exception,
        asyncpg.UniqueViolationError: _unique_violation,
        asyncpg.DataError: _data_error,
        RecursionError: _too_deep,
        **dict.fromkeys(DATABASE_UNAVAILABLE, database_unavailable),
        asyncpg.InterfaceError: interface_error,
        ExceptionGroup: exception_group,
        Exception: _unexpected,
    }

