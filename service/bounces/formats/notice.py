"""The human-readable part of a bounce notice: its text, whether it is a bounce at all,
and whether it reports a final failure or a delay.

Non-standard bounces (qmail, Exim, old Sendmail, Exchange, webmail providers) are
prose followed by a copy of the original message; everything here works on the prose
alone, cut where the copy begins, so that addresses and reply codes in the copy are
not mistaken for the failure.
"""

from __future__ import annotations

import re
from email.message import Message

from service.bounces.classify import stated
from service.bounces.formats.common import (
    MAX_SCAN,
    content_type,
    header,
    is_text_like,
    iter_parts,
    parse_text_message,
    part_param,
    part_text,
)

# A line that introduces the copy of the original message.
_COPY_MARKER = re.compile(
    r"^[ \t\-=*_#|>]*(?:"
    r"(?:below|following) (?:this line )?is (?:a copy of )?(?:the |your )?(?:original )?message"
    r"|(?:this|here) is a copy of (?:the|your)"
    r"|enclosed (?:is|are) (?:a copy|the original)"
    r"|included is a copy of the message"
    r"|(?:a )?copy of (?:the|your) (?:original )?message(?: headers?)? (?:follows|below|is attached)"
    r"|(?:original|returned|unsent|undelivered|rejected) (?:message|mail|e-?mail)(?: headers?)?"
    r"(?: (?:follows|as follows|below|is attached))?\s*[.:\-=*]*\s*$"
    r"|message headers? follows?"
    r"|headers? of the original message"
    r"|original message headers?"
    r"|the headers? of your message"
    r"|content-type: (?:message/rfc822|text/rfc822-headers)"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
# The first header line of a copy that was pasted without a marker.
_COPY_HEADER = re.compile(
    r"^(?:Received|Return-Path|Message-I[Dd]|DKIM-Signature|X-Received|ARC-Seal|Authentication-Results"
    r"|X-Google-DKIM-Signature|Delivered-To|X-Original-To|MIME-Version):[ \t]",
    re.MULTILINE,
)

_BOUNCE_SENDER = re.compile(
    r"mailer-?daemon|mailer_daemon|mail-daemon|postmaster|mail delivery|mail ?administrator|mdaemon"
    r"|delivery ?(?:system|subsystem|notification)|\bbounces?\b|mailadmin|nobody@|symantec|mailgate",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|deliver(?:y|ing)? (?:status|failure|failed|notification|problem|report|delayed"
    r"|error|has failed)|failure notice|returned mail|return(?:ed)? to sender|mail delivery failed"
    r"|could not be delivered|non[- ]?deliver|not delivered|mail system error|bounce|warning: message"
    r"|error sending|delayed mail|failed delivery|permanent error|mail failure|unzustellbar"
    r"|nicht zustellbar|non remis|message not sent|delivery notification|status notification"
    r"|mail could not|rejected|loop alert|can't deliver|cannot deliver",
    re.IGNORECASE,
)
_BOUNCE_BODY = re.compile(
    r"could ?n[o']t be delivered|was not delivered|wasn't delivered|not been delivered|undeliverable"
    r"|unable to deliver|delivery (?:has |to the following [\w() ]{0,30})?failed|failed permanently"
    r"|permanent (?:fatal )?error|delivery status notification|mail delivery (?:software|subsystem|system)"
    r"|the following (?:address|recipient)|did not reach|could not deliver|returned to (?:the )?sender"
    r"|not be delivered|has been delayed|error (?:occurred )?(?:while )?(?:trying to )?deliver"
    r"|not able to be delivered|could not be sent|failed to deliver|delivery problem|not yet been delivered"
    r"|transcript of session|message could not|could not be forwarded|rejected your message"
    r"|did not like our|no such user|user unknown|mailbox (?:is )?full",
    re.IGNORECASE,
)

# The notice as a whole: a warning about a delay (4) or a final failure (5).
_DELAY_NOTICE = re.compile(
    r"warning message only|has been delayed|delivery (?:has been |is )?delayed|not yet been delivered"
    r"|will (?:be retried|retry|continue to try|keep trying|try again)|delivery attempts will continue"
    r"|still (?:trying|being retried)|is delayed|delayed for|message delayed|no action is required",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"\bdelay|\bdelayed|warning:|\bdeferred", re.IGNORECASE)
_FINAL_NOTICE = re.compile(
    r"permanent|fatal|could ?n[o']t be delivered|undeliverable|unable to deliver|delivery failed|failed"
    r"|given up|not be delivered|has been rejected|returned|error (?:has )?occurred"
    r"|nicht zugestellt|unzustellbar|pas pu [eê]tre (?:remis|distribu)|non remis|no (?:se )?pudo (?:ser )?entregar"
    r"|non [eè] stat[oa] (?:possibile )?consegna|niet (?:worden )?afgeleverd|n[aã]o (?:p[oô]de|foi) (?:ser )?entreg",
    re.IGNORECASE,
)
_FINAL_SUBJECT = re.compile(r"\berror\b|fail|undeliver|returned|non[- ]?deliver|rejected", re.IGNORECASE)


# Read receipts and "delivered"/"relayed" notices: about a message, but not failures.
_RECEIPT_SUBJECT = re.compile(
    r"^\s*(?:read|not read|delivered|relayed|gelesen|lu|zugestellt)\s*:|\((?:success|relay|delivered)\)",
    re.IGNORECASE,
)
_FAILURE_WORDS = re.compile(r"fail|undeliver|not (?:be )?delivered|could not|unable|error|reject|delay", re.IGNORECASE)


def is_receipt(msg: Message, text: str) -> bool:
    """True for a read receipt (RFC 8098 MDN) or a notice that delivery succeeded."""
    if any(content_type(part) == "message/disposition-notification" for part in iter_parts(msg)):
        return True
    if part_param(msg, "report-type") == "disposition-notification":
        return True
    return bool(_RECEIPT_SUBJECT.search(header(msg, "subject"))) and not _FAILURE_WORDS.search(text[:20_000])


def notice_text(msg: Message) -> str:
    """The prose of the notice: its text parts outside any embedded message, each cut
    before the copy of the original message."""
    texts: list[str] = []
    html: list[str] = []
    for part in iter_parts(msg):
        if is_text_like(part):
            texts.append(cut_copy(part_text(part)))
        elif content_type(part) == "text/html":
            html.append(cut_copy(part_text(part)))
    return "\n\n".join(texts or html)[:MAX_SCAN]


def cut_copy(text: str) -> str:
    """``text`` up to where the copy of the original message begins."""
    end = len(text)
    for pattern in (_COPY_MARKER, _COPY_HEADER):
        match = pattern.search(text[:MAX_SCAN])
        if match:
            end = min(end, match.start())
    return text[:end]


def copied_original(msg: Message) -> Message | None:
    """The original message pasted into the notice's text after a marker, parsed, if any."""
    for part in iter_parts(msg):
        if not is_text_like(part):
            continue
        text = part_text(part)[:MAX_SCAN]
        for pattern in (_COPY_MARKER, _COPY_HEADER):
            match = pattern.search(text)
            if match:
                rest = text[match.start() :]
                if pattern is _COPY_MARKER:
                    rest = rest.split("\n", 1)[1] if "\n" in rest else ""
                return parse_text_message(rest)
    return None


def is_bounce_sender(msg: Message) -> bool:
    """True when the headers alone say this is a delivery notice (sender, subject, X-Failed-Recipients)."""
    if header(msg, "x-failed-recipients"):
        return True
    return bool(_BOUNCE_SENDER.search(header(msg, "from")) or _BOUNCE_SUBJECT.search(header(msg, "subject")))


def looks_like_bounce(msg: Message, text: str) -> bool:
    """True when ``msg`` is a delivery notice by its headers or by its wording."""
    return is_bounce_sender(msg) or bool(_BOUNCE_BODY.search(text[:20_000]))


def notice_class(msg: Message, text: str) -> int | None:
    """4 for a delay warning, 5 for a notice of final failure, None when it does not say.

    A notice that calls the failure permanent is final even when it also mentions retries.
    """
    said = stated(text[:20_000])
    if said is not None and said[0] == 5:
        return 5
    if _DELAY_SUBJECT.search(header(msg, "subject")) or _DELAY_NOTICE.search(text):
        return 4
    if _FINAL_NOTICE.search(text) or _FINAL_SUBJECT.search(header(msg, "subject")):
        return 5
    return None
