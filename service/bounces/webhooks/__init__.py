"""Provider webhooks: Amazon SES (via SNS), Postmark, SendGrid and Mailgun.

Each module has one ``read(body, headers, secrets, now)`` that verifies the
request its provider's way (raising :class:`WebhookRefused`, a 401, when it
cannot) and returns what it carries as :class:`~service.bounces.finding.Finding`
tuples, the same shape the mail readers give, with no hard/soft decision:
``classify.py`` makes it, so every way in ends in the same classifier and ingest.
A module may also have ``check(secrets)``, run at start, that refuses a secret
which cannot work (:class:`~service.settings.SettingsError` naming the variable).

A new provider is three edits: its module here, its line in :data:`PROVIDERS`,
and its secrets in :class:`~service.settings.WebhookSecrets`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from ...settings import WebhookSecrets
from ..finding import Finding
from . import mailgun, postmark, sendgrid, sns
from .common import WebhookRefused

Reader = Callable[[bytes, Mapping[str, str], WebhookSecrets, float], list[Finding]]


def _nothing_to_check(_: WebhookSecrets) -> None:
    return None


class Provider(msgspec.Struct, frozen=True):
    """How one provider's webhook is read, and how its secrets are checked at start."""

    read: Reader
    check: Callable[[WebhookSecrets], None] = _nothing_to_check


PROVIDERS: dict[str, Provider] = {
    "ses": Provider(sns.read, sns.check),
    "postmark": Provider(postmark.read, postmark.check),
    "sendgrid": Provider(sendgrid.read, sendgrid.check),
    "mailgun": Provider(mailgun.read),
}


def check_webhook_secrets(secrets: WebhookSecrets) -> None:
    """Refuse, at start, a provider secret that could never verify a request."""
    for provider in PROVIDERS.values():
        provider.check(secrets)


__all__ = ["PROVIDERS", "Provider", "Reader", "WebhookRefused", "check_webhook_secrets"]
