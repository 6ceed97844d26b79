"""Postmark bounce and spam-complaint webhooks.

Postmark cannot sign its webhooks; it sends the HTTP Basic credentials put in
the webhook URL (``https://user:password@host/v1/webhooks/postmark``), which
we compare in constant time with ``LETTERBOX_POSTMARK_WEBHOOK_USER`` and
``_PASSWORD``.  One record per request: ``RecordType`` ``Bounce`` (its
``Type`` says how) or ``SpamComplaint``.  Types that are not about the
reader's address (auto-responders, DMARC, template errors…) are ignored.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from ..parse import BounceKind, ParsedEvent
from ..webhook_config import WebhookSecrets
from .common import WebhookRefused, address, decode_json, diagnostic, dsn_status

_CHALLENGE = 'Basic realm="letterbox-webhooks"'
_KINDS: dict[str, BounceKind] = {
    "HardBounce": "hard",
    "BadEmailAddress": "hard",
    "SoftBounce": "soft",
    "Transient": "soft",
    "DnsError": "soft",
    "Blocked": "soft",
    "SpamComplaint": "complaint",
}


def read(body: bytes, headers: Mapping[str, str], secrets: WebhookSecrets, now: float) -> list[ParsedEvent]:
    """Check Postmark's Basic credentials and return the record's event, if it is a bounce or complaint."""
    user, password = secrets.postmark_webhook_user, secrets.postmark_webhook_password
    if user is None or password is None:
        raise WebhookRefused("Postmark webhooks are not configured here (LETTERBOX_POSTMARK_WEBHOOK_USER is not set).")
    if not _credentials_match(headers.get("authorization", ""), user, password):
        raise WebhookRefused("The Postmark webhook credentials are missing or wrong.", challenge=_CHALLENGE)
    record = decode_json(body, what="Postmark record")
    if not isinstance(record, dict):
        return []
    kind = _KINDS.get("SpamComplaint" if record.get("RecordType") == "SpamComplaint" else str(record.get("Type")))
    if record.get("RecordType") not in ("Bounce", "SpamComplaint") or kind is None:
        return []
    email = address(record.get("Email"))
    if email is None:
        return []
    details, description = record.get("Details"), record.get("Description")
    status = None if kind == "complaint" else dsn_status(details, description)
    return [ParsedEvent(email, kind, status, diagnostic(details, description, record.get("Type")))]


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
