"""The confirmation mail: queued in the deciding transaction, composed by the worker as it sends it.

The worker sends it (service/delivery/worker.py, composing it with
service/mail/confirmation.py), so a slow SMTP server never slows the form, a
crash never loses the mail, and the process that answered composes nothing.
"""

from __future__ import annotations

import asyncpg

from ..db.queries import Queries
from ..errors import InvalidValue
from ..mail.compose import HeaderInjectionError, recipient_address


def check_recipient(email: str) -> None:
    """Raise :class:`InvalidValue` if a confirmation mail to ``email`` would be refused by the composer.

    The composer's only check that depends on the recipient is its To address
    (:func:`recipient_address`), so this asks that and composes nothing.
    """
    try:
        recipient_address(email)
    except HeaderInjectionError as exc:
        raise InvalidValue("This address cannot be used for mail.", field="email") from exc


async def queue_confirmation(conn: asyncpg.Connection, q: Queries, subscriber_id: int, email: str,
                             list_names: list[str]) -> None:
    """Queue the confirmation mail for the worker (part of the caller's transaction); :class:`InvalidValue`
    if the address could not be written to."""
    check_recipient(email)
    await conn.execute(q["system-mail-insert-confirmation"], subscriber_id, email, list_names)
