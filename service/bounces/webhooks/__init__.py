"""Provider webhooks: Amazon SES (via SNS), Postmark, SendGrid and Mailgun.

Each module has one ``read(body, headers, secrets, now)`` that verifies the
request its provider's way (raising :class:`WebhookRefused`, a 401, when it
cannot) and returns the bounce and complaint events it carries as
:class:`~service.bounces.parse.ParsedEvent`, the same shape the mail parser
gives, so every way in ends in the same ingest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..parse import ParsedEvent
from ..webhook_config import WebhookSecrets
from . import mailgun, postmark, sendgrid, ses
from .common import WebhookRefused

Reader = Callable[[bytes, Mapping[str, str], WebhookSecrets, float], list[ParsedEvent]]

PROVIDERS: dict[str, Reader] = {
    "ses": ses.read,
    "postmark": postmark.read,
    "sendgrid": sendgrid.read,
    "mailgun": mailgun.read,
}

__all__ = ["PROVIDERS", "Reader", "WebhookRefused"]
