"""RFC 3464 delivery status notifications: one finding per failed or delayed recipient."""

from __future__ import annotations

import re
from email.message import Message

from service.bounces.classify import find_reply_code, find_reply_pair, find_status, status_class
from service.bounces.finding import Finding
from service.bounces.formats.common import (
    address_in,
    clean_address,
    content_type,
    embedded_message,
    find_addresses,
    first,
    header_values,
    is_text_like,
    iter_parts,
    parse_fields,
    part_text,
    structured_text,
    trim,
    without_diagnostic_type,
)

_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
# Original-Recipient first: it is the address we sent to (an alias may expand to another
# Final-Recipient), and the subscriber is known by that one.
_RECIPIENT_FIELDS = ("original-recipient", "final-recipient", "x-actual-recipient")
# Some MTAs (and some relays that re-wrap reports) put the fields in a text/plain part.
_INLINE_DSN = re.compile(r"^(?:final|original)-recipient\s*:", re.IGNORECASE | re.MULTILINE)
_INLINE_ACTION = re.compile(r"^(?:action|status)\s*:", re.IGNORECASE | re.MULTILINE)
_LOOSE_ADDR = re.compile(r"^[^\s@<>]{1,200}@[^\s@<>]{1,255}$")
# An X.400 recipient that carries its RFC 822 form: "x400; /RFC-822=user(a)example.com/..."
_X400_RFC822 = re.compile(r"RFC-?822=([^/;\s]{1,300})", re.IGNORECASE)
_ORIGINAL_SENDER_HEADERS = ("from", "sender", "reply-to", "return-path")


def read(msg: Message) -> list[Finding] | None:
    """Findings from the delivery-status fields of ``msg``.

    None when the message carries no per-recipient DSN fields (another reader should
    try); [] when it does but none failed (e.g. a delivery or relay notification).
    """
    blocks = [
        block
        for text in _status_texts(msg)
        for block in parse_fields(text, starts_block=_RECIPIENT_FIELDS[:2])
        if any(name in block for name in _RECIPIENT_FIELDS)
    ]
    fallback = _fallback_recipient(msg) if sum(_recipient(b) is None for b in blocks) == 1 else None
    findings = [f for f in (_finding(block, fallback) for block in blocks) if f is not None]
    if not findings and not any(_is_success(block) for block in blocks):
        # Recipient blocks that name no usable address (X.400, redacted): let prose try.
        return None
    return findings


def _status_texts(msg: Message) -> list[str]:
    texts = [structured_text(part) for part in iter_parts(msg) if content_type(part) in _DSN_TYPES]
    if any(_INLINE_DSN.search(text) for text in texts):
        return texts
    for part in iter_parts(msg):
        if is_text_like(part):
            text = part_text(part)
            if _INLINE_DSN.search(text) and _INLINE_ACTION.search(text):
                texts.append(text)
    return texts


def _recipient(block: dict[str, list[str]]) -> str | None:
    values = [value for name in _RECIPIENT_FIELDS for value in block.get(name, [])]
    for value in values:
        x400 = _X400_RFC822.search(value)
        if x400 and (addr := clean_address(x400.group(1).replace("(a)", "@"))):
            return addr
        addr = address_in(value)
        if addr and not addr.startswith("imcea"):  # Exchange's X.500 wrapping, not a mailbox
            return addr
    # The field is structured, so take what it says even when it is no ordinary address
    # (an RFC 2047-encoded local part, an IDN): the caller matches it against what we sent.
    for value in values:
        raw = value.split(";", 1)[-1].strip().strip("<>").strip()
        if _LOOSE_ADDR.match(raw) and not raw.lower().startswith("imcea"):
            return raw.lower()
    return None


def _fallback_recipient(msg: Message) -> str | None:
    """The one failed recipient a report names outside its unreadable recipient field (an X.400
    Final-Recipient): X-Failed-Recipients, else the returned original's sole recipient."""
    listed = {a for v in header_values(msg, "x-failed-recipients") for a, _, _ in find_addresses(v)}
    if len(listed) == 1:
        return listed.pop()
    original = embedded_message(msg)
    if original is None:
        return None
    senders = {a for n in _ORIGINAL_SENDER_HEADERS for v in header_values(original, n) for a, _, _ in find_addresses(v)}
    copied = {
        a for n in ("to", "cc") for v in header_values(original, n) for a, _, _ in find_addresses(v) if a not in senders
    }
    return copied.pop() if len(copied) == 1 else None


def _is_success(block: dict[str, list[str]]) -> bool:
    action = first(block, "action").lower()
    return action.startswith(("deliver", "relay", "expand")) or status_class(first(block, "status")) == 2


def _finding(block: dict[str, list[str]], fallback: str | None) -> Finding | None:
    action = first(block, "action").lower()
    if action.startswith(("deliver", "relay", "expand")):
        return None
    addr = _recipient(block) or fallback
    if addr is None:
        return None
    diagnostic = without_diagnostic_type(first(block, "diagnostic-code"))
    reply_code = find_reply_code(diagnostic)
    declared = find_status(first(block, "status"))
    from_diagnostic = find_status(diagnostic)
    delayed = "delay" in action

    remote = find_reply_pair(diagnostic)
    status: str | None
    if remote is not None and (declared is None or remote[1][0] == declared[0] or remote[1][0] == "5"):
        # The remote server's own "550 5.2.2" knows the mailbox best; the reporting MTA
        # often files it under a generic code or its retry policy (Postfix reports a 5xx
        # greeting as 4.x.x). But a reporter that declares 5.x.x has given up for good:
        # the last temporary reply it quotes does not make that soft.
        reply_code, status = remote
    elif declared is not None and declared.endswith(".0.0") and from_diagnostic and from_diagnostic[0] == declared[0]:
        # "5.0.0" says only "failed"; the remote server's own code usually says why.
        status = from_diagnostic
    else:
        status = declared or from_diagnostic
    if status is None and reply_code is None and "fail" not in action and not delayed:
        # No action and no status: nothing in the block says delivery failed.
        return None
    return Finding(
        email=addr, status=status, diagnostic=trim(diagnostic), reply_code=reply_code,
        action="delayed" if delayed else "failed" if "fail" in action else None,
    )  # fmt: skip
