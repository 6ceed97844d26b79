"""From events (parsed from a mail, or sent by a provider) to the bounce policy: matching, then acting.

Every way a bounce arrives ends here: the SMTP receiver, ``POST /v1/bounces``,
``POST /v1/bounces/raw`` and the provider webhooks.  What to *do* about an
event lives in ``policy.py``; this module decides which copy we sent it is
about, in this order:

1. a copy named by a signed VERP token (the envelope recipient, or tokens
   found in the report's headers) or by our own Message-ID quoted in the
   report: an event whose address is that copy's is tied to it, and so is the
   only event of a report that names exactly one copy (the address a
   forwarding mailbox reports may not be the one we sent to);
2. otherwise the event's address: the reader with that address, and their
   latest copy sent within the soft-bounce window that has not bounced yet.

Where a bounce arrives unauthenticated (the SMTP receiver), only step 1 is
allowed: a bounce can then only ever be about the copy its token names, so a
forged report cannot bounce or unsubscribe anybody else.  Unsigned or
tampered tokens are ignored.

A refusal at send time (a 5xx reply to the worker) and the bounce of a system
mail (a confirmation: its return path carries a token of its own) are
classified the same way, by ``classify.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from email.utils import parseaddr

import asyncpg
import msgspec
import structlog

from ..db.queries import Queries
from ..logs import mask_email
from ..metrics import Metrics
from ..settings import Settings
from ..tokens import Purpose, TokenInvalid, TokenSigner
from .classify import classify
from .finding import Finding
from .parse import Ours, ParsedEvent
from .policy import BounceFacts, apply_bounce
from .schemas import BounceEvent

log = structlog.get_logger(__name__)

# The worker's Message-IDs are "<DELIVERY_ID.RANDOM@domain>"; the random part makes them unguessable,
# and a candidate counts only when it equals the stored Message-ID of that delivery.  The angle
# brackets are optional because some providers (Mailgun) quote Message-IDs without them.
_OUR_MESSAGE_ID = re.compile(rb"(?<![\w.+-])<?(\d{1,18})\.([0-9a-f]{8,64})@([A-Za-z0-9.-]{1,253}[A-Za-z0-9])>?")
_MESSAGE_ID_SCAN = 1024 * 1024
_MAX_CANDIDATES = 100  # a provider's batch may quote one per event


class Copy(msgspec.Struct, frozen=True):
    """A copy we sent that a bounce may be about."""

    delivery_id: int
    email: str | None  # the address it went to; None once the reader has been erased


class _DryRun(Exception):
    """Raised inside a savepoint to undo a dry run's writes."""


def ours(settings: Settings) -> Ours:
    """Our own addresses, never a failed recipient: the From address and the bounce domain."""
    from_addr = parseaddr(settings.from_addr)[1].lower()
    return Ours(
        addresses=frozenset({from_addr} if from_addr else set()),
        domains=frozenset({settings.effective_bounce_domain.lower()}),
    )


def verp_delivery_id(signer: TokenSigner, token: str) -> int | None:
    """The delivery a VERP token names, or None when it is forged, tampered or for another purpose."""
    try:
        fields = signer.verify(Purpose.VERP, token)
    except TokenInvalid:
        return None
    return fields[0] if len(fields) == 1 and fields[0] is not None else None


def system_mail_id(signer: TokenSigner, token: str) -> int | None:
    """The system mail a return-path token names, or None when it is not a genuine system-mail token."""
    try:
        fields = signer.verify(Purpose.SYSTEM_MAIL, token)
    except TokenInvalid:
        return None
    return fields[0] if len(fields) == 1 and fields[0] is not None else None


def message_id_candidates(raw: bytes) -> list[tuple[int, str]]:
    """(delivery id, Message-ID) pairs of our own Message-IDs quoted in a report (unverified)."""
    found: list[tuple[int, str]] = []
    for match in _OUR_MESSAGE_ID.finditer(raw[:_MESSAGE_ID_SCAN]):
        pair = (int(match[1]), f"<{match[1].decode()}.{match[2].decode()}@{match[3].decode()}>")
        if pair not in found:
            found.append(pair)
        if len(found) == _MAX_CANDIDATES:
            break
    return found


async def copies_named(
    conn: asyncpg.Connection,
    q: Queries,
    signer: TokenSigner,
    *,
    tokens: Iterable[str] = (),
    message_ids: Iterable[tuple[int, str]] = (),
) -> list[Copy]:
    """The copies that signed VERP tokens or our Message-IDs name; anything that does not verify is dropped."""
    copies: list[Copy] = []
    wanted: list[tuple[int, str | None]] = []
    for token in tokens:
        delivery_id = verp_delivery_id(signer, token)
        if delivery_id is None:
            if system_mail_id(signer, token) is None:
                log.info("verp_token_refused")
        else:
            wanted.append((delivery_id, None))
    wanted += list(message_ids)
    for delivery_id, message_id in wanted:
        if any(c.delivery_id == delivery_id for c in copies) or delivery_id > 2**63 - 1:
            continue
        row = await conn.fetchrow(q["delivery-for-bounce"], delivery_id)
        if row is not None and (message_id is None or row["message_id"] == message_id):
            copies.append(Copy(row["id"], row["email"]))
    return copies


