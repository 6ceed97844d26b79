"""The confirmation mail: written from a template and queued in the deciding transaction.

The worker sends it (service/delivery/worker.py), so a slow SMTP server never
slows the form and a crash never loses the mail.  The mail carries nothing
the requester typed except the address itself: a name field would let anyone
send a message of their choosing to any address through our form.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from email.utils import parseaddr

import asyncpg
import jinja2

from ..db.queries import Queries
from ..errors import InvalidValue
from ..links import Links
from ..mail.addresses import sender_domain
from ..mail.compose import HeaderInjectionError, compose_simple, recipient_address
from ..settings import Settings
from ..tokens import TokenSigner

SUBJECT = "Please confirm your subscription"
_REFUSED = "This address cannot be used for mail."


@functools.cache
def _text_templates() -> jinja2.Environment:
    """Plain-text mail templates: no HTML escaping, strict about missing values."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("service", "templates"),
        autoescape=False,  # noqa: S701 - text/plain mail, never HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def check_recipient(email: str) -> None:
    """Raise :class:`InvalidValue` if a confirmation mail to ``email`` would be refused by the composer.

    The composer's only check that depends on the recipient is its To address
    (:func:`recipient_address`), so this asks that and composes nothing.
    """
    try:
        recipient_address(email)
    except HeaderInjectionError as exc:
        raise InvalidValue(_REFUSED, field="email") from exc


class ConfirmationMails:
    """Writes confirmation mails for one installation: what is the same in every one is worked out once."""

    def __init__(self, settings: Settings, signer: TokenSigner) -> None:
        sender_name, sender_addr = parseaddr(settings.from_addr)
        self._from_addr = settings.from_addr
        self._sender = sender_name or sender_addr
        self._days = max(1, settings.confirm_max_age_seconds // 86400)
        self._domain = sender_domain(settings.from_addr, settings.effective_bounce_domain)
        self._links = Links(settings, signer)
        self._template = _text_templates().get_template("confirm_mail.txt")

    def compose(self, subscriber_id: int, email: str, list_names: Sequence[str]) -> bytes:
        """The RFC 5322 bytes of a confirmation mail for ``list_names``."""
        text = self._template.render(sender=self._sender, lists=list_names,
                                     confirm_url=self._links.confirm_url(subscriber_id), days=self._days)
        try:
            return compose_simple(
                from_addr=self._from_addr,
                to_email=email,
                subject=SUBJECT,
                text=text,
                headers={"Auto-Submitted": "auto-generated"},
                message_id_domain=self._domain,
            )
        except ValueError as exc:  # the composer refuses what it cannot put in a header safely
            raise InvalidValue(_REFUSED, field="email") from exc


async def queue_confirmation(conn: asyncpg.Connection, q: Queries, settings: Settings, signer: TokenSigner,
                             subscriber_id: int, email: str, list_names: list[str]) -> None:
    """Queue the confirmation mail for the worker (part of the caller's transaction)."""
    message = ConfirmationMails(settings, signer).compose(subscriber_id, email, list_names)
    await conn.execute(q["system-mail-insert"], subscriber_id, "confirm", email, message)


async def queue_confirmations(conn: asyncpg.Connection, q: Queries, mails: ConfirmationMails,
                              asked: Sequence[tuple[int, str, Sequence[str]]]) -> None:
    """Queue one confirmation mail per (person, address, list names) in one statement (the caller's transaction)."""
    people = [person for person, _, _ in asked]
    recipients = [email for _, email, _ in asked]
    messages = [mails.compose(person, email, names) for person, email, names in asked]
    await conn.execute(q["system-mails-insert-confirmations"], people, recipients, messages)
