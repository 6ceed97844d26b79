"""What every public page shares: security headers, the layout's context, HTML error pages, the stylesheet.

The Content-Security-Policy allows no script at all and styles only from our
own stylesheet, so nothing a reader typed can run even if a template slipped.
Pages reached through a signed link send ``Referrer-Policy: no-referrer`` so
the token never leaves in a Referer header, and no page is cached: each
carries a fresh CSRF token or personal details.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from email.utils import parseaddr
from http import HTTPStatus
from pathlib import Path
from typing import Any

import jinja2
import msgspec
import structlog
from litestar import Litestar, MediaType, Request, Response, get
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.response.base import ASGIResponse
from litestar.types import ExceptionHandlersMap, TypeEncodersMap
from markupsafe import escape

from ..errors import LetterboxError
from ..runtime import runtime_of
from ..tokens import Purpose, TokenExpired, TokenInvalid, TokenSigner

log = structlog.get_logger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
STYLESHEET = TEMPLATES_DIR / "letterbox.css"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_TOKEN_HEADERS = {**_HEADERS, "Referrer-Policy": "no-referrer"}


def _head(headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    """``headers`` and the HTML content type, encoded as ASGI sends them."""
    return (*((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
            (b"content-type", b"text/html; charset=utf-8"))


_HEAD = _head(_HEADERS)
_TOKEN_HEAD = _head(_TOKEN_HEADERS)

AnyRequest = Request[Any, Any, Any]


class PageError(LetterboxError):
    """An error with its own page; raising it also rolls back the request's transaction."""

    template = "error.html"
    title = "There is a problem"


class LinkInvalid(PageError):
    """A signed link that is forged, damaged or for something else."""

    status_code = 400
    template = "link_invalid.html"
    title = "This link does not work"


class LinkExpired(PageError):
    """A genuine link past its age, or for someone no longer on file."""

    status_code = 410
    template = "link_expired.html"
    title = "This link has expired"


class FormRefused(PageError):
    """A post without a valid CSRF token, or from another site's page."""

    status_code = 403
    title = "This form could not be sent"


def read_token(signer: TokenSigner, purpose: Purpose, token: str, *, fields: int,
               max_age: int | None = None) -> tuple[int | None, ...]:
    """The token's fields (the first is always a subscriber id), or :class:`LinkInvalid` / :class:`LinkExpired`."""
    try:
        values = signer.verify(purpose, token, max_age=max_age)
    except TokenExpired as exc:
        raise LinkExpired("This link has expired.") from exc
    except TokenInvalid as exc:
        raise LinkInvalid("This link is not valid.") from exc
    if len(values) != fields or values[0] is None:
        raise LinkInvalid("This link is not valid.")
    return values


def template_engine() -> JinjaTemplateEngine:
    """The pages' templates, each compiled once.

    They ship inside the package and do not change while it runs, so Jinja's
    auto-reload (a ``stat`` of every template and its parents on every render) buys nothing.
    """
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, auto_reload=False)
    return JinjaTemplateEngine.from_environment(environment)


@functools.lru_cache(maxsize=8)
def site_name(from_addr: str) -> str:
    """The name shown in the page header: the display name of the From address (parsed once per address)."""
    return parseaddr(from_addr)[0] or "Newsletter"


def page(request: AnyRequest, template: str, context: dict[str, Any] | None = None, *, status: int = 200,
         token_page: bool = False, headers: dict[str, str] | None = None) -> Template:
    """Render a public page with the security headers (``token_page``: reached through a signed link)."""
    settings = runtime_of(request.app.state).settings
    return Template(
        template_name=template,
        context={"site_name": site_name(settings.from_addr), **(context or {})},
        status_code=status,
        headers={**(_TOKEN_HEADERS if token_page else _HEADERS), **(headers or {})},
        media_type=MediaType.HTML,
    )


class FilledPage:
    """A page rendered once and kept, with one slot filled in per request (a fresh CSRF token, a signed link).

    For pages whose every other value changes rarely: Jinja drawing the same form again was a
    third of a ``GET /subscribe``.  A page with nothing per request shows no slot and is
    answered with ``value`` left empty.  Kept per source (what the page is drawn from) and site name,
    a few at most; the last source is recognised by identity, so a page drawn from the same
    kept object again costs no encoding of it.  ``token_page``: reached through a signed link
    (see :func:`page`).
    """

    SLOT = "filled-page-slot-5f0c2e"
    _KEYS = 16

    def __init__(self, template: str, *, token_page: bool = False) -> None:
        self.template = template
        self._head = _TOKEN_HEAD if token_page else _HEAD
        self._halves: dict[tuple[str, bytes], tuple[bytes, bytes]] = {}
        self._last: tuple[object, str, tuple[bytes, bytes]] | None = None

    def response(self, request: AnyRequest, source: object, context: Callable[[], dict[str, Any]],
                 value: str = "") -> Response[bytes]:
        """The page drawn from ``context()`` (with :attr:`SLOT` where ``value`` goes), which is made from
        ``source`` alone (anything msgspec encodes).  ``value`` is escaped as the template would escape it."""
        name = site_name(runtime_of(request.app.state).settings.from_addr)
        last = self._last
        if last is not None and last[0] is source and last[1] == name:
            halves = last[2]
        else:
            halves = self._drawn(request, (name, msgspec.json.encode(source)), context)
            self._last = (source, name, halves)
        return PageResponse(halves[0] + escape(value).encode() + halves[1], self._head)

    def _drawn(self, request: AnyRequest, key: tuple[str, bytes], context: Callable[[], dict[str, Any]]
               ) -> tuple[bytes, bytes]:
        halves = self._halves.get(key)
        if halves is None:
            engine = request.app.template_engine
            assert engine is not None, "the app has a template engine (service/app.py)"
            body = engine.get_template(self.template).render(site_name=key[0], **context())
            before, _, after = body.partition(self.SLOT)
            assert self.SLOT not in after, f"{self.template} shows the slot once at most"
            if len(self._halves) >= self._KEYS:
                self._halves.clear()
            halves = self._halves[key] = (before.encode(), after.encode())
        return halves


