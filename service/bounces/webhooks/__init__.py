"""Provider webhooks: Amazon SES (via SNS), Postmark, SendGrid and Mailgun.

Each module has one ``read(body, headers, secrets, now)`` that verifies the
request its provider's way (raising :class:`WebhookRefused`, a 401, when it
cannot) and returns what it carries as :class:`~service.bounces.finding.Finding`
tuples, the same shape the mail readers give, with no hard/soft decision:
``classify.py`` makes it, so every way in ends in the same classifier and ingest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..finding import Finding
from ..webhook_config import WebhookSecrets
from . import mailgun, postmark, sendgrid, ses
from .common import WebhookRefused

Reader = Callable[[bytes, Mapping[str, str], WebhookSecrets, float], list[Finding]]

PROVIDERS: dict[str, Reader] = {
    "ses": ses.read,
    "postmark": postmark.read,
    "sendgrid": sendgrid.read,
    "mailgun": mailgun.read,
}

__all__ = ["PROVIDERS", "Reader", "WebhookRefused"]
