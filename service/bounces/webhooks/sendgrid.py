"""SendGrid's Signed Event Webhook: bounces, blocks, drops and spam reports.

SendGrid signs ``timestamp + raw body`` with ECDSA P-256 / SHA-256 and sends
the base64 DER signature and the timestamp in
``X-Twilio-Email-Event-Webhook-Signature`` and ``…-Timestamp``; we verify with
``LETTERBOX_SENDGRID_WEBHOOK_PUBLIC_KEY``.  The body is a JSON array of events.
The timestamp is not checked for age: SendGrid documents no window for its
retries; a replayed event changes nothing, as each ``sg_event_id`` is acted on once.
``deferred`` events are delays (SendGrid keeps trying), never bounces.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from ...errors import BadRequest
from ...settings import SettingsError, WebhookSecrets
from ..finding import Finding
from .common import WebhookRefused, address, decode_json, diagnostic, event_id, label, status_field

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
# "dropped" events whose reason says the address itself is bad (others, like "unsubscribed address",
# are not about a failure); "spam reporting address" is a complaint.
_DROPPED_BAD = frozenset({"bounced address", "invalid"})
_DROPPED_COMPLAINT = "spam reporting address"


def read(body: bytes, headers: Mapping[str, str], secrets: WebhookSecrets, now: float) -> list[Finding]:
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


def _event(item: dict[str, Any]) -> Finding | None:
    email = address(item.get("email"))
    name = item.get("event")
    if email is None:
        return None
    reason = item.get("reason") or item.get("response")
    the_id = event_id("sendgrid", item.get("sg_event_id"))
    dropped = str(reason).strip().lower() if name == "dropped" else ""
    if name == "spamreport" or dropped == _DROPPED_COMPLAINT:
        return Finding(email, diagnostic="spam report", complaint=True, feedback_type="abuse", event_id=the_id)
    if name == "bounce":
        hint = label("sendgrid", item.get("type") if item.get("type") == "blocked" else "bounce")
    elif name == "deferred" or dropped in _DROPPED_BAD:
        hint = label("sendgrid", name)
    else:
        return None
    return Finding(
        email, status=status_field(item.get("status")), diagnostic=diagnostic(reason, str(name)),
        action="delayed" if name == "deferred" else None, hint=hint, event_id=the_id,
    )  # fmt: skip


def check(secrets: WebhookSecrets) -> None:
    """At start: the verification key, when set, must be an ECDSA P-256 public key."""
    if secrets.sendgrid_webhook_public_key is not None:
        try:
            sendgrid_public_key(secrets.sendgrid_webhook_public_key)
        except ValueError as exc:
            raise SettingsError("LETTERBOX_SENDGRID_WEBHOOK_PUBLIC_KEY", str(exc)) from exc


@lru_cache(maxsize=4)
def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's P-256 verification key from base64 DER or PEM; :class:`ValueError` otherwise."""
    try:
        if "-----BEGIN" in text:
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ValueError("expected a base64 DER or PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("expected an ECDSA P-256 public key")
    return key
