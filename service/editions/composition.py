"""Composing what a renderer posts (an edition, or a proof of one) exactly as the worker will.

One set of checks for both: whatever the composer would refuse when the worker
composes the copies is the poster's error, answered now as a 422, never a copy
that fails after a 202.
"""

from __future__ import annotations

from typing import Protocol

from ..delivery.dkim import signable_domain
from ..errors import Unprocessable
from ..mail.addresses import UnsendableAddress, sender_domain
from ..mail.compose import EditionMail, HeaderInjectionError, PreparedMail, prepare
from ..settings import Settings


class Posted(Protocol):
    """The fields of a posted body that every copy shares."""

    @property
    def subject(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str | None: ...
    @property
    def reply_to(self) -> str | None: ...


def one_line(field: str, value: str) -> str:
    """``value`` without surrounding space; 422 when it holds a line break (header injection)."""
    if any(c in value for c in "\r\n\x00"):
        raise Unprocessable(f"'{field}' must be one line: it contains a line break.")
    return value.strip()


def compose_posted(body: Posted, from_addr: str, settings: Settings) -> tuple[PreparedMail, str]:
    """The copies' MIME template and the From's ASCII domain, as the worker will make them; 422 otherwise."""
    one_line("subject", body.subject)
    if body.reply_to is not None:
        one_line("reply_to", body.reply_to)
    try:
        domain = sender_domain(from_addr, settings.effective_bounce_domain)
    except UnsendableAddress as exc:
        raise Unprocessable(f"'from' cannot be used for mail: {exc}.") from None
    if settings.dkim_selector and not signable_domain(domain):
        raise Unprocessable(f"Mail is DKIM-signed for the From domain, and '{domain}' is not a DNS domain name.")
    try:
        mail = prepare(
            EditionMail(
                subject=body.subject,
                html=body.html,
                text=body.text,
                from_addr=from_addr,
                reply_to=body.reply_to,
                # The worker's List-Id for a copy without a list (service/delivery/worker.py).
                list_id=f"letterbox.{settings.effective_bounce_domain}",
                list_name="",
            ),
            message_id_domain=domain,
            one_click=settings.one_click,
        )
    except HeaderInjectionError as exc:
        raise Unprocessable(f"The edition cannot be sent as posted: {exc}.") from None
    return mail, domain
