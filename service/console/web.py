"""What every console page shares: security headers, rendering with the layout's context, error pages.

The Content-Security-Policy allows no inline script or style, styles and
scripts only from our own origin; frames only from ourselves (the sandboxed
edition preview).  No page is cached, and no page sends a Referer: the API
keys page shows a token once, and URLs may name readers.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import structlog
from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap

from ..errors import InvalidValue, LetterboxError

log = structlog.get_logger(__name__)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
RESPONSE_HEADERS = [ResponseHeader(name=name, value=value) for name, value in HEADERS.items()]

AnyRequest = Request[Any, Any, Any]


class ConsolePageError(LetterboxError):
    """An error shown as a console page; raising it also rolls back the request's transaction."""

    title = "There is a problem"


class ConsoleForbidden(ConsolePageError):
    """The signed-in user's role does not allow this."""

    status_code = 403
    title = "You cannot do this"


class FormRefused(ConsolePageError):
    """A post without this session's CSRF token, or from another site's page."""

    status_code = 403
    title = "This form could not be sent"


class SignedOut(Exception):
    """No live session: the browser is sent to the sign-in page, to come back to ``next``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def render(template: str, context: dict[str, Any] | None = None, *, status: int = 200) -> Template:
    """A console page; the layout finds the signed-in operator and the CSRF field on the request."""
    return Template(template_name=template, context=context or {}, status_code=status, headers=HEADERS)


def see_other(path: str) -> Redirect:
    """303 to another console page (after a form post, or to sign in)."""
    return Redirect(path, status_code=303, headers=HEADERS)


def _signed_out(_request: AnyRequest, exc: SignedOut) -> Response[Any]:
    return see_other("/console/sign-in?" + urlencode({"next": exc.next_path}))


_MESSAGES = {
    403: "You do not have permission to do this.",
    404: "There is nothing at this address.",
    405: "This page does not accept that kind of request.",
    413: "What was sent is larger than this page accepts.",
}


def _error_page(_request: AnyRequest, exc: Exception) -> Response[Any]:
    if isinstance(exc, ConsolePageError):
        status, title, message = exc.status_code, exc.title, exc.detail
    elif isinstance(exc, LetterboxError):
        status, message = exc.status_code, exc.detail
        title = HTTPStatus(status).phrase
    elif isinstance(exc, InvalidValue):  # a value the form's checks refused: say which and why
        status, title, message = 400, HTTPStatus(400).phrase, exc.detail
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        message = _MESSAGES.get(status, "The request could not be understood. Please go back and try again.")
        title = HTTPStatus(status).phrase
    else:
        log.error("unhandled_error", exc_info=exc)
        status, title = 500, "Something went wrong"
        message = "Something went wrong on our side. It has been logged; please try again later."
    return render("console/error.html", {"title": title, "message": message}, status=status)


def console_exception_handlers() -> ExceptionHandlersMap:
    """Signed out: to the sign-in page; every other error: a console page (never problem+json)."""
    return {
        SignedOut: _signed_out, LetterboxError: _error_page, InvalidValue: _error_page, HTTPException: _error_page,
        Exception: _error_page,
    }
