"""Double opt-in step one, decided after the form has been answered.

Whether an address is new, pending, already active or suppressed decides how
much work a sign-up is (a new person, a consent record and a confirmation
mail, or nothing).  Done inside the request, that work showed in the time the
form took to answer: 3.9 ms for a reader, 5.9 ms for a stranger, enough to
tell who reads the newsletter.  So the form only records the checked sign-up
(:func:`record`, one INSERT, the same for every address) and answers; the
process that answered decides it right after (:func:`decide`, a background
task), and a worker decides any that a crash left waiting
(:func:`decide_left_behind`).  Nothing is lost between answer and decision.
"""

from __future__ import annotations

import msgspec
import structlog

from ..db.pool import Database
from ..db.queries import Queries
from ..errors import is_unavailable
from ..settings import Settings
from ..tokens import TokenSigner
from . import lifecycle, ratelimit
from .mails import confirmation_mail

log = structlog.get_logger(__name__)

# A sign-up still waiting this long was left by a process that died before deciding it.
LEFT_BEHIND_SECONDS = 10.0


class _Waiting(msgspec.Struct, frozen=True):
    """A recorded sign-up, as stored in ``sign_up_requests.request``."""

    sign_up: lifecycle.SignUp
    actor: lifecycle.Actor


def check_mailable(settings: Settings, signer: TokenSigner, sign_up: lifecycle.SignUp) -> None:
    """Raise :class:`InvalidValue` now if no confirmation could be written to this address.

    The composer that will write the real one decides, so a refused address is a
    400 on the form rather than a sign-up silently dropped later; the check costs
    the same for every address.
    """
    confirmation_mail(settings, signer, 0, sign_up.email, [ref.name for ref in sign_up.lists])


class Recorded(msgspec.Struct, frozen=True):
    """What :func:`record` did: recorded the sign-up (``request_id``), or found a limit reached."""

    request_id: int | None
    retry_after: int | None
    """Seconds until the limit that refused it lets the next through (None when recorded)."""


async def record(db: ratelimit.Executor, q: Queries, settings: Settings, sign_up: lifecycle.SignUp,
                 actor: lifecycle.Actor, client: str, now: float) -> Recorded:
    """Count the sign-up against the per-client and per-address limits and record it if both allow it.

    One statement, committed on its own, the same for every address: the counts stay counted
    whatever happens next, and no bucket's row stays locked while the request goes on.
    """
    by_client, by_address = ratelimit.per_client(settings), ratelimit.per_address(settings)
    row = await db.fetchrow(
        q["sign-up-request-record"],
        ratelimit.client_bucket(client), ratelimit.window_start(by_client, now), by_client.hits,
        ratelimit.email_bucket(settings, sign_up.email), ratelimit.window_start(by_address, now), by_address.hits,
        sign_up.email, _Waiting(sign_up, actor),
    )
    assert row is not None, "the client's count always returns a row"
    wait = ratelimit.retry_after(by_client, row["client_hits"], now) or ratelimit.retry_after(
        by_address, row["address_hits"], now
    )
    return Recorded(request_id=row["id"], retry_after=wait)


async def decide(db: Database, settings: Settings, signer: TokenSigner, request_id: int) -> None:
    """Decide the sign-up ``request_id`` now (after the answer); never raise (the answer has gone)."""
    await _decide_one(db, settings, signer, request_id)


async def decide_left_behind(db: Database, settings: Settings, signer: TokenSigner, limit: int = 50) -> int:
    """Decide sign-ups whose process died before deciding them; return how many (for the worker)."""
    done = 0
    while done < limit and await _decide_one(db, settings, signer, None):
        done += 1
    return done


async def _decide_one(db: Database, settings: Settings, signer: TokenSigner, request_id: int | None) -> bool:
    """Take one waiting sign-up and ask for it (``sign-up-request-decide``: one statement), then queue its
    mail, in one transaction, so that it is decided exactly once; return whether there was one."""
    taken = request_id
    try:
        async with db.transaction() as conn:
            if taken is None:
                taken = await conn.fetchval(db.q["sign-up-request-left-behind"], LEFT_BEHIND_SECONDS)
                if taken is None:
                    return False
            decided = await conn.fetchrow(db.q["sign-up-request-decide"], taken)
            if decided is None:  # decided already, or another process holds it now
                return False
            await lifecycle.queue_asked(conn, db.q, settings, signer, decided["email"], decided)
        return True
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("subscribe_not_decided_yet", error=type(exc).__name__)  # a worker decides it later
            return False
        log.exception("subscribe_failed", sign_up_request=taken)
        if taken is not None:  # unexpected: drop it, or it would fail again and block the rest
            await db.pool.execute(db.q["sign-up-request-drop"], taken)
        return taken is not None
