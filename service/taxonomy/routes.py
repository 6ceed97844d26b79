"""Agencies, roles and lists: the data that makes Letterbox fit any partnership."""

from __future__ import annotations

import asyncpg
import msgspec
from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from ..audit import AuditTrail, changes
from ..db.pool import Database
from ..errors import NotFound, Unprocessable
from ..schemas import SlugPath
from .schemas import ListIn, ListPatch, MailingList, Term, TermIn

READ = {"scope": "subscribers:read"}
WRITE = {"scope": "admin"}


class TaxonomyController(Controller):
    """``/v1/agencies``, ``/v1/roles`` and ``/v1/lists``."""

    tags = ["taxonomy"]  # noqa: RUF012 - Litestar's own attribute type

    @get("/agencies", opt=READ, summary="List agencies")
    async def list_agencies(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database]
    ) -> list[Term]:
        """Every agency."""
        return [Term(**r) for r in await conn.fetch(db.q["agency-list"])]

    @post("/agencies", opt=WRITE, summary="Add an agency")
    async def add_agency(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], data: JSONBody[TermIn],
        audit: NamedDependency[AuditTrail],
    ) -> Term:
        """Add an agency (409 if the slug exists)."""
        await audit.record("agency.create", "agency", data.slug, {"name": data.name})
        return _term(await conn.fetchrow(db.q["agency-insert"], data.slug, data.name))

    @get("/roles", opt=READ, summary="List roles")
    async def list_roles(self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database]) -> list[Term]:
        """Every role."""
        return [Term(**r) for r in await conn.fetch(db.q["role-list"])]

    @post("/roles", opt=WRITE, summary="Add a role")
    async def add_role(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], data: JSONBody[TermIn],
        audit: NamedDependency[AuditTrail],
    ) -> Term:
        """Add a role (409 if the slug exists)."""
        await audit.record("role.create", "role", data.slug, {"name": data.name})
        return _term(await conn.fetchrow(db.q["role-insert"], data.slug, data.name))

    @get("/lists", opt=READ, summary="List mailing lists")
    async def list_lists(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database]
    ) -> list[MailingList]:
        """Every list, public or not."""
        return [_list(r) for r in await conn.fetch(db.q["list-all"])]

    @post("/lists", opt=WRITE, summary="Add a mailing list")
    async def add_list(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], data: JSONBody[ListIn],
        audit: NamedDependency[AuditTrail],
    ) -> MailingList:
        """Add a list (409 if the slug exists)."""
        await audit.record("list.create", "list", data.slug, {"name": data.name, "public": data.public})
        row = await conn.fetchrow(db.q["list-insert"], data.slug, data.name, data.description, data.public)
        assert row is not None, "INSERT … RETURNING returns the row"
        return _list(row)

    @patch("/lists/{slug:str}", opt=WRITE, summary="Change a mailing list")
    async def change_list(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        slug: SlugPath,
        data: JSONBody[ListPatch],
        audit: NamedDependency[AuditTrail],
    ) -> MailingList:
        """Change a list's name, description or visibility."""
        if data == ListPatch():
            raise Unprocessable("Nothing to change: give name, description or public.")
        row = await conn.fetchrow(db.q["list-update"], slug, data.name, data.description, data.public)
        if row is None:
            raise NotFound(f"There is no list '{slug}'.")
        await audit.record("list.update", "list", slug, changes(data))
        return _list(row)


def _term(row: asyncpg.Record | None) -> Term:
    assert row is not None, "INSERT … RETURNING returns the row"
    return Term(slug=row["slug"], name=row["name"])


def _list(row: asyncpg.Record) -> MailingList:
    return msgspec.convert({k: row[k] for k in ("slug", "name", "description", "public", "created_at")}, MailingList)
