"""Endpoint secrets and signed messages, per the Standard Webhooks specification (its own library signs)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

import msgspec
from standardwebhooks import Webhook

SECRET_BYTES = 32  # the specification asks for 24 to 64


def new_secret() -> str:
    """A new endpoint secret: ``whsec_`` and the base64 of random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_message(secret: str, webhook_id: str, event_type: str, occurred_at: datetime, data: Any,
                   now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body ``{"type", "timestamp", "data"}`` and the headers that sign it at ``now``.

    ``webhook-id`` is the same on every try of one event; ``webhook-timestamp`` is the time of
    this try (receivers refuse stale ones); the body's ``timestamp`` is when the event happened.
    """
    body = msgspec.json.encode({"type": event_type, "timestamp": occurred_at, "data": data})
    signature = Webhook(secret).sign(webhook_id, now, body.decode())
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return body, headers
