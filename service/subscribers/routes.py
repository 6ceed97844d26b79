"""Route handlers of the subscriber lifecycle, registered by service/app.py."""

from __future__ import annotations

from litestar import Router
from litestar.types import ControllerRouterHandler

from ..errors import ERROR_PAGES
from . import api, preferences, public, view, web

# Public HTML pages (no API key): /subscribe, /confirm, /unsubscribe, /preferences, /view, and their
# stylesheet. Errors on them are HTML pages, not problem+json.
public_handlers: list[ControllerRouterHandler] = [
    Router(
        path="/",
        route_handlers=[
            public.subscribe_form,
            public.subscribe_submit,
            public.confirm_page,
            public.confirm_submit,
            preferences.unsubscribe_page,
            preferences.unsubscribe_submit,
            preferences.preferences_page,
            preferences.preferences_submit,
            view.view_page,
            web.stylesheet,
        ],
        exception_handlers=web.html_exception_handlers(),
        opt={ERROR_PAGES: True},
    )
]
# Operator API under /v1 (each handler names its scope in opt).
api_handlers: list[ControllerRouterHandler] = [api.SubscriberController]
