"""Complaints: RFC 5965 abuse reports (ARF) and the few other shapes a complaint takes by mail.

Every recipient a complaint names is reported; when the report redacts the recipient
(some feedback loops do), one finding with an empty address is returned so that the
caller can still act on the VERP token.
"""

from __future__ import annotations

import re
from email.message import Message

from service.bounces.finding import Finding
from service.bounces.formats.common import (
    address_in,
    content_type,
    embedded_message,
    find_addresses,
    first,
    header,
    header_values,
    iter_parts,
    parse_fields,
    part_param,
    part_text,
    structured_text,
    trim,
)

_FEEDBACK_FIELD = re.compile(r"^feedback-type\s*:", re.IGNORECASE | re.MULTILINE)
_ARF_MARKER = re.compile(r"^(?:user-agent|version|original-mail-from|arrival-date)\s*:", re.IGNORECASE | re.MULTILINE)
_RECIPIENT_FIELDS = ("original-rcpt-to", "removal-recipient")


def read(msg: Message) -> list[Finding] | None:
    """Complaint findings for an abuse report; None when ``msg`` is not one."""
    report = _report_text(msg)
    if report is None:
        return _apple_unsubscribe(msg) or _microsoft_jmrp(msg)
    fields: dict[str, list[str]] = {}
    for block in parse_fields(report):
        for key, values in block.items():
            fields.setdefault(key, []).extend(values)
    # RFC 5965 makes Feedback-Type mandatory; the early drafts some loops still follow did not,
    # and a report without one is an abuse report.
    kind = (first(fields, "feedback-type").lower().split() or ["abuse"])[0]
    diagnostic = trim(_human_text(msg)) or f"Feedback-Type: {kind}"
    return [
        Finding(email=addr, diagnostic=diagnostic, complaint=True, feedback_type=kind)
        for addr in _recipients(msg, fields)
    ]


def _report_text(msg: Message) -> str | None:
    """The text of the machine-readable report part, however it was labelled."""
    is_arf = content_type(msg) == "multipart/report" and part_param(msg, "report-type") == "feedback-report"
    for part in iter_parts(msg):
        if content_type(part) == "message/feedback-report":
            return structured_text(part)
    for part in iter_parts(msg):
        if part is msg and msg.is_multipart():
            continue
        if content_type(part) in ("text/plain", "message/feedback-report", "application/octet-stream"):
            text = part_text(part)
            # A mislabelled report part: its fields still say what it is.
            if _FEEDBACK_FIELD.search(text) and (is_arf or _ARF_MARKER.search(text)):
                return text
    return "" if is_arf else None


def _recipients(msg: Message, fields: dict[str, list[str]]) -> list[str]:
    found: list[str] = []
    for name in _RECIPIENT_FIELDS:
        for value in fields.get(name, []):
            addr = address_in(value)
            if addr and addr not in found:
                found.append(addr)
    if found:
        return found
    original = embedded_message(msg)
    if original is not None:
        for name in ("to", "cc", "x-original-to", "delivered-to"):
            for value in header_values(original, name):
                for addr, _, _ in find_addresses(value):
                    if addr not in found:
                        found.append(addr)
            if found:
                return found
    return [""]


def _human_text(msg: Message) -> str:
    """The first paragraph of the human-readable part, which usually says who reported what."""
    for part in iter_parts(msg):
        if content_type(part) == "text/plain" and part is not msg:
            paragraph: list[str] = []
            for line in part_text(part).splitlines():
                if line.strip():
                    paragraph.append(line.strip())
                elif paragraph and len(" ".join(paragraph)) >= 40:
                    break
            return " ".join(paragraph)
    return ""


def _apple_unsubscribe(msg: Message) -> list[Finding] | None:
    """Apple Mail's "Unsubscribe" button sends a plain mail marked X-Apple-Unsubscribe from the
    subscriber's own address: an opt-out complaint in all but name."""
    if header(msg, "x-apple-unsubscribe").lower() != "true":
        return None
    addr = address_in(header(msg, "from"))
    if addr is None:
        return None
    return [Finding(email=addr, diagnostic=trim(header(msg, "subject")), complaint=True, feedback_type="opt-out")]


def _microsoft_jmrp(msg: Message) -> list[Finding] | None:
    """Microsoft's JMRP forwards the complained-about message with the recipient in
    X-HmXmrOriginalRecipient and no report part."""
    original = embedded_message(msg)
    if original is None:
        return None
    addr = address_in(header(original, "x-hmxmroriginalrecipient"))
    if addr is None:
        return None
    return [Finding(email=addr, diagnostic=trim(header(msg, "subject")), complaint=True, feedback_type="abuse")]
