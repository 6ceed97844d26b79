"""Route handlers for segments, registered under /v1 by service/app.py."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

api_handlers: list[ControllerRouterHandler] = []
