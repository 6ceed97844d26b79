"""``console_router()``: every ``/console`` route, its gate, dependencies, headers and error pages.

Mounted by service/app.py.  A handler that names no role guard (see
service/console/access.py) and is not marked ``console_public`` stops the
start: a forgotten guard must not become a page anyone can open.
"""

from __future__ import annotations

import functools
from pathlib import Path

from litestar import Response, Router, get
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.types import ControllerRouterHandler

from ..errors import ERROR_PAGES
from . import account, oidc, signin
from .access import ROLE_GUARDS, gate, provide_audit, provide_operator
from .admin import api_keys, audit, users
from .csrf import csrf_field
from .pages import page_handlers
from .web import RESPONSE_HEADERS, console_exception_handlers

STYLESHEET = Path(__file__).resolve().parents[1] / "templates" / "console.css"


@functools.cache
def _stylesheet() -> bytes:
    return STYLESHEET.read_bytes()


@get("/static/console.css", opt=signin.PUBLIC, media_type="text/css", include_in_schema=False,
     sync_to_thread=False)
def stylesheet() -> Response[bytes]:
    """The console's stylesheet, loaded after the public pages' letterbox.css."""
    return Response(_stylesheet(), media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


class UnguardedRoute(RuntimeError):
    """A console handler names no role guard."""


def _check_guarded(router: Router) -> None:
    for route in router.routes:
        for handler in getattr(route, "route_handlers", []):
            assert isinstance(handler, BaseRouteHandler)
            if getattr(handler, "http_methods", None) == {"OPTIONS"}:
                continue  # Litestar's own answer to OPTIONS: it runs no handler code
            guards = [g for layer in handler.ownership_layers for g in (layer.guards or [])]
            if not handler.opt.get("console_public") and not any(g in ROLE_GUARDS for g in guards):
                raise UnguardedRoute(f"{route.path} ({handler.handler_name}) names no role guard; add "
                                     "guards=[requires_viewer|requires_editor|requires_admin]")


def console_router(extra: list[ControllerRouterHandler] | None = None) -> Router:
    """The ``/console`` router; ``extra`` handlers are mounted too (and must be guarded like the rest)."""
    handlers: list[ControllerRouterHandler] = [
        stylesheet, *signin.handlers, *oidc.handlers, *account.handlers,
        *users.handlers, *api_keys.handlers, *audit.handlers,
        *page_handlers, *(extra or []),
    ]
    router = Router(
        path="/console",
        route_handlers=handlers,
        guards=[gate],
        dependencies={
            "operator": Provide(provide_operator, sync_to_thread=False),
            "audit": Provide(provide_audit, sync_to_thread=False),
        },
        exception_handlers=console_exception_handlers(),
        response_headers=RESPONSE_HEADERS,
        include_in_schema=False,
        opt={ERROR_PAGES: True},  # a database outage is a page here too, not problem+json
    )
    _check_guarded(router)
    return router


def register_template_callables(engine: JinjaTemplateEngine) -> None:
    """``csrf_field()`` in every template (the app's template engine callback)."""
    engine.register_template_callable("csrf_field", csrf_field)
