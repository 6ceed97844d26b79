"""Route handlers of the subscriber lifecycle, registered by service/app.py."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

# Public HTML pages (no API key): /subscribe, /confirm, /unsubscribe, /preferences.
public_handlers: list[ControllerRouterHandler] = []
# Operator API under /v1 (each handler names its scope in opt).
api_handlers: list[ControllerRouterHandler] = []
