"""Double opt-in step one, decided after the form has been answered.

Whether an address is new, pending, already active or suppressed decides how
much work a sign-up is (a new person, a consent record and a confirmation
mail, or nothing).  Done inside the request, that work showed in the time the
form took to answer: 3.9 ms for a reader, 5.9 ms for a stranger, enough to
tell who reads the newsletter.  So the form answers first, after doing only
what is the same for every address, and :func:`decide` runs once the answer
has been sent (a background task of the same process).  A SIGTERM lets it
finish; only a crash in the few milliseconds between answer and decision
loses a sign-up, and the person sees no mail and can ask again.
"""

from __future__ import annotations

import structlog

from ..db.pool import Database
from ..errors import is_unavailable
from ..settings import Settings
from ..tokens import TokenSigner
from . import lifecycle
from .mails import confirmation_mail

log = structlog.get_logger(__name__)


def check_mailable(settings: Settings, signer: TokenSigner, sign_up: lifecycle.SignUp) -> None:
    """Raise :class:`InvalidValue` now if no confirmation could be written to this address.

    The composer that will write the real one decides, so a refused address is a
    400 on the form rather than a sign-up silently dropped later; the check costs
    the same for every address.
    """
    confirmation_mail(settings, signer, 0, sign_up.email, [ref.name for ref in sign_up.lists])


async def decide(db: Database, settings: Settings, signer: TokenSigner, sign_up: lifecycle.SignUp,
                 actor: lifecycle.Actor) -> None:
    """Run :func:`lifecycle.subscribe` in a transaction of its own; never raise (the answer has gone)."""
    try:
        async with db.transaction() as conn:
            await lifecycle.subscribe(conn, db.q, settings, signer, sign_up, actor)
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("subscribe_not_recorded", error=type(exc).__name__)
        else:
            log.exception("subscribe_failed")
