"""``/console/account``: who you are signed in as, and what your role lets you do."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency
from litestar.response import Template

from .access import requires_viewer
from .operator import Operator
from .web import render


@get("/account", guards=[requires_viewer], include_in_schema=False)
async def account_page(operator: NamedDependency[Operator]) -> Template:
    """The signed-in user's email and role."""
    return render("console/account.html", {"title": "Your account", "account": operator})


handlers = [account_page]
