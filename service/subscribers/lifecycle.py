"""The rules of a reader's life: subscribe, confirm, change preferences, unsubscribe, erase.

The public pages and the operator API both call these, so a rule lives in one
place.  Every change a person makes appends a consent record.  Each function
runs inside the caller's transaction: when a later step fails, nothing of the
change stays.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol, TypeVar

import asyncpg
import msgspec
import structlog
from litestar.connection import ASGIConnection
from msgspec import UNSET

from ..audit import scrub_subscriber
from ..db.batches import Group, Groups
from ..db.pool import Database, Executor
from ..db.queries import Queries
from ..errors import Conflict, NotFound, Unprocessable
from ..events.outbox import emit_erased, emit_subscriber, new_webhook_id
from ..logs import mask_email
from ..settings import Settings
from ..taxonomy.terms import ListRef, check_terms
from . import ratelimit
from .mails import queue_confirmation
from .schemas import SubscriberPatch
from .validation import clean_name

log = structlog.get_logger(__name__)


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who made a change and how, for the consent record."""

    source: str
    """``form``, ``api``, ``link`` (a signed link from a mail), ``one-click`` (RFC 8058), ``operator``."""
    ip: str | None = None
    user_agent: str | None = None
    wording_version: str | None = None

    @classmethod
    def of_request(cls, request: ASGIConnection[Any, Any, Any, Any], source: str,
                   wording_version: str | None = None) -> Actor:
        """The actor of an HTTP request: its client address and user agent."""
        host = request.client.host if request.client else None
        return cls.of(source, host, request.headers.get("user-agent"), wording_version)

    @classmethod
    def of(cls, source: str, ip: str | None, user_agent: str | None, wording_version: str | None = None) -> Actor:
        """An actor whose ``ip`` is kept only when it is a real IP address (the column is ``inet``)."""
        try:
            address = str(ipaddress.ip_address(ip)) if ip else None
        except ValueError:
            address = None
        return cls(source=source, ip=address, user_agent=(user_agent or None), wording_version=wording_version)


class SignUp(msgspec.Struct, frozen=True, kw_only=True):
    """A checked request to subscribe (address normalised, lists and terms known)."""

    email: str
    name: str
    agency: str | None
    role: str | None
    lists: list[ListRef]
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


class Details(msgspec.Struct, frozen=True, kw_only=True):
    """What a person may change about themselves on the preferences page."""

    name: str
    agency: str | None
    role: str | None


async def record_consent(conn: asyncpg.Connection, q: Queries, subscriber_id: int, action: str,
                         lists: list[str], actor: Actor) -> None:
    """Append one consent record (the table is append-only; erasure is the only delete)."""
    await conn.execute(q["consent-insert"], subscriber_id, action, lists, actor.source, actor.ip,
                       actor.user_agent, actor.wording_version)


async def subscribe(conn: asyncpg.Connection, q: Queries, sign_up: SignUp, actor: Actor) -> None:
    """Double opt-in, step one. The caller answers the same whatever happens here (no enumeration).

    A suppressed address gets no row and no mail.  Otherwise the lists the
    person does not yet have become pending and a confirmation mail is queued;
    someone already confirmed on every list asked for gets nothing.  Two statements
    (the request, then the mail, which needs the person's id): run it in a transaction.
    """
    asked = await conn.fetchrow(q["subscriber-request"], sign_up.email, sign_up.name, sign_up.agency, sign_up.role,
                                sign_up.attributes, [ref.id for ref in sign_up.lists], actor.source, actor.ip,
                                actor.user_agent, actor.wording_version)
    if note_asked(sign_up.email, asked):
        assert asked is not None, "a suppressed address wants no mail"
        await queue_confirmation(conn, q, asked["person_id"], asked["person_email"], asked["waiting_names"])


def note_asked(email: str, asked: asyncpg.Record | None) -> bool:
    """Log what asking for ``email`` came to (``subscriber-request`` or ``sign-up-requests-decide``); return
    whether it asks for a confirmation mail (lists are waiting for confirmation)."""
    if asked is None or asked["person_id"] is None:
        log.info("subscribe_suppressed", email=mask_email(email))
        return False
    if not asked["waiting_slugs"]:
        log.info("subscribe_nothing_new", subscriber_id=asked["person_id"])
        return False
    log.info("subscribe_requested", subscriber_id=asked["person_id"], email=mask_email(asked["person_email"]),
             lists=asked["waiting_slugs"])
    return True


class Confirming(msgspec.Struct, frozen=True):
    """A press of a confirmation link's button: whose link, and who pressed it."""

    subscriber_id: int
    actor: Actor