class PageResponse(Response[bytes]):
    """An HTML page answered with a head encoded once per kind of page.

    Litestar's own response looks through every header again for each answer (to add the
    content type and length if missing): a fifth of a ``GET /subscribe``, with the security
    headers every page carries.
    """

    def __init__(self, body: bytes, head: tuple[tuple[bytes, bytes], ...]) -> None:
        super().__init__(body, media_type=MediaType.HTML)
        self._head = head

    def to_asgi_response(
        self, app: Litestar | None, request: AnyRequest, *,
        background: BackgroundTask | BackgroundTasks | None = None, cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None, headers: dict[str, str] | None = None,
        is_head_response: bool = False, media_type: MediaType | str | None = None, status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        """The answer as it goes out, with the route's status (Litestar's other arguments add nothing: no layer
        of these routes sets headers or cookies, and the media type is the page's)."""
        assert not headers and not cookies and not encoded_headers, "a page's head is its own (see PageResponse)"
        head = [*self._head, (b"content-length", str(len(self.content)).encode())]
        return _SentAsIs(self.content, head, self.background or background, self.status_code or status_code or 200,
                         is_head_response=is_head_response)


class _SentAsIs(ASGIResponse):
    """An answer with its head ready: the head as given (a list: middleware may add to it), then the body."""

    def __init__(self, body: bytes, head: list[tuple[bytes, bytes]],
                 background: BackgroundTask | BackgroundTasks | None, status_code: int, *,
                 is_head_response: bool) -> None:
        # Not ASGIResponse's own __init__: building its head from names and values is what this class saves.
        self.body = b"" if is_head_response else body
        self.status_code = status_code
        self.is_head_response = is_head_response
        self.background = background
        self._head = head

    def encode_headers(self) -> list[tuple[bytes, bytes]]:
        """The head as given."""
        return self._head


def client_key(request: AnyRequest) -> str:
    """The client address for rate limiting (``unknown`` when the server gives none)."""
    return request.client.host if request.client else "unknown"


def form_text(value: object, limit: int = 1000) -> str:
    """A form value as text; files and over-long values are cut down rather than trusted."""
    return value[:limit] if isinstance(value, str) else ""


_MESSAGES = {
    400: "The request could not be understood. Please go back and try again.",
    403: "This request was refused.",
    404: "There is nothing at this address.",
    405: "This page does not accept that kind of request.",
    413: "What was sent is larger than this page accepts.",
    415: "This page does not accept that kind of content.",
    429: "Too many attempts. Please wait a while and try again.",
}


def _error_page(request: AnyRequest, exc: Exception) -> Response[Any]:
    if isinstance(exc, PageError):
        return page(request, exc.template, {"title": exc.title, "message": exc.detail},
                    status=exc.status_code, token_page=True)
    if isinstance(exc, LetterboxError):
        status, message = exc.status_code, exc.detail
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        message = _MESSAGES.get(status, HTTPStatus(status).phrase)
    else:
        log.error("unhandled_error", exc_info=exc)
        status, message = 500, "Something went wrong on our side. It has been logged; please try again later."
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return page(request, "error.html", {"title": title, "message": message}, status=status, token_page=True)


def unavailable_page(request: AnyRequest, headers: dict[str, str]) -> Response[Any]:
    """The 503 page people see while the database is away (see service/errors.py)."""
    return page(request, "unavailable.html", status=503, token_page=True, headers=headers)


def html_exception_handlers() -> ExceptionHandlersMap:
    """Errors on public pages become HTML pages (the API keeps problem+json)."""
    return {LetterboxError: _error_page, HTTPException: _error_page, Exception: _error_page}


@functools.cache
def _stylesheet() -> bytes:
    return STYLESHEET.read_bytes()


@get("/static/letterbox.css", media_type="text/css", include_in_schema=False, sync_to_thread=False)
def stylesheet() -> Response[bytes]:
    """The public pages' only stylesheet (the CSP allows no inline style)."""
    return Response(
        _stylesheet(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