async def ingest_events(
    conn: asyncpg.Connection,
    q: Queries,
    settings: Settings,
    events: Sequence[ParsedEvent],
    *,
    source: str,
    copies: Sequence[Copy] = (),
    tied_only: bool = False,
    edition_id: int | None = None,
    dry_run: bool = False,
) -> list[BounceEvent]:
    """Match each event and apply the bounce policy to it; return what happened, in order.

    ``tied_only``: act only on events tied to one of ``copies`` (unauthenticated sources).
    ``edition_id``: the edition the caller says the events are about (``POST /v1/bounces``).
    ``dry_run``: do everything inside a savepoint and roll it back, so ``matched`` is exact
    and nothing changes.  Call inside a transaction.
    """
    if not dry_run:
        return await _ingest(conn, q, settings, events, source, copies, tied_only, edition_id)
    outcomes: list[BounceEvent] = []
    try:
        async with conn.transaction():
            outcomes = await _ingest(conn, q, settings, events, source, copies, tied_only, edition_id)
            raise _DryRun
    except _DryRun:
        pass
    return outcomes


def count(metrics: Metrics, outcomes: Iterable[BounceEvent]) -> None:
    """Count the events acted on (call once their transaction has committed)."""
    for outcome in outcomes:
        if outcome.matched:
            metrics.bounces.labels(kind=outcome.kind).inc()


async def _ingest(
    conn: asyncpg.Connection,
    q: Queries,
    settings: Settings,
    events: Sequence[ParsedEvent],
    source: str,
    copies: Sequence[Copy],
    tied_only: bool,
    edition_id: int | None,
) -> list[BounceEvent]:
    outcomes: list[BounceEvent] = []
    for event in events:
        copy = _tied_copy(event, copies, only_event=len(events) == 1)
        # The copy a signed token names knows the address we sent to; a Final-Recipient may be
        # where an alias or forward led.
        email = copy.email if copy is not None and copy.email else event.email
        matched = False
        if copy is not None or not tied_only:
            delivery_id = (
                copy.delivery_id if copy is not None else await _likely_copy(conn, q, settings, event.email, edition_id)
            )
            facts = BounceFacts(
                email=event.email, kind=event.kind, status=event.status, diagnostic=event.diagnostic,
                source=source, delivery_id=delivery_id, edition_id=edition_id, event_id=event.event_id,
            )  # fmt: skip
            matched = await apply_bounce(conn, q, settings, facts)
        log.info(
            "bounce_event", kind=event.kind, status=event.status, matched=matched, source=source,
            email=mask_email(email), tied=copy is not None,
        )  # fmt: skip
        outcomes.append(BounceEvent(email, event.kind, event.status, event.diagnostic, matched))
    return outcomes


async def record_send_refusal(
    conn: asyncpg.Connection, q: Queries, settings: Settings, delivery_id: int, reply: str
) -> bool:
    """A refusal at send time ("550 5.1.1 ..."), classified like any report: a 552 mailbox full
    is soft, a 550 user unknown hard. Return whether it matched a reader."""
    verdict = classify(Finding(email="", diagnostic=reply, action="failed"))
    if verdict is None:
        return False
    facts = BounceFacts(
        email="", kind=verdict.kind, status=verdict.status, diagnostic=reply, source="smtp", delivery_id=delivery_id
    )
    return await apply_bounce(conn, q, settings, facts)


async def drop_bounced_signups(
    conn: asyncpg.Connection, q: Queries, signer: TokenSigner, tokens: Iterable[str], events: Sequence[ParsedEvent]
) -> int:
    """A hard bounce of a confirmation mail drops the pending sign-up it asked to confirm.

    ``tokens`` are the report's return-path tokens; one that is a genuine system-mail token
    names the mail. A person still pending is removed; anyone else loses only the lists still
    waiting for confirmation, so an active reader keeps everything they have. Return how many
    sign-ups were dropped.
    """
    dropped = 0
    for token in tokens:
        mail_id = system_mail_id(signer, token)
        mail = await conn.fetchrow(q["system-mail-for-bounce"], mail_id) if mail_id is not None else None
        if mail is None or mail["kind"] != "confirm" or mail["subscriber_id"] is None:
            continue
        recipient = str(mail["recipient"]).lower()
        hard = [e for e in events if e.kind == "hard" and (e.email == recipient or len(events) == 1)]
        if not hard:
            continue
        await conn.execute(q["system-mail-drop-signup"], mail["subscriber_id"])
        log.info("signup_dropped_after_bounce", email=mask_email(recipient), status=hard[0].status)
        dropped += 1
    return dropped


def _tied_copy(event: ParsedEvent, copies: Sequence[Copy], *, only_event: bool) -> Copy | None:
    """The copy an event is about: same address, or the one copy named for a lone or anonymous event."""
    for copy in copies:
        if copy.email is not None and event.email and copy.email.lower() == event.email.lower():
            return copy
    if len(copies) == 1 and (only_event or not event.email):
        return copies[0]
    return None


async def _likely_copy(
    conn: asyncpg.Connection, q: Queries, settings: Settings, email: str, edition_id: int | None
) -> int | None:
    if not email:
        return None
    if edition_id is not None:
        found: int | None = await conn.fetchval(q["bounce-delivery-in-edition"], email, edition_id)
    else:
        found = await conn.fetchval(q["bounce-delivery-guess"], email, settings.soft_bounce_window_days)
    return found