async def confirm(db: Executor, q: Queries, subscriber_id: int, actor: Actor) -> bool:
    """Double opt-in, step two: pending lists become confirmed and the person active.

    Returns False when the person is gone (purged or erased) or suppressed.
    Confirming twice is harmless: the second time there is nothing pending.
    One statement: on the pool it is its own transaction.
    """
    (known,) = await confirm_all(db, q, [Confirming(subscriber_id, actor)])
    return known


async def confirm_all(db: Executor, q: Queries, confirming: list[Confirming]) -> list[bool]:
    """:func:`confirm` for each of ``confirming`` in turn, in one statement; one answer each, in their order."""
    order, taken = _in_person_order(confirming)
    rows = await db.fetch(
        q["subscribers-confirm"], [c.subscriber_id for c in taken], [new_webhook_id() for _ in taken],
        [c.actor.source for c in taken], [c.actor.ip for c in taken], [c.actor.user_agent for c in taken],
        [c.actor.wording_version for c in taken],
    )
    known = [False] * len(confirming)
    for i, c, row in zip(order, taken, rows, strict=True):
        if row["confirmed"]:
            log.info("subscription_confirmed", subscriber_id=c.subscriber_id, lists=row["confirmed"])
        known[i] = bool(row["known"])
    return known


async def confirm_soon(groups: Groups, subscriber_id: int, actor: Actor) -> bool:
    """:func:`confirm`, in one statement with the other confirmations this process is recording now
    (group commit: see service/db/batches.py); the answer still waits for its own commit."""
    return await groups.submit(CONFIRMING, Confirming(subscriber_id, actor))


class Left(msgspec.Struct, frozen=True):
    """What an unsubscribe did: the slugs left now, and the names of the lists still confirmed."""

    lists: list[str]
    remaining: list[str]


class Leaving(msgspec.Struct, frozen=True):
    """An unsubscribe to record: who leaves which list (None: every list), from which edition's link, by whom."""

    subscriber_id: int
    list_id: int | None
    edition_id: int | None
    actor: Actor


async def leave(db: Executor, q: Queries, subscriber_id: int, list_id: int | None, edition_id: int | None,
                actor: Actor) -> Left | None:
    """Leave one list (``list_id``) or all (None); None when the person is gone.

    With no confirmed list left the person becomes ``unsubscribed``.  The
    edition whose link was used counts the unsubscribe.  A repeat changes nothing.
    One statement: on the pool it is its own transaction.
    """
    (left,) = await leave_all(db, q, [Leaving(subscriber_id, list_id, edition_id, actor)])
    return left


async def leave_all(db: Executor, q: Queries, leaving: list[Leaving]) -> list[Left | None]:
    """:func:`leave` for each of ``leaving`` in turn, in one statement; one answer each, in their order."""
    order, taken = _in_person_order(leaving)
    rows = await db.fetch(
        q["subscribers-unsubscribe"], [one.subscriber_id for one in taken], [one.list_id for one in taken],
        [one.edition_id for one in taken], [new_webhook_id() for _ in taken], [one.actor.source for one in taken],
        [one.actor.ip for one in taken], [one.actor.user_agent for one in taken],
        [one.actor.wording_version for one in taken],
    )
    answers: list[Left | None] = [None] * len(leaving)
    for i, one, row in zip(order, taken, rows, strict=True):
        if not row["known"]:
            continue
        answers[i] = Left(lists=row["left_lists"], remaining=row["remaining"])
        if row["left_lists"]:
            log.info("unsubscribed", subscriber_id=one.subscriber_id, lists=row["left_lists"],
                     edition_id=one.edition_id, source=one.actor.source)
    return answers


async def leave_soon(groups: Groups, leaving: Leaving) -> Left | None:
    """:func:`leave`, in one statement with the other unsubscribes this process is recording now
    (group commit: see service/db/batches.py); the answer still waits for its own commit."""
    return await groups.submit(LEAVING, leaving)


async def unsubscribe(db: Executor, q: Queries, subscriber_id: int, list_id: int | None,
                      edition_id: int | None, actor: Actor) -> list[str] | None:
    """:func:`leave`, returning only the slugs left (None when the person is gone)."""
    left = await leave(db, q, subscriber_id, list_id, edition_id, actor)
    return None if left is None else left.lists


class _ForPerson(Protocol):
    @property
    def subscriber_id(self) -> int: ...


_Change = TypeVar("_Change", bound=_ForPerson)


def _in_person_order(changes: list[_Change]) -> tuple[list[int], list[_Change]]:
    """``changes`` sorted by person, and the position each had: batches that lock people in one order cannot
    deadlock."""
    order = sorted(range(len(changes)), key=lambda i: changes[i].subscriber_id)
    return order, [changes[i] for i in order]


async def _confirm_group(db: Database, _: Settings, confirming: list[Confirming]) -> list[bool]:
    return await confirm_all(db.pool, db.q, confirming)


