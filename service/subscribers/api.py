"""The operator API for readers: ``/v1/subscriptions`` and ``/v1/subscribers``.

Reads need ``subscribers:read``; changes need ``subscribers:write`` (``admin`` allows all).
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from ..audit import AuditTrail, changes
from ..db.pool import Database
from ..db.queries import Queries
from ..errors import NotFound, UnsupportedMediaType
from ..pagination import Cursor, decode_cursor, encode_cursor
from ..schemas import NO_NUL, RowId, slug_query
from ..settings import Settings
from ..taxonomy.terms import check_terms, resolve_lists
from . import lifecycle
from .export import export_subscriber
from .importer import FORMATS, import_stream
from .lifecycle import Actor, SignUp
from .openapi_bodies import IMPORT_BODY
from .schemas import (
    Accepted,
    ImportResult,
    Status,
    Subscriber,
    SubscriberExport,
    SubscriberPage,
    SubscriberPatch,
    SubscriptionIn,
)
from .validation import clean_name, normalise_email

READ = {"scope": "subscribers:read"}
WRITE = {"scope": "subscribers:write"}
# The import is streamed and written in batches, so its body may be far larger than other requests'.
IMPORT_MAX_BYTES = 1024 * 1024 * 1024
# A bigint: a larger number is refused by the route, not by the database after a round trip.
SubscriberId = RowId


class SubscriberController(Controller):
    """Subscription requests, the reader list, one reader, erasure, export and import."""

    tags = ["subscribers"]  # noqa: RUF012 - Litestar's own attribute type

    @post("/subscriptions", opt=WRITE, status_code=202, summary="Ask for a subscription (double opt-in)")
    async def request_subscription(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        data: JSONBody[SubscriptionIn],
        audit: NamedDependency[AuditTrail],
    ) -> Accepted:
        """The same double opt-in as the public form: always ``pending``, whatever the address's state."""
        sign_up = await _sign_up(conn, db.q, data)
        await lifecycle.subscribe(conn, db.q, sign_up, Actor.of_request(request, "api"))
        await audit.record("subscription.request", "subscription", None, {"email": sign_up.email,
                           "lists": [ref.slug for ref in sign_up.lists]}, about_email=sign_up.email)
        return Accepted()

    @get("/subscribers", opt=READ, summary="List subscribers (keyset pagination)")
    async def list_subscribers(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        status: Annotated[Status | None, QueryParameter()] = None,
        list_slug: Annotated[str | None, slug_query("a list's slug: pending or confirmed on it", name="list")] = None,
        agency: Annotated[str | None, slug_query("an existing agency's slug")] = None,
        role: Annotated[str | None, slug_query("an existing role's slug")] = None,
        q: Annotated[str | None, QueryParameter(description="part of the address or name", max_length=200,
                                                schema_extra={"pattern": NO_NUL})] = None,
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> SubscriberPage:
        """People in id order, filtered; follow ``next_cursor`` until it is null."""
        after = decode_cursor("s", cursor)
        list_id = None
        if list_slug is not None:
            list_id = (await resolve_lists(conn, db.q, [list_slug], public_only=False))[0].id
        await check_terms(conn, db.q, agency=agency, role=role)
        pattern = f"%{_escape_like(q)}%" if q else None
        rows = await conn.fetch(db.q["subscriber-page"], after, status, list_id, agency, role, pattern, limit + 1)
        items = [_subscriber(r) for r in rows[:limit]]
        return SubscriberPage(items=items, next_cursor=encode_cursor("s", items[-1].id) if len(rows) > limit else None)

    @get("/subscribers/{subscriber_id:int}", opt=READ, summary="One subscriber")
    async def get_subscriber(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], subscriber_id: SubscriberId
    ) -> Subscriber:
        """A person with their lists."""
        return await _load(conn, db.q, subscriber_id)

    @patch("/subscribers/{subscriber_id:int}", opt=WRITE, summary="Change a subscriber")
    async def change_subscriber(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        subscriber_id: SubscriberId,
        data: JSONBody[SubscriberPatch],
        audit: NamedDependency[AuditTrail],
    ) -> Subscriber:
        """Change name, agency, role, attributes (replaced whole) or status (see the rules in the schema)."""
        await lifecycle.operator_change(conn, db.q, subscriber_id, data, Actor.of_request(request, "operator"))
        await audit.record("subscriber.update", "subscriber", subscriber_id, changes(data))
        return await _load(conn, db.q, subscriber_id)

    @delete("/subscribers/{subscriber_id:int}", opt=WRITE, summary="Erase a subscriber (GDPR)")
    async def erase_subscriber(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        subscriber_id: SubscriberId,
        audit: NamedDependency[AuditTrail],
    ) -> None:
        """Delete everything personal about the person; keep a hashed suppression so they cannot come back."""
        if not await lifecycle.erase(conn, db.q, settings, subscriber_id):
            raise NotFound(f"There is no subscriber {subscriber_id}.")
        await audit.record("subscriber.erase", "subscriber", subscriber_id)

    @get("/subscribers/{subscriber_id:int}/export", opt=READ, summary="Everything held about a subscriber")
    async def export(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], subscriber_id: SubscriberId
    ) -> SubscriberExport:
        """The person, their subscriptions, consents, bounces, system mails and a summary of deliveries."""
        found = await export_subscriber(conn, db.q, subscriber_id)
        if found is None:
            raise NotFound(f"There is no subscriber {subscriber_id}.")
        return found

    @post(
        "/subscribers/import",
        opt=WRITE,
        status_code=200,
        summary="Import people who consented elsewhere (CSV or NDJSON, streamed)",
        request_max_body_size=IMPORT_MAX_BYTES,
        operation_class=IMPORT_BODY,
    )
    async def import_subscribers(
        self, request: Request[Any, Any, Any], conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database],
        audit: NamedDependency[AuditTrail],
    ) -> ImportResult:
        """``text/csv`` with a header row, or ``application/x-ndjson``; see the README for the columns.

        The whole import is one transaction: a broken stream leaves nothing behind.
        """
        media_type = request.content_type[0]
        if media_type not in FORMATS:
            raise UnsupportedMediaType(f"Send text/csv or application/x-ndjson, not {media_type or 'nothing'}.")
        result = await import_stream(conn, db.q, FORMATS[media_type], request.stream())
        await audit.record("subscriber.import", "subscriber", None, {"format": media_type})
        return result


async def _sign_up(conn: asyncpg.Connection, q: Queries, data: SubscriptionIn) -> SignUp:
    email = normalise_email(data.email, field="email")
    name = clean_name(data.name)
    lists = await resolve_lists(conn, q, data.lists, public_only=False)
    await check_terms(conn, q, agency=data.agency, role=data.role)
    return SignUp(email=email, name=name, agency=data.agency, role=data.role, lists=lists,
                  attributes=data.attributes)


async def _load(conn: asyncpg.Connection, q: Queries, subscriber_id: int) -> Subscriber:
    row = await conn.fetchrow(q["subscriber-get"], subscriber_id)
    if row is None:
        raise NotFound(f"There is no subscriber {subscriber_id}.")
    return _subscriber(row)


def _subscriber(row: asyncpg.Record) -> Subscriber:
    return msgspec.convert(dict(row), Subscriber)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
