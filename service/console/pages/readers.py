"""``/console/subscribers``: find a reader; one reader's details, lists, consent history and bounces."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

import asyncpg
import msgspec
from litestar import get
from litestar.params import FromQuery, QueryParameter
from litestar.response import Template

from ...db.queries import Queries
from ...schemas import RowId
from ...subscribers.schemas import ExportConsent, Subscriber
from ...taxonomy.schemas import Term
from ..access import requires_viewer
from ..web import render
from .common import PAGE_SIZE, Conn, Db, NotFoundPage

T = TypeVar("T")


class ReaderRow(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the search results."""

    id: int
    email: str
    name: str
    status: str
    agency: str | None
    role: str | None
    created_at: datetime


class Search(msgspec.Struct, frozen=True):
    """A page of readers found, and the id to continue after (None: the last page)."""

    q: str
    items: list[ReaderRow]
    next_after: int | None


class Membership(msgspec.Struct, frozen=True):
    """A list the reader has a subscription row for."""

    slug: str
    name: str
    status: str


class BounceRow(msgspec.Struct, frozen=True, kw_only=True):
    """A bounce or complaint report about the reader."""

    id: int
    kind: str
    status: str | None
    diagnostic: str | None
    source: str
    counted: bool
    created_at: datetime
    edition_id: int | None
    subject: str | None


class CopiesByStatus(msgspec.Struct, frozen=True):
    """How many copies the reader was sent, by outcome."""

    status: str
    copies: int
    last_sent_at: datetime | None


class Reader(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the reader's page shows."""

    person: Subscriber
    memberships: list[Membership]
    consents: list[ExportConsent]
    bounces: list[BounceRow]
    copies: list[CopiesByStatus]
    suppressed: bool
    agencies: list[Term]
    roles: list[Term]


def like_prefix(text: str) -> str:
    """``text`` lower-cased with LIKE's wildcards escaped, to match the start of an address or name."""
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_readers(conn: asyncpg.Connection, q: Queries, text: str, after: int) -> Search:
    """Readers whose address or name starts with ``text`` (everyone when empty), in id order after ``after``."""
    text = text.strip()
    rows = await conn.fetch(q["console-subscriber-search"], like_prefix(text) if text else None, after,
                            PAGE_SIZE + 1)
    items = [msgspec.convert(dict(r), ReaderRow) for r in rows[:PAGE_SIZE]]
    return Search(text, items, items[-1].id if len(rows) > PAGE_SIZE else None)


async def load_reader(conn: asyncpg.Connection, q: Queries, subscriber_id: int) -> Reader:
    """A reader's details, lists, consents, bounces and copies; :class:`NotFoundPage` when there is none."""
    row = await conn.fetchrow(q["subscriber-get"], subscriber_id)
    if row is None:
        raise NotFoundPage(f"There is no reader {subscriber_id}: the id is wrong, or they were erased.")
    person = msgspec.convert(dict(row), Subscriber)
    return Reader(
        person=person,
        memberships=_all(await conn.fetch(q["subscriber-memberships"], subscriber_id), Membership),
        consents=_all(await conn.fetch(q["consent-history"], subscriber_id), ExportConsent),
        bounces=_all(await conn.fetch(q["console-subscriber-bounces"], subscriber_id), BounceRow),
        copies=_all(await conn.fetch(q["export-deliveries-summary"], subscriber_id), CopiesByStatus),
        suppressed=bool(await conn.fetchval(q["address-suppressed"], person.email)),
        agencies=_all(await conn.fetch(q["agency-list"]), Term),
        roles=_all(await conn.fetch(q["role-list"]), Term),
    )


def _all(rows: list[asyncpg.Record], kind: type[T]) -> list[T]:
    return [msgspec.convert(dict(r), kind) for r in rows]


@get("/subscribers", guards=[requires_viewer], include_in_schema=False)
async def readers_page(
    conn: Conn,
    db: Db,
    q: Annotated[str, QueryParameter(max_length=200)] = "",
    after: Annotated[int, QueryParameter(ge=0)] = 0,
) -> Template:
    """Find readers by the start of their address or name."""
    view = await search_readers(conn, db.q, q, after)
    return render("console/readers.html", {"title": "Readers", "view": view})


@get("/subscribers/{subscriber_id:int}", guards=[requires_viewer], include_in_schema=False)
async def reader_page(conn: Conn, db: Db, subscriber_id: RowId, saved: FromQuery[bool] = False) -> Template:
    """One reader; ``saved`` after an edit."""
    view = await load_reader(conn, db.q, subscriber_id)
    context: dict[str, Any] = {"title": view.person.email, "view": view, "saved": saved}
    return render("console/reader.html", context)


handlers = [readers_page, reader_page]
