"""Refuse, at start, configuration that would make every copy fail.

A sample copy and a sample system mail are composed (and DKIM-signed when a key
is set) with the configured From, bounce domain and public URL, by the same
composer the worker uses. Whatever it refuses stops the start with one line
naming the variable, before any edition is accepted, instead of failing copy by
copy after a 202.
"""

from __future__ import annotations

import structlog

from ..links import Links
from ..mail.addresses import sender_domain
from ..mail.compose import EditionMail, Personalisation, compose_simple, prepare
from ..settings import Settings, SettingsError
from ..tokens import TokenSigner
from .dkim import signable_domain
from .dkim_keys import DkimKeys

log = structlog.get_logger(__name__)

_SAMPLE_TOKEN = "preflight"  # noqa: S105 - a placeholder path segment, not a secret


def check_mail_settings(settings: Settings) -> None:
    """Raise :class:`SettingsError` naming the variable that would make copies fail; warn about a trial set-up."""
    try:
        domain = sender_domain(settings.from_addr, settings.effective_bounce_domain)
        mail = prepare(
            EditionMail(subject="Preflight", html="<p>Preflight</p>", text=None, from_addr=settings.from_addr,
                        reply_to=None, list_id=f"letterbox.{settings.effective_bounce_domain}", list_name=""),
            message_id_domain=domain,
            one_click=settings.one_click,
        )
        compose_simple(from_addr=settings.from_addr, to_email="reader@example.org", subject="Preflight",
                       text="Preflight", message_id_domain=domain)
    except ValueError as exc:
        variable = "LETTERBOX_BOUNCE_DOMAIN" if "list_id" in str(exc) else "LETTERBOX_FROM"
        raise SettingsError(variable, f"mail cannot be composed with it: {exc}") from None

    links = Links(settings, TokenSigner(("preflight-signing-key",)))
    try:
        message = mail.render(Personalisation(
            to_email="reader@example.org", to_name="Reader", unsubscribe_url=links.unsubscribe_url(_SAMPLE_TOKEN),
            unsubscribe_mailto=links.unsubscribe_mailto(_SAMPLE_TOKEN), preferences_url=links.preferences_url(1),
            message_id="",
        ))
    except ValueError as exc:
        variable = "LETTERBOX_BOUNCE_DOMAIN" if "mailto" in str(exc) else "LETTERBOX_PUBLIC_URL"
        raise SettingsError(variable, f"links in mail cannot be made from it: {exc}") from None

    try:
        keys = DkimKeys.from_settings(settings)
    except ValueError as exc:
        raise SettingsError("LETTERBOX_DKIM_KEY_FILE", str(exc).removeprefix("LETTERBOX_DKIM_KEY_FILE: ")) from None
    if keys is not None:
        if not signable_domain(domain):
            raise SettingsError("LETTERBOX_FROM", f"mail is DKIM-signed for the From domain, and {domain!r} "
                                "is not a DNS domain name")
        keys.sign(message, domain)

    if not settings.one_click:
        log.warning(
            "trial_links",
            public_url=settings.public_url,
            detail="LETTERBOX_PUBLIC_URL is not https: copies carry http and mailto unsubscribe links without "
                   "RFC 8058 one-click, which Gmail and Yahoo require of bulk senders. Set an https "
                   "LETTERBOX_PUBLIC_URL (and LETTERBOX_FROM, LETTERBOX_SMTP_URL) in production.",
        )
