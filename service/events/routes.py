"""``/v1/event-endpoints``: register, list and delete endpoints, and see what was sent to each.

Admin only: an endpoint receives readers' addresses.  The URL is checked here
(service/events/addresses.py) and again by the worker at every connection.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from ..audit import AuditTrail
from ..db.pool import Database
from ..errors import NotFound, Unprocessable
from ..pagination import Cursor, decode_cursor, encode_cursor
from ..schemas import RowId
from ..settings import Settings
from .addresses import AddressRefused, check_url, checked_addresses
from .schemas import (
    EventEndpoint,
    EventEndpointCreated,
    EventEndpointIn,
    EventEndpointPage,
    EventMessage,
    EventMessagePage,
    MessageStatus,
)
from .signing import new_secret

ADMIN = {"scope": "admin"}


class EventEndpointController(Controller):
    """Where Letterbox posts signed events about readers, bounces and editions."""

    path = "/event-endpoints"
    tags = ["events"]  # noqa: RUF012 - Litestar's own attribute type

    @post("/", opt=ADMIN, status_code=201, summary="Register an event endpoint (its secret is shown once)")
    async def create(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        data: JSONBody[EventEndpointIn],
        audit: NamedDependency[AuditTrail],
    ) -> EventEndpointCreated:
        """Check the URL (https, no credentials, a public address unless private ones are allowed) and
        answer the endpoint with the secret that signs its messages."""
        try:
            host, port = check_url(data.url, allow_private=settings.event_allow_private)
            if not settings.event_allow_private:
                await checked_addresses(host, port, allow_private=False)
        except AddressRefused as exc:
            raise Unprocessable(f"url: {exc}.") from exc
        secret = new_secret()
        events = list(dict.fromkeys(data.events))
        row = await conn.fetchrow(db.q["event-endpoint-insert"], data.url, events, data.description, secret)
        await audit.record("event_endpoint.create", "event_endpoint", row["id"] if row else None,
                           {"url": data.url, "events": events})
        return msgspec.convert({**dict(row or {}), "secret": secret}, EventEndpointCreated)

    @get("/", opt=ADMIN, summary="List event endpoints (without their secrets)")
    async def list_endpoints(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> EventEndpointPage:
        """Endpoints in id order; follow ``next_cursor`` until it is null."""
        rows = await conn.fetch(db.q["event-endpoint-page"], decode_cursor("w", cursor), limit + 1)
        items = [msgspec.convert(dict(r), EventEndpoint) for r in rows[:limit]]
        next_cursor = encode_cursor("w", items[-1].id) if len(rows) > limit else None
        return EventEndpointPage(items=items, next_cursor=next_cursor)

    @delete("/{endpoint_id:int}", opt=ADMIN, summary="Delete an event endpoint and its messages")
    async def delete_endpoint(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], endpoint_id: RowId,
        audit: NamedDependency[AuditTrail],
    ) -> None:
        """Nothing more is sent to it, not even messages still waiting for a retry."""
        if await conn.fetchval(db.q["event-endpoint-delete"], endpoint_id) is None:
            raise NotFound(f"There is no event endpoint {endpoint_id}.")
        await audit.record("event_endpoint.delete", "event_endpoint", endpoint_id)

    @get("/{endpoint_id:int}/attempts", opt=ADMIN, summary="Messages sent to an event endpoint, newest first")
    async def attempts(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        endpoint_id: RowId,
        status: Annotated[MessageStatus | None, QueryParameter()] = None,
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> EventMessagePage:
        """Each event sent to the endpoint: pending, delivered or failed, how many tries, and the latest
        try's HTTP status and error."""
        if await conn.fetchval(db.q["event-endpoint-exists"], endpoint_id) is None:
            raise NotFound(f"There is no event endpoint {endpoint_id}.")
        before = decode_cursor("m", cursor)
        rows = await conn.fetch(db.q["event-message-page"], endpoint_id, before, status, limit + 1)
        # strict=False: the tries come as JSON, their times as ISO text.
        items = [msgspec.convert(dict(r), EventMessage, strict=False) for r in rows[:limit]]
        next_cursor = encode_cursor("m", items[-1].id) if len(rows) > limit else None
        return EventMessagePage(items=items, next_cursor=next_cursor)
