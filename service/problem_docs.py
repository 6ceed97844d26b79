"""Document, on every operation, the error responses that service/errors.py produces.

Handlers raise errors; ``exception_handlers()`` turns them into problem+json
(RFC 9457), and the public pages' router turns them into HTML pages.  Litestar
cannot see that mapping, so left alone openapi.yaml would promise a JSON
``ValidationException`` 400 that never comes and leave out every 401, 404 and
422.  This plugin adds the responses once, as each route is registered, from
what the route is: whether it takes input, a body, path parameters, an API
key, and whether it is an HTML page.  It works on the route handlers (each app
has its own copies), so the schema the app serves and the generated
openapi.yaml are the same document.  A handler names any other status it
answers in ``opt={"problems": (…,)}``.
"""

from __future__ import annotations

import msgspec
from litestar.enums import MediaType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from .auth import require_scope
from .errors import ERROR_PAGES, PROBLEM_JSON

# Handler ``opt`` key: further statuses the handler answers with an error.
PROBLEMS = "problems"

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# Signature names Litestar fills itself: not client input.
_NOT_INPUT = {"request", "state", "scope", "socket", "headers", "cookies", "query", "body"}

_DESCRIPTIONS = {
    400: "The request could not be read (e.g. malformed JSON).",
    401: "No valid credentials: a missing, wrong or revoked API key (or webhook signature).",
    403: "The API key lacks the scope this operation needs.",
    404: "There is nothing at this address.",
    409: "The request conflicts with the current state (a duplicate, or a change not allowed now).",
    410: "The link has expired or no longer leads anywhere.",
    413: "The request body is larger than this service accepts.",
    415: "The body is not in a media type this operation reads.",
    422: "The request is well-formed but a value in it is not valid.",
    429: "Too many attempts; see Retry-After.",
    500: "Something went wrong on our side; the log has the details, tied to the request id.",
    502: "The mail relay refused the message; its reply is in the detail.",
    503: "Not ready to serve (the database is unreachable or not migrated).",
}
# Public pages say it to a person, as a page.
_PAGE_DESCRIPTIONS = {
    **_DESCRIPTIONS,
    400: "The link is not valid, or the form has mistakes (shown on the page).",
    403: "The form has expired or did not come from this site.",
}


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem. Some problems add members of their own, e.g. ``unknown_lists``."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class ProblemDocs(ReceiveRoutePlugin):
    """Adds the error responses of every included operation as the routes are registered."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            if handler.include_in_schema:
                documented = {status: _spec(status, handler) for status in sorted(statuses(route, handler))}
                # A new dict on this app's copy of the handler; explicit ``responses=`` still win.
                handler.responses = {**documented, **(handler.responses or {})}


def statuses(route: HTTPRoute, handler: HTTPRouteHandler) -> set[int]:
    """The error statuses an operation can answer, by what it is."""
    found = {500, *handler.opt.get(PROBLEMS, ())}
    body_media = _body_media_types(handler)
    if body_media or _takes_parameters(handler):
        found |= {400} if handler.opt.get(ERROR_PAGES) else {400, 422}
    if body_media:
        found.add(413)
        if MediaType.JSON not in body_media and not handler.opt.get(ERROR_PAGES):
            found.add(415)  # handlers that read a raw body check its media type
    if route.path_parameters and not handler.opt.get(ERROR_PAGES):
        found.add(404)
    if route.path.startswith("/v1/"):
        found.add(401)  # by API key, or for webhooks by the provider's signature
        if require_scope in handler.resolve_guards():
            found.add(403)
            if handler.http_methods & _WRITES:
                found.add(409)
    return found


def _spec(status: int, handler: HTTPRouteHandler) -> ResponseSpec:
    if handler.opt.get(ERROR_PAGES):
        return ResponseSpec(data_container=str, media_type=MediaType.HTML, description=_PAGE_DESCRIPTIONS[status],
                            generate_examples=False)
    return ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description=_DESCRIPTIONS[status],
                        generate_examples=False)


def _body_media_types(handler: HTTPRouteHandler) -> set[str]:
    """Media types of the request body: JSON for a ``data`` parameter, else what the handler documents by hand."""
    if "data" in handler.parsed_fn_signature.parameters:
        return {MediaType.JSON}
    if handler.operation_class is Operation:
        return set()
    body = handler.operation_class().request_body
    return set(getattr(body, "content", None) or ())


def _takes_parameters(handler: HTTPRouteHandler) -> bool:
    """Whether the handler reads path, query or header parameters (anything not injected)."""
    injected = _NOT_INPUT | set(handler.resolve_dependencies())
    return any(name not in injected for name in handler.parsed_fn_signature.parameters)
