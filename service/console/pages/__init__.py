"""The console's data pages (dashboard, editions, readers, lists, suppressions, bounces, charts).

``page_handlers`` is mounted under ``/console`` by :func:`service.console.routes.console_router`;
each handler names its least role with a guard from :mod:`service.console.access`.
"""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from . import bounces, dashboard, editions, lists, reader_actions, readers, static, suppressions

page_handlers: list[ControllerRouterHandler] = [
    *dashboard.handlers,
    *editions.handlers,
    *readers.handlers,
    *reader_actions.handlers,
    *lists.handlers,
    *suppressions.handlers,
    *bounces.handlers,
    *static.handlers,
]
