"""The console's data pages (dashboard, editions, readers, lists, suppressions, bounces, charts).

``page_handlers`` is mounted under ``/console`` by :func:`service.console.routes.console_router`;
each handler names its least role with a guard from :mod:`service.console.access`.
"""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

page_handlers: list[ControllerRouterHandler] = []
