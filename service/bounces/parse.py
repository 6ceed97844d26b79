"""Bounce and complaint mail in, events out: the one entry point of the parser.

``parse_report(raw)`` reads a mail posted to our bounce address (or to the raw
bounce API) and says which recipients failed and why; ``events`` turns the
findings of any way in (mail, webhook, API, send time) into classified events.
Readers are tried from the most to the least structured:

1. complaints: RFC 5965 ARF and its look-alikes (``formats/arf.py``);
2. Amazon SES notifications by mail (``formats/ses_notification.py``);
3. RFC 3464 delivery status notifications (``formats/dsn.py``);
4. RFC 3834 auto-replies, which are not bounces (``formats/autoreply.py``);
5. prose bounces from everything else (``formats/prose.py``).

Classification lives in ``classify.py`` alone. Nothing here touches the database or
the network, and nothing raises: any bytes give a report, possibly empty.

Addresses: for an RFC 3464 recipient we report Original-Recipient when present (the
address we sent to) before Final-Recipient, and for a prose "<a> (expanded from <b>)"
we report b, because the subscriber is known by the address we mailed.  Addresses are
cleaned and validated (``formats.common.clean_address``); our own (the From address,
anything at the bounce domain) are never reported as recipients.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from email.message import Message
from typing import TypeVar

import msgspec

from service.bounces.classify import Kind, classify, find_status
from service.bounces.finding import Finding
from service.bounces.formats import arf, autoreply, dsn, notice, prose, ses_notification
from service.bounces.formats.common import embedded_message, header_values, trim

__all__ = ["Kind", "Ours", "ParsedEvent", "ParsedReport", "events", "parse_report"]

# Mail bigger than this is cut before parsing: a notice is small, and the copy of the
# original message it carries is not worth unbounded parse time.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MAX_TOKENS = 20


class ParsedEvent(msgspec.Struct, frozen=True):
    """One failed (or complained-about, or delayed) recipient, classified."""

    email: str  # lower-cased bare addr-spec; '' only for a complaint whose report redacts it
    kind: Kind
    status: str | None  # DSN status such as "5.1.1"; None for complaints and unknown failures
    diagnostic: str | None  # the remote server's words or the notice's, <= 1000 characters
    reply_code: int | None = None  # SMTP reply code such as 550, when the notice shows one
    feedback_type: str | None = None  # ARF Feedback-Type for complaints
    event_id: str | None = None  # the provider's event id, for de-duplication
    rule: str | None = None  # the classifier's rule that decided the kind


class Ours(msgspec.Struct, frozen=True):
    """Addresses that are ours and so never a failed recipient: the From address, the bounce domain."""

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    def __contains__(self, addr: object) -> bool:
        if not isinstance(addr, str):
            return False
        address = addr.lower()
        return address in self.addresses or address.rpartition("@")[2] in self.domains


class ParsedReport(msgspec.Struct, frozen=True):
    """Everything ``parse_report`` learnt from one mail."""

    events: list[ParsedEvent]
    # bounce+TOKEN local parts from the envelope headers (and, for complaints, the returned
    # message's Return-Path); unverified: the caller checks their signatures.
    verp_tokens: list[str]
    auto_reply: bool  # an RFC 3834 auto-reply / out-of-office (then events is empty)


# Headers where the receiving MTA records the address the bounce was sent to.
_ENVELOPE_HEADERS = (
    "to", "cc", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "original-recipient",
    "x-original-recipient", "original-to", "x-rcpt-to", "x-delivered-to", "x-envelope-recipient",
)  # fmt: skip
_VERP_RE = re.compile(r"(?<![A-Za-z0-9._%+=-])bounce\+([A-Za-z0-9._-]{1,200})@", re.IGNORECASE)
_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;]+@[^\s<>;]+)>?", re.IGNORECASE)

T = TypeVar("T")


def parse_report(raw: bytes, ours: Ours | None = None) -> ParsedReport:
    """Parse a bounce, DSN, complaint or auto-reply mail. Never raises."""
    try:
        data = raw if isinstance(raw, bytes) else bytes(raw)
        msg = email.message_from_bytes(data[:MAX_MESSAGE_BYTES], policy=email.policy.compat32)
    except Exception:
        return ParsedReport(events=[], verp_tokens=[], auto_reply=False)
    no_tokens: list[str] = []
    tokens = _guarded(lambda: verp_tokens(msg), no_tokens)
    try:
        return _report(msg, tokens, ours or Ours())
    except Exception:
        return ParsedReport(events=[], verp_tokens=tokens, auto_reply=False)


def verp_tokens(msg: Message) -> list[str]:
    """TOKENs of ``bounce+TOKEN@...`` addresses the outer message was delivered to, in header
    order: To, Delivered-To, X-Original-To, Envelope-To and the like, then the "for <...>"
    of Received lines (the one place some relays keep the envelope recipient)."""
    values = [value for name in _ENVELOPE_HEADERS for value in header_values(msg, name)]
    values += [m.group(1) for value in header_values(msg, "received") for m in _RECEIVED_FOR.finditer(value)]
    return _tokens(values)


def _report(msg: Message, tokens: list[str], ours: Ours) -> ParsedReport:
    complaints = _guarded(lambda: arf.read(msg), None)
    if complaints is not None:
        complaint_tokens = _complaint_tokens(msg, tokens)
        return ParsedReport(events=events(complaints, ours), verp_tokens=complaint_tokens, auto_reply=False)
    findings = _guarded(lambda: ses_notification.read(msg), None)
    if findings is None:
        findings = _guarded(lambda: dsn.read(msg), None)
        if findings:
            findings = [_with_prose_guarded(msg, finding) for finding in findings]
    if findings is None:
        # A delivery notice may carry Auto-Submitted too (RFC 3464 asks for it): look at the sender first.
        if _guarded(lambda: autoreply.is_auto_reply(msg) and not notice.is_bounce_sender(msg), False):
            return ParsedReport(events=[], verp_tokens=tokens, auto_reply=True)
        findings = _guarded(lambda: prose.read(msg), None)
    subject = _guarded(lambda: str(msg.get("subject", "")), "")
    return ParsedReport(events=events(findings or [], ours, subject=subject), verp_tokens=tokens, auto_reply=False)


def _with_prose_guarded(msg: Message, finding: Finding) -> Finding:
    """``_with_prose``, or the finding unchanged if the prose cannot be read."""
    return _guarded(lambda: _with_prose(msg, finding), finding)


def _with_prose(msg: Message, finding: Finding) -> Finding:
    """Fill in a DSN finding that has no Diagnostic-Code from what the notice's text says
    about the same recipient (OpenSMTPD and old Sendmail put the remote reply only there)."""
    if finding.diagnostic:
        return finding
    told = prose.explain(msg, finding.email)
    if told is None or not told.diagnostic:
        return finding
    status = finding.status
    said = find_status(told.diagnostic)
    # A generic "5.0.0" is refined by what the remote server said, if it agrees on the class.
    if said and (status is None or (status.endswith(".0.0") and said[0] == status[0])):
        status = said
    return finding._replace(status=status, diagnostic=told.diagnostic, reply_code=told.reply_code, text=told.text)


def _complaint_tokens(msg: Message, tokens: list[str]) -> list[str]:
    """Feedback loops mail the FBL address, not our VERP one; the copy's Return-Path still has it."""
    original = _guarded(lambda: embedded_message(msg), None)
    if original is None:
        return tokens
    no_tokens: list[str] = []
    extra = _guarded(
        lambda: _tokens(header_values(original, "return-path") + header_values(original, "sender")), no_tokens
    )
    return (tokens + [t for t in extra if t not in tokens])[:MAX_TOKENS]


