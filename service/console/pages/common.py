"""What the console's data pages share: the page size and the errors they show as pages."""

from __future__ import annotations

import asyncpg
from litestar.di import NamedDependency

from ...audit import AuditTrail
from ...db.pool import Database
from ..web import ConsolePageError

PAGE_SIZE = 50


class NotFoundPage(ConsolePageError):
    """An id in the address that names nothing (a reader since erased, say)."""

    status_code = 404
    title = "Not found"


class InvalidInput(ConsolePageError):
    """A form or address with a value the page cannot use; nothing was changed."""

    status_code = 400
    title = "Please check what you entered"


# What console handlers are given (service/app.py and service/console/routes.py provide them).
Conn = NamedDependency[asyncpg.Connection]
Db = NamedDependency[Database]
Audit = NamedDependency[AuditTrail]
