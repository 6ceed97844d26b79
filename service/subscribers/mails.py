"""The confirmation mail: written from a template and queued in the request's transaction.

The worker sends it (service/delivery/worker.py), so a slow SMTP server never
slows the form and a crash never loses the mail.  The mail carries nothing
the requester typed except the address itself: a name field would let anyone
send a message of their choosing to any address through our form.
"""

from __future__ import annotations

import functools
from email.utils import parseaddr

import asyncpg
import jinja2

from ..db.queries import Queries
from ..errors import InvalidValue
from ..links import Links
from ..mail.addresses import sender_domain
from ..mail.compose import compose_simple
from ..settings import Settings
from ..tokens import TokenSigner


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


def confirmation_mail(settings: Settings, signer: TokenSigner, subscriber_id: int, email: str,
                      list_names: list[str]) -> bytes:
    """The RFC 5322 bytes of a confirmation mail for ``list_names``."""
    sender_name, sender_addr = parseaddr(settings.from_addr)
    text = _text_templates().get_template("confirm_mail.txt").render(
        sender=sender_name or sender_addr,
        lists=list_names,
        confirm_url=Links(settings, signer).confirm_url(subscriber_id),
        days=max(1, settings.confirm_max_age_seconds // 86400),
    )
    try:
        return compose_simple(
            from_addr=settings.from_addr,
            to_email=email,
            subject="Please confirm your subscription",
            text=text,
            headers={"Auto-Submitted": "auto-generated"},
            message_id_domain=sender_domain(settings.from_addr, settings.effective_bounce_domain),
        )
    except ValueError as exc:  # the composer refuses what it cannot put in a header safely
        raise InvalidValue("This address cannot be used for mail.", field="email") from exc


async def queue_confirmation(conn: asyncpg.Connection, q: Queries, settings: Settings, signer: TokenSigner,
                             subscriber_id: int, email: str, list_names: list[str]) -> None:
    """Queue the confirmation mail for the worker (part of the caller's transaction)."""
    message = confirmation_mail(settings, signer, subscriber_id, email, list_names)
    await conn.execute(q["system-mail-insert"], subscriber_id, "confirm", email, message)