def _tokens(values: list[str]) -> list[str]:
    found: list[str] = []
    for value in values:
        for match in _VERP_RE.finditer(value):
            token = match.group(1)
            if token not in found:
                found.append(token)
    return found[:MAX_TOKENS]


def events(findings: list[Finding], ours: Ours | None = None, *, subject: str = "") -> list[ParsedEvent]:
    """Classify each finding (``classify.py``); one event per address, ours and non-failures left out.

    ``subject``: the notice's Subject, read only when nothing in the body decides: notices often
    name the reason there alone ("Mail loop detected", "Mailbox quota exceeded").
    """
    ours = ours or Ours()
    found: list[ParsedEvent] = []
    seen: set[str] = set()
    for finding in findings:
        addr = finding.email.strip().lower()
        if addr in seen or (not finding.complaint and "@" not in addr) or addr in ours:
            continue
        verdict = classify(finding)
        if verdict is not None and verdict.kind == "unknown" and subject:
            verdict = classify(finding._replace(text="\n".join(t for t in (finding.text, subject) if t)))
        if verdict is None:
            continue  # delivered or relayed, not a failure
        seen.add(addr)
        reply_code = finding.reply_code if finding.reply_code and 400 <= finding.reply_code <= 599 else None
        found.append(
            ParsedEvent(
                email=addr,
                kind=verdict.kind,
                status=verdict.status,
                diagnostic=trim(finding.diagnostic),
                reply_code=reply_code,
                feedback_type=finding.feedback_type if finding.complaint else None,
                event_id=finding.event_id,
                rule=verdict.rule,
            )
        )
    return found


def _guarded(step: Callable[[], T], fallback: T) -> T:
    """Run one parsing step; a reader that trips over a malformed mail yields ``fallback``."""
    try:
        return step()
    except Exception:
        return fallback
