"""``/console/lists``: lists, organisations and roles with their readers; editors add, rename and archive."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import asyncpg
import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from ...audit import AuditTrail
from ...db.pool import Database
from ...db.queries import Queries
from ...subscribers.web import form_text
from ...taxonomy.schemas import ListIn, ListPatch, TermIn
from ..access import requires_editor, requires_viewer
from ..web import render, see_other
from .common import Audit, Conn, Db, InvalidInput, NotFoundPage

AnyRequest = Request[Any, Any, Any]
T = TypeVar("T")


class ListRow(msgspec.Struct, frozen=True, kw_only=True):
    """A list with its readers by subscription status."""

    slug: str
    name: str
    description: str
    public: bool
    archived_at: datetime | None
    created_at: datetime
    confirmed: int
    pending: int
    unsubscribed: int


class TermRow(msgspec.Struct, frozen=True):
    """An organisation or a role, with how many readers name it."""

    slug: str
    name: str
    readers: int


class Taxonomy(msgspec.Struct, frozen=True):
    """What the lists page shows."""

    lists: list[ListRow]
    agencies: list[TermRow]
    roles: list[TermRow]


async def load_taxonomy(conn: asyncpg.Connection, q: Queries) -> Taxonomy:
    """Every list (archived last), organisation and role, with their readers."""
    return Taxonomy(
        lists=[msgspec.convert(dict(r), ListRow) for r in await conn.fetch(q["console-lists"])],
        agencies=[msgspec.convert(dict(r), TermRow) for r in await conn.fetch(q["console-agencies"])],
        roles=[msgspec.convert(dict(r), TermRow) for r in await conn.fetch(q["console-roles"])],
    )


def checked(kind: type[T], fields: dict[str, Any]) -> T:
    """The form's fields as ``kind`` with the API's own rules, or :class:`InvalidInput` saying what is wrong."""
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"This cannot be saved: {exc}. A short name is lower-case letters, digits, - and _; "
                           "a name is 1 to 200 characters.") from exc


async def _form(request: AnyRequest, *names: str) -> dict[str, str]:
    form = await request.form()
    return {name: form_text(form.get(name), 2000).strip() for name in names}


async def _unique(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    """Run an INSERT … RETURNING; a taken short name is a 409 page, not a 500."""
    try:
        async with conn.transaction():
            row = await conn.fetchrow(sql, *args)
    except asyncpg.UniqueViolationError as exc:
        raise Taken("That short name is taken: choose another.") from exc
    assert row is not None, "INSERT … RETURNING returns the row"
    return row


class Taken(InvalidInput):
    """A short name already in use."""

    status_code = 409


@get("/lists", guards=[requires_viewer], include_in_schema=False)
async def lists_page(
    conn: Conn, db: Db, saved: Annotated[str | None, QueryParameter(max_length=100)] = None
) -> Template:
    """Lists, organisations and roles."""
    view = await load_taxonomy(conn, db.q)
    return render("console/lists.html", {"title": "Lists, organisations and roles", "view": view, "saved": saved})


@post("/lists", guards=[requires_editor], include_in_schema=False, status_code=303)
async def add_list(request: AnyRequest, conn: Conn, db: Db, audit: Audit) -> Redirect:
    """Add a list; it is offered on the public form unless marked otherwise."""
    form = await _form(request, "slug", "name", "description", "public")
    data = checked(ListIn, {"slug": form["slug"], "name": form["name"], "description": form["description"],
                            "public": form["public"] == "yes"})
    await _unique(conn, db.q["list-insert"], data.slug, data.name, data.description, data.public)
    await audit.record("list.create", "list", data.slug, {"name": data.name, "public": data.public})
    return see_other(f"/console/lists?saved={data.slug}")


@post("/lists/{slug:str}", guards=[requires_editor], include_in_schema=False, status_code=303)
async def change_list(request: AnyRequest, conn: Conn, db: Db, audit: Audit,
                      slug: FromPath[str]) -> Redirect:
    """Rename a list (``action=rename``), archive it or bring it back (``archive``, ``restore``)."""
    form = await _form(request, "action", "name", "description")
    action: Literal["rename", "archive", "restore"]
    if form["action"] == "rename":
        action = "rename"
        change = checked(ListPatch, {"name": form["name"], "description": form["description"]})
        row = await conn.fetchrow(db.q["list-rename"], slug, change.name, change.description)
        detail: dict[str, Any] | None = {"name": change.name, "description": change.description}
    elif form["action"] in ("archive", "restore"):
        action = "archive" if form["action"] == "archive" else "restore"
        row = await conn.fetchrow(db.q["list-archive"] if action == "archive" else db.q["list-restore"], slug)
        detail = None
        if row is None and await conn.fetchval(db.q["lists-by-slugs"], [slug]) is not None:
            raise InvalidInput(f"The list '{slug}' is already {'archived' if action == 'archive' else 'in use'}.")
    else:
        raise InvalidInput("Choose rename, archive or restore.")
    if row is None:
        raise NotFoundPage(f"There is no list '{slug}'.")
    await audit.record(f"list.{action}", "list", slug, detail)
    return see_other(f"/console/lists?saved={slug}")


@post("/agencies", guards=[requires_editor], include_in_schema=False, status_code=303)
async def add_agency(request: AnyRequest, conn: Conn, db: Db, audit: Audit) -> Redirect:
    """Add an organisation to the form's choices."""
    return await _add_term(request, conn, db, audit, "agency")


@post("/roles", guards=[requires_editor], include_in_schema=False, status_code=303)
async def add_role(request: AnyRequest, conn: Conn, db: Db, audit: Audit) -> Redirect:
    """Add a role to the form's choices."""
    return await _add_term(request, conn, db, audit, "role")


async def _add_term(request: AnyRequest, conn: asyncpg.Connection, db: Database, audit: AuditTrail,
                    kind: Literal["agency", "role"]) -> Redirect:
    form = await _form(request, "slug", "name")
    term = checked(TermIn, form)
    await _unique(conn, db.q["agency-insert"] if kind == "agency" else db.q["role-insert"], term.slug, term.name)
    await audit.record(f"{kind}.create", kind, term.slug, {"name": term.name})
    return see_other(f"/console/lists?saved={term.slug}")


handlers = [lists_page, add_list, change_list, add_agency, add_role]
