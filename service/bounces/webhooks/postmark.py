"""Postmark bounce and spam-complaint webhooks.

Postmark cannot sign its webhooks; it sends the HTTP Basic credentials put in
the webhook URL (``https://user:password@host/v1/webhooks/postmark``), which
we compare in constant time with ``LETTERBOX_POSTMARK_WEBHOOK_USER`` and
``_PASSWORD``.  One record per request: ``RecordType`` ``Bounce`` (its
``Type`` says how) or ``SpamComplaint``.  Types that are not about the
reader's address (auto-responders, DMARC, template errors…) are ignored.
``Type`` is passed to the classifier as a hint; ``ID`` de-duplicates replays.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from ...settings import SettingsError, WebhookSecrets
from ..finding import Finding
from .common import WebhookRefused, address, decode_json, diagnostic, event_id, label

_CHALLENGE = 'Basic realm="letterbox-webhooks"'
# Bounce types about the reader's address (the classifier weighs each as a hint).
_BOUNCE_TYPES = frozenset({"HardBounce", "BadEmailAddress", "SoftBounce", "Transient", "DnsError", "Blocked"})


def read(body: bytes, headers: Mapping[str, str], secrets: WebhookSecrets, now: float) -> list[Finding]:
    """Check Postmark's Basic credentials and return the record's event, if it is a bounce or complaint."""
    user, password = secrets.postmark_webhook_user, secrets.postmark_webhook_password
    if user is None or password is None:
        raise WebhookRefused("Postmark webhooks are not configured here (LETTERBOX_POSTMARK_WEBHOOK_USER is not set).")
    if not _credentials_match(headers.get("authorization", ""), user, password):
        raise WebhookRefused("The Postmark webhook credentials are missing or wrong.", challenge=_CHALLENGE)
    record = decode_json(body, what="Postmark record")
    if not isinstance(record, dict):
        return []
    email = address(record.get("Email"))
    kind, details, description = record.get("Type"), record.get("Details"), record.get("Description")
    the_id = event_id("postmark", record.get("ID"))
    if email is None:
        return []
    if record.get("RecordType") == "SpamComplaint":
        why = diagnostic(details, description, kind)
        return [Finding(email, diagnostic=why, complaint=True, feedback_type="abuse", event_id=the_id)]
    if record.get("RecordType") != "Bounce" or kind not in _BOUNCE_TYPES:
        return []
    why = diagnostic(details, description, kind)
    return [Finding(email, diagnostic=why, hint=label("postmark", kind), text=diagnostic(description), event_id=the_id)]


def _credentials_match(header: str, user: str, password: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{user}:{password}".encode()
    return hmac.compare_digest(given, expected)


def check(secrets: WebhookSecrets) -> None:
    """At start: user and password come together, and the user is a valid HTTP Basic name."""
    if (secrets.postmark_webhook_user is None) != (secrets.postmark_webhook_password is None):
        raise SettingsError(
            "LETTERBOX_POSTMARK_WEBHOOK_PASSWORD",
            "set LETTERBOX_POSTMARK_WEBHOOK_USER and LETTERBOX_POSTMARK_WEBHOOK_PASSWORD together",
        )
    if secrets.postmark_webhook_user is not None and ":" in secrets.postmark_webhook_user:
        raise SettingsError("LETTERBOX_POSTMARK_WEBHOOK_USER", "HTTP Basic user names cannot contain ':'")
