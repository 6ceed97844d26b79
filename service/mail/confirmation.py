"""The confirmation mail, composed when it is sent: what the deciding statement stored is all it needs.

A sign-up's decision stores the person, the address and the names of the lists
waiting for confirmation (``system_mails``); the worker writes the mail from them
as it sends it, so the web process that answered the form composes nothing and
the link's seven days start when the mail leaves.  The mail carries nothing the
requester typed except the address itself: a name field would let anyone send
a message of their choosing to any address through our form.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from email.utils import parseaddr

import jinja2

from ..links import Links
from ..settings import Settings
from .addresses import sender_domain
from .compose import compose_simple

SUBJECT = "Please confirm your subscription"


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


class ConfirmationMails:
    """Writes confirmation mails for one installation: what is the same in every one is worked out once."""

    def __init__(self, settings: Settings, links: Links) -> None:
        sender_name, sender_addr = parseaddr(settings.from_addr)
        self._from_addr = settings.from_addr
        self._sender = sender_name or sender_addr
        self._days = max(1, settings.confirm_max_age_seconds // 86400)
        self._domain = sender_domain(settings.from_addr, settings.effective_bounce_domain)
        self._links = links
        self._template = _text_templates().get_template("confirm_mail.txt")

    def compose(self, subscriber_id: int, email: str, list_names: Sequence[str]) -> bytes:
        """The RFC 5322 bytes of a confirmation mail for ``list_names``; ValueError for an address
        the composer refuses (see :func:`~service.mail.compose.recipient_address`)."""
        text = self._template.render(sender=self._sender, lists=list_names,
                                     confirm_url=self._links.confirm_url(subscriber_id), days=self._days)
        return compose_simple(
            from_addr=self._from_addr,
            to_email=email,
            subject=SUBJECT,
            text=text,
            headers={"Auto-Submitted": "auto-generated"},
            message_id_domain=self._domain,
        )
