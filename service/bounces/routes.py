"""Bounce and complaint endpoints, registered by service/app.py.

``api_handlers`` go under ``/v1`` behind API keys: ``POST /v1/bounces`` (a
bounce already reduced to its facts), ``POST /v1/bounces/raw`` (the mail
itself) and ``/v1/suppressions``.  ``webhook_handlers`` are mounted at the
root, outside the API-key guard, because providers cannot send our key: each
request proves itself by its provider's signature or credentials instead.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, PathParameter
from litestar.types import ControllerRouterHandler

from ..db.pool import Database
from ..errors import NotFound, Unprocessable, UnsupportedMediaType
from ..metrics import Metrics
from ..runtime import Runtime
from ..settings import Settings
from ..subscribers.validation import normalise_email
from ..tokens import TokenSigner
from .finding import Finding
from .ingest import copies_named, count, drop_bounced_signups, ingest_events, message_id_candidates, ours
from .parse import events, parse_report
from .schemas import BounceEvents, BounceIn, BounceMatched, ProviderBody, RawMailBody
from .suppressions import SuppressionController
from .webhooks import PROVIDERS

WRITE = {"scope": "bounces:write"}
RAW_MEDIA_TYPES = ("message/rfc822", "text/plain", "application/octet-stream")


class BounceController(Controller):
    """Bounces and complaints reported by other systems."""

    path = "/bounces"
    tags = ["bounces"]  # noqa: RUF012 - Litestar's own attribute type

    @post("/", opt=WRITE, status_code=200, summary="Report one bounce or complaint")
    async def report(
        self,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        metrics: NamedDependency[Metrics],
        data: JSONBody[BounceIn],
    ) -> BounceMatched:
        """Classify it like any report (``kind`` is a hint; a code in ``reason`` decides) and act on it;
        ``matched`` is false (and nothing changes) for an unknown address."""
        email = normalise_email(data.email, field="email").lower()
        complaint = data.kind == "complaint"
        finding = Finding(
            email, diagnostic=data.reason, complaint=complaint, feedback_type="abuse" if complaint else None,
            hint=f"api:{data.kind}",
        )  # fmt: skip
        async with db.transaction() as conn:
            if data.edition_id is not None and await conn.fetchval(db.q["edition-exists"], data.edition_id) is None:
                raise Unprocessable(f"There is no edition {data.edition_id}.")
            outcomes = await ingest_events(
                conn, db.q, settings, events([finding]), source="api", edition_id=data.edition_id
            )
        count(metrics, outcomes)
        return BounceMatched(matched=bool(outcomes) and outcomes[0].matched)

    @post(
        "/raw",
        opt=WRITE,
        status_code=200,
        summary="Report a bounce or complaint mail as received",
        operation_class=RawMailBody,
    )
    async def raw(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        signer: NamedDependency[TokenSigner],
        metrics: NamedDependency[Metrics],
        dry_run: FromQuery[bool] = False,
    ) -> BounceEvents:
        """Parse the mail, match each failed recipient (signed VERP token first, then address) and act.

        ``dry_run=true`` answers the same, ``matched`` included, and changes nothing.
        """
        media_type = request.content_type[0]
        if media_type not in RAW_MEDIA_TYPES:
            raise UnsupportedMediaType(f"Send the mail as {', '.join(RAW_MEDIA_TYPES)}, not {media_type or 'nothing'}.")
        raw = await request.body()
        if not raw.strip():
            raise Unprocessable("The body is empty: post the bounce or complaint mail itself.")
        # Parsing a large mail takes a while; it must not hold up the event loop.
        report = await asyncio.to_thread(parse_report, raw, ours(settings))
        async with db.transaction() as conn:
            copies = await copies_named(
                conn, db.q, signer, tokens=report.verp_tokens, message_ids=message_id_candidates(raw)
            )
            outcomes = await ingest_events(
                conn, db.q, settings, report.events, source="api-raw", copies=copies, dry_run=dry_run
            )
            if not dry_run:
                await drop_bounced_signups(conn, db.q, signer, report.verp_tokens, report.events)
        if not dry_run:
            count(metrics, outcomes)
        return BounceEvents(events=outcomes)


@post(
    "/v1/webhooks/{provider:str}",
    status_code=200,
    tags=["webhooks"],
    summary="Bounces and complaints from Amazon SES (SNS), Postmark, SendGrid or Mailgun",
    operation_class=ProviderBody,
)
async def provider_webhook(
    request: Request[Any, Any, Any],
    provider: Annotated[str, PathParameter(schema_extra={"enum": list(PROVIDERS)})],
    db: NamedDependency[Database],
    runtime: NamedDependency[Runtime],
) -> BounceEvents:
    """``provider`` is ``ses``, ``postmark``, ``sendgrid`` or ``mailgun``; see the README for setting each up.

    No API key: the request is verified its provider's way first (401 and nothing written when
    it fails or the provider is not configured); then each event is matched (by our Message-ID when
    the provider quotes it, else by address) and acted on.
    """
    webhook = PROVIDERS.get(provider)
    if webhook is None:
        raise NotFound(f"There is no webhook for '{provider}'; providers: {', '.join(PROVIDERS)}.")
    db, settings = runtime.db, runtime.settings
    body = await request.body()
    found = events(webhook.read(body, request.headers, settings.webhooks, runtime.clock()), ours(settings))
    # A connection is taken only once the request is verified: unverified traffic cannot drain the pool.
    async with db.transaction() as conn:
        # Providers that pass on our Message-ID (SES, SendGrid, Mailgun) let us tie events to the exact copy.
        # A batch may quote copies of other people's mail (a "delivered" event), so only same-address ties count.
        named = await copies_named(conn, db.q, runtime.signer, message_ids=message_id_candidates(body)) if found else []
        addresses = {event.email for event in found}
        copies = [c for c in named if c.email is not None and c.email.lower() in addresses]
        outcomes = await ingest_events(conn, db.q, settings, found, source=f"webhook-{provider}", copies=copies)
    count(runtime.metrics, outcomes)
    return BounceEvents(events=outcomes)


api_handlers: list[ControllerRouterHandler] = [BounceController, SuppressionController]
webhook_handlers: list[ControllerRouterHandler] = [provider_webhook]
