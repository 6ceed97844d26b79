"""Bounces written as prose: qmail, Exim, old Sendmail, Exchange, Courier, Lotus Notes,
webmail providers and the many MTAs that never learnt RFC 3464.

There is no common format, so we read them the way a person does: find the addresses
that the notice presents as recipients (on a line of their own, after "to:", in
"RCPT TO:<...>", in X-Failed-Recipients), leave out the addresses that are ours (the
sender, the bounce address, the postmaster), and take the lines that follow each
recipient as the reason it failed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import Message
from typing import NamedTuple

from service.bounces.classify import find_reply_code, find_status, phrase_detail, stated
from service.bounces.finding import Action, Finding
from service.bounces.formats.common import (
    address_in,
    embedded_message,
    find_addresses,
    header_values,
    trim,
)
from service.bounces.formats.notice import (
    copied_original,
    is_bounce_sender,
    is_receipt,
    looks_like_bounce,
    notice_class,
    notice_text,
)

MAX_RECIPIENTS = 100
_CUE_REACH = 40

# Text just before an address that makes it the sender, a message id or a contact, not a recipient.
_NOT_RECIPIENT_CUE = re.compile(
    r"(?:mail from|\bfrom|sender|envelope-from|return-path|reply-to|errors-to|contact|message-?id|msgid"
    r"|in-reply-to|references|queue id|\bby)\s*[:;=]?\s*[<\"(\[]?\s*$",
    re.IGNORECASE,
)
# Text just before an address that presents it as a recipient.
_RECIPIENT_CUE = re.compile(
    r"(?:\bto|\bfor|recipients?|address(?:es)?|addressee|\buser|mailbox|rcpt|errors?|attempts?|failed"
    r"|following|deliver(?:ed|ing)?|\bat)\s*[:;=]?\s*[<\"(\[]?\s*$",
    re.IGNORECASE,
)
# Only bullets, quote marks, a reply code or brackets before the address on its line.
_LEADER = re.compile(r"^[\s*>\-•·.\d)(\[\"'#:;,]*<?\s*$")
_SYSTEM_LOCAL = re.compile(
    r"^(?:mailer-?daemon|mailer_daemon|mail-daemon|postmaster|abuse|hostmaster|webmaster|no-?reply"
    r"|do-?not-?reply|donotreply|bounces?|root|support|help|helpdesk)[+@]"
)
_HEADER_SUMMARY = re.compile(r"^\s*(?:to|cc|bcc)\s*:\s*[<\"]?\s*$", re.IGNORECASE)
# Our own VERP return path ("bounce+TOKEN@"), which a notice may quote but never as a failure.
_VERP_LOCAL = re.compile(r"^bounce\+[^@]*@")
# DSN fields pasted into the text: they restate the report, they do not explain it.
_DSN_FIELD = re.compile(
    r"^\s*(?:final-recipient|original-recipient|x-actual-recipient|action|status|reporting-mta|remote-mta"
    r"|received-from-mta|arrival-date|last-attempt-date|will-retry-until|original-envelope-id)\s*:",
    re.IGNORECASE,
)
_ALIAS_CUE = re.compile(r"\((?:ultimately )?(?:expanded|generated|forwarded|aliased) from:?\s*", re.IGNORECASE)
_REPLY_LINE = re.compile(r"^\s*[45]\d\d[ -]")
# Not Delivered-To / X-Original-To: some MTAs (DragonFly) stamp the failed recipient there.
# A mailing list that reports a failure names itself in its List- headers: never the recipient.
_LIST_HEADERS = ("list-post", "list-owner", "list-help", "list-subscribe", "list-unsubscribe")
_OURS_HEADERS = ("from", "sender", "reply-to", "return-path", "to", "errors-to", *_LIST_HEADERS)
_ORIGINAL_SENDER_HEADERS = ("from", "sender", "reply-to", "return-path", "errors-to", *_LIST_HEADERS)
# A list's management addresses ("staff-request@", "owner-staff@"): the list speaking, not a reader.
_LIST_LOCAL = re.compile(r"^(?:owner-[^@]+|[^@]+-(?:owner|request|bounces|admin))@")


_ACTIONS: dict[int | None, Action] = {4: "delayed", 5: "failed"}


class Mention(NamedTuple):
    """An address seen on a line of the notice."""

    addr: str
    line: int
    strong: bool  # presented as a recipient, not merely mentioned
    ours: bool  # one of the bounce's own envelope addresses or the original's sender


def read(msg: Message) -> list[Finding] | None:
    """Findings from a prose bounce; None when ``msg`` does not read as a delivery notice."""
    text = notice_text(msg)
    if is_receipt(msg, text) or not looks_like_bounce(msg, text):
        return None
    original = embedded_message(msg) or copied_original(msg)
    lines = text.splitlines()
    mentions = _mentions(lines, _ours(msg, original), _aliases(text))
    recipients = _recipients(msg, mentions, original)[:MAX_RECIPIENTS]
    if not recipients:
        return None
    action = _ACTIONS.get(notice_class(msg, text))
    whole = text if len(recipients) == 1 else ""
    # "PERMANENT fatal errors" heads the notice, not each recipient's block: every recipient hears it.
    permanent = _permanent_line(lines)
    findings = []
    for addr in recipients:
        block = _block(addr, recipients, lines, mentions)
        finding = _finding(addr, block, whole, action, permanent)
        # We know the subscriber by the address we sent to, not the one an alias expanded to.
        alias = _aliases(block[:2000])
        findings.append(finding._replace(email=alias[0]) if alias else finding)
    return findings


def explain(msg: Message, addr: str) -> Finding | None:
    """What the notice's prose says about one recipient (for a DSN whose fields say little)."""
    lines = notice_text(msg).splitlines()
    mentions = [Mention(a, i, True, False) for i, line in enumerate(lines) for a, _, _ in find_addresses(line)]
    block = _block(addr, [m.addr for m in mentions], lines, mentions)
    if not block:
        return None
    return _finding(addr, block, "", None, "")