async def _leave_group(db: Database, _: Settings, leaving: list[Leaving]) -> list[Left | None]:
    return await leave_all(db.pool, db.q, leaving)


# People changed in one statement at most: a burst makes transactions of bounded size.
BATCH_SIZE = 200
CONFIRMING: Group[Confirming, bool] = Group(_confirm_group, BATCH_SIZE)
"""Confirmations recorded together (``runtime.groups``)."""
LEAVING: Group[Leaving, Left | None] = Group(_leave_group, BATCH_SIZE)
"""Unsubscribes recorded together (``runtime.groups``)."""


async def change_preferences(conn: asyncpg.Connection, q: Queries, subscriber_id: int, details: Details,
                             offered: list[ListRef], chosen: list[ListRef], actor: Actor) -> None:
    """Save the preferences page: details as given; ticked lists joined, offered but unticked left.

    Lists joined here are confirmed at once: only the person's own signed link leads here.
    """
    await conn.execute(q["subscriber-update-details"], subscriber_id, details.name, details.agency, details.role)
    chosen_ids = {ref.id for ref in chosen}
    await conn.fetch(q["subscriptions-join-confirmed"], subscriber_id, sorted(chosen_ids))
    await conn.fetch(q["subscriptions-leave-lists"], subscriber_id,
                     sorted(ref.id for ref in offered if ref.id not in chosen_ids))
    await conn.fetchval(q["subscriber-settle-status"], subscriber_id)
    await record_consent(conn, q, subscriber_id, "preferences", sorted(ref.slug for ref in chosen), actor)
    log.info("preferences_changed", subscriber_id=subscriber_id)


async def erase(conn: asyncpg.Connection, q: Queries, settings: Settings, subscriber_id: int) -> bool:
    """Erase a person (GDPR): nothing personal stays, only a hashed suppression. False if unknown."""
    person = await conn.fetchrow(q["subscriber-lock"], subscriber_id)
    if person is None:
        return False
    email = person["email"]
    await conn.execute(q["erasure-suppress"], email)
    await conn.execute(q["erasure-scrub-deliveries"], subscriber_id)
    await conn.execute(q["erasure-system-mails"], subscriber_id, email)
    await conn.execute(q["erasure-sign-up-requests"], email)
    await conn.execute(q["erasure-bounce-events"], subscriber_id, email)
    await conn.execute(q["rate-limit-forget"], ratelimit.email_bucket(settings, email))
    await conn.execute(q["erasure-subscriber"], subscriber_id)
    await scrub_subscriber(conn, q, subscriber_id, email)
    await emit_erased(conn, q, subscriber_id)
    log.info("subscriber_erased", subscriber_id=subscriber_id)
    return True


async def operator_change(conn: asyncpg.Connection, q: Queries, subscriber_id: int, change: SubscriberPatch,
                          actor: Actor) -> None:
    """Apply an operator's PATCH; :class:`NotFound`, :class:`Unprocessable` or :class:`Conflict` otherwise.

    Status rules: ``unsubscribed`` is always allowed (every list is left);
    ``active`` only restores a ``bounced`` person whose address is no longer
    suppressed.  Nobody is made active without their own confirmation.
    """
    person = await conn.fetchrow(q["subscriber-lock"], subscriber_id)
    if person is None:
        raise NotFound(f"There is no subscriber {subscriber_id}.")
    if change == SubscriberPatch():
        raise Unprocessable("Nothing to change: give name, agency, role, attributes or status.")
    name = None if change.name is UNSET else clean_name(change.name)
    agency = None if change.agency is UNSET else change.agency
    role = None if change.role is UNSET else change.role
    await check_terms(conn, q, agency=agency, role=role)
    await conn.execute(
        q["subscriber-patch"], subscriber_id,
        change.name is not UNSET, name,
        change.agency is not UNSET, agency,
        change.role is not UNSET, role,
        change.attributes is not UNSET, None if change.attributes is UNSET else change.attributes,
    )
    if change.status is UNSET or change.status == person["status"]:
        return
    if change.status == "unsubscribed":
        left = [r["slug"] for r in await conn.fetch(q["subscriptions-leave"], subscriber_id, None)]
        await conn.execute(q["subscriber-set-status"], subscriber_id, "unsubscribed")
        await record_consent(conn, q, subscriber_id, "unsubscribe", left, actor)
        await emit_subscriber(conn, q, "subscriber.unsubscribed", subscriber_id, lists=left, edition_id=None,
                              source=actor.source)
        return
    if person["status"] != "bounced":
        raise Conflict(
            f"A {person['status']} subscriber cannot be made active by an operator: they must subscribe "
            "and confirm themselves."
        )
    if await conn.fetchval(q["address-suppressed"], person["email"]):
        raise Conflict("The address is still suppressed: remove the suppression first.")
    await conn.execute(q["subscriber-set-status"], subscriber_id, "active")
