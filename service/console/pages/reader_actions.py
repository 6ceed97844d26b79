"""Changing a reader from the console: edit (editor), export (viewer), erase after a confirmation (admin).

Each calls the same domain code as ``/v1/subscribers`` and records an audit entry in the
same transaction.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from ...errors import InvalidValue
from ...schemas import RowId
from ...settings import Settings
from ...subscribers import lifecycle
from ...subscribers.export import export_subscriber
from ...subscribers.lifecycle import Actor
from ...subscribers.schemas import SubscriberPatch
from ...subscribers.web import form_text
from ..access import requires_admin, requires_editor, requires_viewer
from ..web import render, see_other
from .common import Audit, Conn, Db, InvalidInput, NotFoundPage

AnyRequest = Request[Any, Any, Any]
_STATUS_CHANGES = ("active", "unsubscribed")


def read_change(form: dict[str, str]) -> SubscriberPatch:
    """The edit form as an operator's change: name, organisation and role always, status when chosen."""
    fields: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "agency": form.get("agency") or None,
        "role": form.get("role") or None,
    }
    status = form.get("status", "")
    if status:
        if status not in _STATUS_CHANGES:
            raise InvalidInput("Choose a status from the list.")
        fields["status"] = status
    try:
        return msgspec.convert(fields, SubscriberPatch)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"This change cannot be saved: {exc}.") from exc


@post("/subscribers/{subscriber_id:int}", guards=[requires_editor], include_in_schema=False, status_code=303)
async def edit_reader(request: AnyRequest, conn: Conn, db: Db, audit: Audit,
                      subscriber_id: RowId) -> Redirect:
    """Save the name, organisation, role and (when chosen) status of a reader."""
    form = await request.form()
    change = read_change({k: form_text(form.get(k), 300) for k in ("name", "agency", "role", "status")})
    try:
        await lifecycle.operator_change(conn, db.q, subscriber_id, change, Actor.of_request(request, "operator"))
    except InvalidValue as exc:
        raise InvalidInput(f"This change cannot be saved: {exc}") from exc
    await audit.record("subscriber.update", "subscriber", subscriber_id,
                       {k: v for k, v in msgspec.structs.asdict(change).items() if v is not msgspec.UNSET})
    return see_other(f"/console/subscribers/{subscriber_id}?saved=1")


@get("/subscribers/{subscriber_id:int}/export", guards=[requires_viewer], include_in_schema=False)
async def export_reader(conn: Conn, db: Db, audit: Audit,
                        subscriber_id: RowId) -> Response[bytes]:
    """Everything held about the reader, as the JSON file ``GET /v1/subscribers/{id}/export`` gives."""
    found = await export_subscriber(conn, db.q, subscriber_id)
    if found is None:
        raise NotFoundPage(f"There is no reader {subscriber_id}: the id is wrong, or they were erased.")
    await audit.record("subscriber.export", "subscriber", subscriber_id)
    return Response(msgspec.json.encode(found), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="reader-{subscriber_id}.json"',
    })


@get("/subscribers/{subscriber_id:int}/erase", guards=[requires_admin], include_in_schema=False)
async def erase_confirmation(conn: Conn, db: Db, subscriber_id: RowId) -> Template:
    """Ask before erasing: say what goes and what stays."""
    person = await conn.fetchrow(db.q["subscriber-get"], subscriber_id)
    if person is None:
        raise NotFoundPage(f"There is no reader {subscriber_id}: the id is wrong, or they were erased.")
    return render("console/erase.html", {"title": f"Erase {person['email']}?", "person": dict(person)})


@post("/subscribers/{subscriber_id:int}/erase", guards=[requires_admin], include_in_schema=False, status_code=200)
async def erase_reader(conn: Conn, db: Db, settings: NamedDependency[Settings], audit: Audit,
                       subscriber_id: RowId) -> Template:
    """Erase the reader (GDPR): nothing personal stays, only a hashed suppression."""
    if not await lifecycle.erase(conn, db.q, settings, subscriber_id):
        raise NotFoundPage(f"There is no reader {subscriber_id}: the id is wrong, or they were already erased.")
    await audit.record("subscriber.erase", "subscriber", subscriber_id)
    return render("console/erased.html", {"title": "Reader erased", "subscriber_id": subscriber_id})


handlers = [edit_reader, export_reader, erase_confirmation, erase_reader]
