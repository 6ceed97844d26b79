"""Amazon SES notifications received by mail (an SNS e-mail subscription): a JSON body."""

from __future__ import annotations

import json
import re
from email.message import Message
from typing import Any

from service.bounces.classify import find_reply_code, find_status, infer_status
from service.bounces.formats.common import (
    Finding,
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
_BOUNCE_CLASS = {"permanent": 5, "transient": 4}


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
            return _findings(data)
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


def _findings(data: dict[str, Any]) -> list[Finding] | None:
    event = str(data.get("notificationType") or data.get("eventType") or "")
    if event == "Bounce":
        return _bounces(_dict(data.get("bounce")))
    if event == "Complaint":
        complaint = _dict(data.get("complaint"))
        kind = str(complaint.get("complaintFeedbackType") or "abuse").lower()
        return [
            Finding(email=addr, diagnostic=f"SES complaint: {kind}", complaint=True, feedback_type=kind)
            for addr in _addresses(complaint.get("complainedRecipients"))
        ]
    if event:
        return []  # Delivery, Send, Open, ...: SES events that are not failures.
    return None


def _bounces(bounce: dict[str, Any]) -> list[Finding]:
    notice_class = _BOUNCE_CLASS.get(str(bounce.get("bounceType", "")).lower())
    findings = []
    for entry in _list(bounce.get("bouncedRecipients")):
        recipient = _dict(entry)
        addr = address_in(str(recipient.get("emailAddress") or ""))
        if addr is None:
            continue
        diagnostic = without_diagnostic_type(str(recipient.get("diagnosticCode") or ""))
        reply_code = find_reply_code(diagnostic)
        status = (
            find_status(str(recipient.get("status") or ""))
            or find_status(diagnostic)
            or infer_status(diagnostic, reply_code, notice_class)
        )
        findings.append(Finding(email=addr, status=status, diagnostic=trim(diagnostic), reply_code=reply_code))
    return findings


def _addresses(entries: object) -> list[str]:
    found = []
    for entry in _list(entries):
        addr = address_in(str(_dict(entry).get("emailAddress") or ""))
        if addr:
            found.append(addr)
    return found


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
