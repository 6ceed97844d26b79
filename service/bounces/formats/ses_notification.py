"""Amazon SES notifications: the one reader of their JSON, by mail (an SNS e-mail
subscription) and by webhook (``webhooks/sns.py`` passes the verified notification here)."""

from __future__ import annotations

import json
import re
from email.message import Message
from typing import Any

from service.bounces.classify import find_reply_code, find_status
from service.bounces.finding import Finding
from service.bounces.formats.common import (
    address_in,
    content_type,
    iter_parts,
    part_text,
    trim,
    without_diagnostic_type,
)

# Mail relays split SNS's very long JSON line at ~1000 characters and mark the split
# with "!" + newline + space; joining it back restores the JSON.
_SPLIT_LINE = re.compile(r"!\r?\n ")


def read(msg: Message) -> list[Finding] | None:
    """Findings from an SES Bounce/Complaint notification; [] for other SES events; None otherwise."""
    for part in iter_parts(msg):
        if content_type(part) not in ("text/plain", "application/json"):
            continue
        text = part_text(part)
        # Also when SNS wraps it: then the notification is a JSON string with escaped quotes.
        if "notificationType" not in text and "eventType" not in text:
            continue
        data = _load(text)
        if data is not None:
            return findings(data)
    return None


def _load(text: str) -> dict[str, Any] | None:
    text = _SPLIT_LINE.sub("", text)
    start = text.find("{")
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(text, start)
        if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
            data = json.loads(data["Message"])
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def findings(data: dict[str, Any]) -> list[Finding] | None:
    """Findings from an SES notification (``notificationType``) or event record (``eventType``):
    [] for events that are not failures (Delivery, Send, Open...), None when it is neither."""
    event = str(data.get("notificationType") or data.get("eventType") or "")
    mail_id = str(_dict(data.get("mail")).get("messageId") or "")
    if event == "Bounce":
        return _bounces(_dict(data.get("bounce")), mail_id)
    if event == "Complaint":
        complaint = _dict(data.get("complaint"))
        kind = str(complaint.get("complaintFeedbackType") or "abuse").lower()
        event_id = _event_id(complaint, mail_id, "complaint")
        return [
            Finding(
                email=addr, diagnostic=f"SES complaint: {kind}", complaint=True, feedback_type=kind, event_id=event_id
            )
            for addr in _addresses(complaint.get("complainedRecipients"))
        ]
    if event == "DeliveryDelay":
        delay = _dict(data.get("deliveryDelay"))
        event_id = _event_id(delay, mail_id, "delay")
        return [
            Finding(
                email=addr, diagnostic=trim(str(delay.get("delayType") or "delayed")), action="delayed",
                hint="ses:deliverydelay", event_id=event_id,
            )
            for addr in _addresses(delay.get("delayedRecipients"))
        ]
    if event:
        return []
    return None


def _bounces(bounce: dict[str, Any], mail_id: str) -> list[Finding]:
    label = str(bounce.get("bounceType") or "").lower()
    summary = "/".join(str(bounce[k]) for k in ("bounceType", "bounceSubType") if bounce.get(k))
    event_id = _event_id(bounce, mail_id, "bounce")
    found = []
    for entry in _list(bounce.get("bouncedRecipients")):
        recipient = _dict(entry)
        addr = address_in(str(recipient.get("emailAddress") or ""))
        if addr is None:
            continue
        diagnostic = without_diagnostic_type(str(recipient.get("diagnosticCode") or ""))
        found.append(
            Finding(
                email=addr, status=find_status(str(recipient.get("status") or "")),
                diagnostic=trim(diagnostic) or trim(summary), reply_code=find_reply_code(diagnostic),
                hint=f"ses:{label}" if label else None, text=summary, event_id=event_id,
            )
        )
    return found


def _event_id(record: dict[str, Any], mail_id: str, what: str) -> str | None:
    """SES's feedbackId, else the message id with the kind of event (one of each per message)."""
    feedback = record.get("feedbackId")
    if isinstance(feedback, str) and feedback:
        return f"ses:{feedback}"[:300]
    return f"ses:{mail_id}:{what}"[:300] if mail_id else None


def _addresses(entries: object) -> list[str]:
    found = []
    for entry in _list(entries):
        addr = address_in(str(_dict(entry).get("emailAddress") or "") if isinstance(entry, dict) else str(entry))
        if addr:
            found.append(addr)
    return found


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
