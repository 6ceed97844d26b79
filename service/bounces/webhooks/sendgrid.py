"""SendGrid's Signed Event Webhook: bounces, blocks, drops and spam reports.

SendGrid signs ``timestamp + raw body`` with ECDSA P-256 / SHA-256 and sends
the base64 DER signature and the timestamp in
``X-Twilio-Email-Event-Webhook-Signature`` and ``…-Timestamp``; we verify with
``LETTERBOX_SENDGRID_WEBHOOK_PUBLIC_KEY``.  The body is a JSON array of events.
The timestamp is not checked for age: SendGrid documents no window for its
retries, and replaying a genuine bounce only repeats a fact we already hold.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import BadRequest
from ..parse import BounceKind, ParsedEvent
from ..webhook_config import WebhookSecrets, sendgrid_public_key
from .common import WebhookRefused, address, decode_json, diagnostic, dsn_status

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
# "dropped" events whose reason says the address itself is bad or has complained.
_DROPPED: dict[str, BounceKind] = {"bounced address": "hard", "invalid": "hard", "spam reporting address": "complaint"}


def read(body: bytes, headers: Mapping[str, str], secrets: WebhookSecrets, now: float) -> list[ParsedEvent]:
    """Verify the signature and return the bounce and complaint events of the batch."""
    if secrets.sendgrid_webhook_public_key is None:
        raise WebhookRefused(
            "SendGrid webhooks are not configured here (LETTERBOX_SENDGRID_WEBHOOK_PUBLIC_KEY is not set)."
        )
    _verify(body, headers, secrets.sendgrid_webhook_public_key)
    batch = decode_json(body, what="SendGrid event batch")
    if not isinstance(batch, list):
        raise BadRequest("The SendGrid event batch is not a JSON array.")
    return [event for item in batch if isinstance(item, dict) and (event := _event(item)) is not None]


def _verify(body: bytes, headers: Mapping[str, str], key_text: str) -> None:
    signature, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise WebhookRefused("The SendGrid signature headers are missing.")
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        sendgrid_public_key(key_text).verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise WebhookRefused("The SendGrid signature does not verify.") from exc


def _event(item: dict[str, Any]) -> ParsedEvent | None:
    email = address(item.get("email"))
    name = item.get("event")
    if email is None:
        return None
    reason = item.get("reason")
    if name == "spamreport":
        return ParsedEvent(email, "complaint", None, "spam report", feedback_type="abuse")
    kind: BounceKind | None
    if name == "bounce":
        kind = "soft" if item.get("type") == "blocked" else "hard"
    elif name == "dropped":
        kind = _DROPPED.get(str(reason).strip().lower())
    else:
        return None
    if kind is None:
        return None
    status = None if kind == "complaint" else dsn_status(item.get("status"), reason)
    return ParsedEvent(email, kind, status, diagnostic(reason, str(name)))
