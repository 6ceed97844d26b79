"""Double opt-in step one, decided after the form has been answered, many sign-ups at a time.

Whether an address is new, pending, already active or suppressed decides how
much work a sign-up is (a new person, a consent record and a confirmation
mail, or nothing).  Done inside the request, that work showed in the time the
form took to answer: 3.9 ms for a reader, 5.9 ms for a stranger, enough to
tell who reads the newsletter.  So the form only records the checked sign-up
(:func:`record`, one statement, the same for every address) and answers; the
process that answered decides it right after (:func:`decide`, a background
task), and a worker decides any that a crash left waiting
(:func:`decide_left_behind`).  Nothing is lost between answer and decision.

One sign-up at a time, PostgreSQL's work was mostly paid per statement and per
commit: the record, then a transaction per person to decide it (BEGIN, the
statement, the mail, COMMIT, the reference triggers of every INSERT).  So each
process groups them (service/db/batches.py): the sign-ups its requests record while a
record runs are counted and recorded together in the next statement
(:func:`record_soon`), each answer still waiting for its own; those handed over
while a batch is decided are decided together, their confirmation mails queued
with them, in one statement (``sign-up-requests-decide``; the worker composes
each mail as it sends it).  Every answer still waits for the same work,
whatever the address.
"""

from __future__ import annotations

import msgspec
import structlog

from ..db.batches import Group, Groups
from ..db.pool import Database, Executor
from ..db.queries import Queries
from ..errors import is_unavailable
from ..settings import Settings
from . import lifecycle, ratelimit
from .mails import check_recipient

log = structlog.get_logger(__name__)

# A sign-up still waiting this long was left by a process that died before deciding it.
LEFT_BEHIND_SECONDS = 10.0
# Sign-ups recorded or decided in one statement at most: a burst makes transactions of bounded size.
BATCH_SIZE = 200


class _Waiting(msgspec.Struct, frozen=True):
    """A recorded sign-up, as stored in ``sign_up_requests.request``."""

    sign_up: lifecycle.SignUp
    actor: lifecycle.Actor


def check_mailable(sign_up: lifecycle.SignUp) -> None:
    """Raise :class:`InvalidValue` now if no confirmation could be written to this address.

    The composer's own check decides (:func:`mails.check_recipient`), so a refused address is a
    400 on the form rather than a sign-up silently dropped later; it costs the same for every address.
    """
    check_recipient(sign_up.email)


class Recorded(msgspec.Struct, frozen=True):
    """What :func:`record` did: recorded the sign-up (``request_id``), or found a limit reached."""

    request_id: int | None
    retry_after: int | None
    """Seconds until the limit that refused it lets the next through (None when recorded)."""


class Attempt(msgspec.Struct, frozen=True):
    """A checked sign-up to count and record: who asks, from which client, when."""

    sign_up: lifecycle.SignUp
    actor: lifecycle.Actor
    client: str
    now: float


async def record(db: Executor, q: Queries, settings: Settings, sign_up: lifecycle.SignUp,
                 actor: lifecycle.Actor, client: str, now: float) -> Recorded:
    """Count the sign-up against the per-client and per-address limits and record it if both allow it.

    One statement, committed on its own, the same for every address: the counts stay counted
    whatever happens next, and no bucket's row stays locked while the request goes on.
    """
    (recorded,) = await record_all(db, q, settings, [Attempt(sign_up, actor, client, now)])
    return recorded


async def record_all(db: Executor, q: Queries, settings: Settings,
                     attempts: list[Attempt]) -> list[Recorded]:
    """:func:`record` for many sign-ups in one statement, counted in their order; one result each."""
    by_client, by_address = ratelimit.per_client(settings), ratelimit.per_address(settings)
    rows = await db.fetch(
        q["sign-up-requests-record"],
        [ratelimit.client_bucket(a.client) for a in attempts],
        [ratelimit.window_start(by_client, a.now) for a in attempts], by_client.hits,
        [ratelimit.email_bucket(settings, a.sign_up.email) for a in attempts],
        [ratelimit.window_start(by_address, a.now) for a in attempts], by_address.hits,
        [a.sign_up.email for a in attempts], [_Waiting(a.sign_up, a.actor) for a in attempts],
    )
    return [
        Recorded(request_id=row["id"], retry_after=ratelimit.retry_after(by_client, row["client_hits"], a.now)
                 or ratelimit.retry_after(by_address, row["address_hits"], a.now))
        for row, a in zip(rows, attempts, strict=True)
    ]


async def _record_group(db: Database, settings: Settings, attempts: list[Attempt]) -> list[Recorded]:
    return await record_all(db.pool, db.q, settings, attempts)


async def _decide_group(db: Database, _: Settings, request_ids: list[int]) -> list[None]:
    await _decide_all(db, request_ids)
    return [None] * len(request_ids)


RECORDING: Group[Attempt, Recorded] = Group(_record_group, BATCH_SIZE)
"""Form sign-ups counted and recorded together (``runtime.groups``)."""
DECIDING: Group[int, None] = Group(_decide_group, BATCH_SIZE)
"""Recorded sign-ups decided together after their answers (``runtime.groups``)."""


async def record_soon(groups: Groups, attempt: Attempt) -> Recorded:
    """:func:`record`, in one statement with the other sign-ups this process is recording now (group commit)."""
    return await groups.submit(RECORDING, attempt)


async def decide(groups: Groups, request_id: int) -> None:
    """Decide the sign-up ``request_id`` after the answer, with any handed over meanwhile; never raise."""
    await groups.submit(DECIDING, request_id)


async def decide_left_behind(db: Database, limit: int = 200) -> int:
    """Decide sign-ups whose process died before deciding them; return how many (for the worker)."""
    rows = await db.pool.fetch(db.q["sign-up-requests-left-behind"], LEFT_BEHIND_SECONDS, limit)
    if not rows:
        return 0
    return await _decide_all(db, [row["id"] for row in rows])


async def _decide_all(db: Database, ids: list[int]) -> int:
    """Decide the sign-ups ``ids`` in as few batches as their addresses allow; return how many; never raise."""
    decided = 0
    while ids:
        try:
            taken = await _decide_batch(db, ids)
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("subscribe_not_decided_yet", error=type(exc).__name__)  # a worker decides them later
                return decided
            # Unexpected (a deadlock with another writer, a bad row): one at a time finds the culprit.
            log.warning("subscribe_batch_failed", error=type(exc).__name__, sign_ups=len(ids))
            return decided + await _decide_each(db, ids)
        if not taken:  # the rest are decided already, or another process holds them now
            break
        decided += len(taken)
        ids = [i for i in ids if i not in taken]  # a second sign-up for an address waits for the next batch
    return decided


async def _decide_each(db: Database, ids: list[int]) -> int:
    """Decide each sign-up on its own, dropping one that fails unexpectedly (it would fail again and block the rest)."""
    decided = 0
    for request_id in ids:
        try:
            decided += len(await _decide_batch(db, [request_id]))
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("subscribe_not_decided_yet", error=type(exc).__name__)
                return decided
            log.exception("subscribe_failed", sign_up_request=request_id)
            await db.pool.execute(db.q["sign-up-request-drop"], request_id)
            decided += 1
    return decided


async def _decide_batch(db: Database, ids: list[int]) -> set[int]:
    """Take the sign-ups ``ids`` (one per address), ask for them and queue their mails, in one statement,
    so that each is decided exactly once; return the ids taken."""
    asked = await db.pool.fetch(db.q["sign-up-requests-decide"], ids)
    for row in asked:
        lifecycle.note_asked(row["email"], row)
    return {row["id"] for row in asked}
