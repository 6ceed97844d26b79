"""Mailgun event webhooks: permanent and temporary failures, and complaints.

Each JSON body carries ``signature: {timestamp, token, signature}``, where
``signature`` is the hex HMAC-SHA256 of ``timestamp + token`` under
``LETTERBOX_MAILGUN_WEBHOOK_SIGNING_KEY``.  A timestamp more than five
minutes from our clock is refused, so a captured request cannot be replayed
later.  ``event-data`` holds one event: ``failed`` (``severity`` permanent or
temporary) or ``complained``; others are ignored.  A temporary failure is one
Mailgun will retry: a delay, never a bounce.  Its ``id`` de-duplicates replays.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from ...errors import BadRequest
from ...settings import WebhookSecrets
from ..finding import Finding
from .common import WebhookRefused, address, decode_json, diagnostic, event_id, label, status_field

MAX_AGE_SECONDS = 300


def read(body: bytes, headers: Mapping[str, str], secrets: WebhookSecrets, now: float) -> list[Finding]:
    """Verify the signature and freshness, then return the event if it is a failure or complaint."""
    key = secrets.mailgun_webhook_signing_key
    if key is None:
        raise WebhookRefused(
            "Mailgun webhooks are not configured here (LETTERBOX_MAILGUN_WEBHOOK_SIGNING_KEY is not set)."
        )
    try:
        payload = decode_json(body, what="Mailgun event")
    except BadRequest as exc:
        raise WebhookRefused("The body is not a signed Mailgun event.") from exc
    if not isinstance(payload, dict):
        raise WebhookRefused("The body is not a signed Mailgun event.")
    _verify(payload.get("signature"), key, now)
    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise BadRequest("The Mailgun event has no 'event-data' object.")
    return _events(data)


def _verify(signature: object, key: str, now: float) -> None:
    if not isinstance(signature, dict):
        raise WebhookRefused("The Mailgun event has no signature.")
    timestamp, token, given = (signature.get(k) for k in ("timestamp", "token", "signature"))
    if not (isinstance(timestamp, str | int) and isinstance(token, str) and isinstance(given, str)):
        raise WebhookRefused("The Mailgun signature is incomplete.")
    expected = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.strip().lower()):
        raise WebhookRefused("The Mailgun signature does not verify.")
    try:
        age = abs(now - int(timestamp))
    except ValueError as exc:
        raise WebhookRefused("The Mailgun signature's timestamp is not a number.") from exc
    if age > MAX_AGE_SECONDS:
        raise WebhookRefused("The Mailgun signature is too old (or from the future) to be accepted.")


def _events(data: dict[str, Any]) -> list[Finding]:
    email = address(data.get("recipient"))
    if email is None:
        return []
    event = data.get("event")
    the_id = event_id("mailgun", data.get("id"))
    if event == "complained":
        return [Finding(email, diagnostic="complaint", complaint=True, feedback_type="abuse", event_id=the_id)]
    if event != "failed":
        return []
    severity = data.get("severity")
    status_block = data.get("delivery-status")
    delivery: dict[str, Any] = status_block if isinstance(status_block, dict) else {}
    message, description = delivery.get("message"), delivery.get("description")
    return [
        Finding(
            email, status=status_field(delivery.get("enhanced-code")),
            diagnostic=diagnostic(message, description, data.get("reason")),
            reply_code=_reply_code(delivery.get("code")),
            action="delayed" if severity == "temporary" else "failed" if severity == "permanent" else None,
            hint=label("mailgun", severity), text=diagnostic(description, data.get("reason")), event_id=the_id,
        )
    ]


def _reply_code(code: object) -> int | None:
    return code if isinstance(code, int) and 400 <= code <= 599 else None