def _ours(msg: Message, original: Message | None) -> set[str]:
    """Addresses on our side of the exchange: the bounce's envelope and the original's sender."""
    found: set[str] = set()
    sources: list[tuple[Message, tuple[str, ...]]] = [(msg, _OURS_HEADERS)]
    if original is not None:
        sources.append((original, _ORIGINAL_SENDER_HEADERS))
    for source, names in sources:
        for name in names:
            for value in header_values(source, name):
                found.update(addr for addr, _, _ in find_addresses(value))
    return found


def _aliases(text: str) -> list[str]:
    """Addresses a recipient was expanded from: "(expanded from <a>)", "(generated from a)"."""
    found = []
    for match in _ALIAS_CUE.finditer(text):
        addr = address_in(text[match.end() : match.end() + 300])
        if addr:
            found.append(addr)
    return found


def _mentions(lines: list[str], ours: set[str], aliases: list[str]) -> list[Mention]:
    mentions: list[Mention] = []
    for index, line in enumerate(lines):
        line_has_strong = False
        for addr, start, _ in find_addresses(line):
            before = line[:start]
            # The cues are a few words long: searching only their reach keeps a line of a
            # thousand addresses linear.
            near = before[-_CUE_REACH:]
            if _VERP_LOCAL.match(addr) or addr in aliases or _NOT_RECIPIENT_CUE.search(near):
                continue
            # Only the first address a line presents is its subject: in "<a> (expanded from <b>)"
            # or "a <b>: malformed address" the second is a detail. A "To:" line quotes the
            # original's headers, which name recipients whether or not they failed.
            strong = (
                not line_has_strong
                and not _HEADER_SUMMARY.match(before)
                and bool(_LEADER.match(before) or _RECIPIENT_CUE.search(near))
            )
            if (_SYSTEM_LOCAL.match(addr) and not strong) or _LIST_LOCAL.match(addr):
                continue
            line_has_strong = line_has_strong or strong
            mentions.append(Mention(addr, index, strong, addr in ours))
    return mentions


