"""``/console/suppressions``: addresses never to be mailed again; admins add and lift them."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from ...bounces.suppressions import lift_suppression, suppression_page
from ...errors import InvalidValue
from ...subscribers.validation import normalise_email
from ...subscribers.web import form_text
from ..access import requires_admin, requires_viewer
from ..web import render, see_other
from .common import PAGE_SIZE, Audit, Conn, Db, InvalidInput

AnyRequest = Request[Any, Any, Any]


@get("/suppressions", guards=[requires_viewer], include_in_schema=False)
async def suppressions_page(
    conn: Conn,
    db: Db,
    after: Annotated[str | None, QueryParameter(max_length=100)] = None,
    done: Annotated[str | None, QueryParameter(max_length=20)] = None,
) -> Template:
    """Suppressed addresses, newest first, 50 a page (erased readers' show only as a hash)."""
    view = await suppression_page(conn, db.q, after, PAGE_SIZE)
    return render("console/suppressions.html", {"title": "Suppressions", "view": view, "done": done})


@post("/suppressions", guards=[requires_admin], include_in_schema=False, status_code=303)
async def add_suppression(request: AnyRequest, conn: Conn, db: Db,
                          audit: Audit) -> Redirect:
    """Never mail an address again (reason ``manual``, with the admin's note)."""
    form = await request.form()
    try:
        address = normalise_email(form_text(form.get("email"), 400))
    except InvalidValue as exc:
        raise InvalidInput(f"E-mail address: {exc}") from exc
    note = form_text(form.get("detail"), 2000).strip() or None
    await conn.execute(db.q["suppression-add"], address, "manual", note)
    await audit.record("suppression.add", "suppression", address, {"detail": note}, about_email=address)
    return see_other("/console/suppressions?done=added")


@post("/suppressions/lift", guards=[requires_admin], include_in_schema=False, status_code=303)
async def remove_suppression(request: AnyRequest, conn: Conn, db: Db,
                             audit: Audit) -> Redirect:
    """Let an address be mailed again."""
    form = await request.form()
    address = form_text(form.get("email"), 400)
    reason = await lift_suppression(conn, db.q, address)
    await audit.record("suppression.lift", "suppression", address.strip(), {"reason": reason},
                       about_email=address.strip())
    return see_other("/console/suppressions?done=lifted")


handlers = [suppressions_page, add_suppression, remove_suppression]