def _recipients(msg: Message, mentions: list[Mention], original: Message | None) -> list[str]:
    # X-Failed-Recipients (Exim, Gmail) is the MTA's own list: better than any reading of the prose.
    listed = _unique(
        addr for value in header_values(msg, "x-failed-recipients") for addr, _, _ in find_addresses(value)
    )
    if listed:
        return listed
    for wanted in (True, False):
        found = _unique(m.addr for m in mentions if m.strong == wanted and not m.ours)
        if found:
            return found
    # Only a notice whose headers say it is one may go further: a person forwarding our
    # mail back must not make its recipients bounce.
    if not is_bounce_sender(msg):
        return []
    # A notice that names nobody but the copy's recipients (Lotus Notes, Google Groups).
    copied = []
    if original is not None:
        ours = _ours(msg, original)
        copied = _unique(
            addr
            for name in ("to", "cc")
            for value in header_values(original, name)
            for addr, _, _ in find_addresses(value)
            if addr not in ours
        )
    # Last, a recipient that is also the sender: someone who wrote to themselves.
    return copied or _unique(m.addr for m in mentions if m.strong)


def _block(addr: str, recipients: list[str], lines: list[str], mentions: list[Mention]) -> str:
    """The lines about ``addr``: from each line that names it up to the next line naming another recipient."""
    wanted = set(recipients)
    others = {m.line for m in mentions if m.addr != addr and m.addr in wanted}
    picked: set[int] = set()
    for start in sorted({m.line for m in mentions if m.addr == addr}):
        end = start + 1
        while end < len(lines) and end not in others and end not in picked:
            end += 1
        picked.update(range(start, end))
    return "\n".join(lines[i] for i in sorted(picked))


def _finding(addr: str, block: str, whole: str, action: Action | None, permanent: str) -> Finding:
    """What the notice says about ``addr``: its block, else (for a lone recipient) the whole notice.

    No decision here: the wording goes to the classifier with the codes found in it.
    """
    for text in (block, whole):
        status, reply_code = find_status(text), find_reply_code(text)
        if status or reply_code:
            basis = text if status else _line_with_code(text)
            return Finding(
                addr, None, _diagnostic(text, addr), reply_code, action=action, text=_joined(basis, permanent)
            )
    basis = block if (phrase_detail(block) or not whole) else whole
    return Finding(addr, None, _diagnostic(block or whole, addr), None, action=action, text=_joined(basis, permanent))


def _permanent_line(lines: list[str]) -> str:
    """The line where the notice says the failure is permanent, or ''."""
    for line in lines[:400]:
        said = stated(line)
        if said is not None and said[0] == 5:
            return line
    return ""


def _joined(*texts: str) -> str:
    return "\n".join(t for t in texts if t)


def _line_with_code(text: str) -> str:
    """The reply and what follows it: the wording that explains a bare reply code."""
    for index, line in enumerate(lines := text.splitlines()):
        if find_reply_code(line):
            return "\n".join(lines[index : index + 4])
    return text


def _diagnostic(text: str, addr: str) -> str | None:
    """The SMTP reply with its continuation lines if there is one, else the first lines of prose."""
    lines = [line for line in text.splitlines() if not _DSN_FIELD.match(line)]
    for index, line in enumerate(lines):
        if find_reply_code(line) or find_status(line):
            reply = [line]
            # Multi-line replies repeat the code ("550-5.7.26 ..."); wrapped ones are indented.
            for following in lines[index + 1 : index + 8]:
                if not following.strip() or not (_REPLY_LINE.match(following) or following[:1] in " \t"):
                    break
                reply.append(following)
            return trim(" ".join(reply))
    prose = [line for line in lines if line.strip() and line.strip("<>:*.-\t ").lower() != addr]
    return trim(" ".join(prose[:3]))


def _unique(addrs: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(addrs))
