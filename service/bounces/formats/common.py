"""Helpers shared by the format readers: header and part text, addresses, RFC 822-style field blocks.

Every helper here tolerates malformed input (8-bit headers, unknown charsets, broken
base64): bounce mail is written by hundreds of MTAs, and a bad byte must cost us at
most one field, never the whole report.
"""

from __future__ import annotations

import contextlib
import email
import email.header
import email.policy
import html
import re
from collections.abc import Iterator
from email.message import Message

# How much text a reader scans: real notices are a few KB; the cap keeps the regexes
# linear-time-cheap on a multi-megabyte attachment that someone posts to us.
MAX_SCAN = 200_000
MAX_PARTS = 200


# An addr-spec as it appears in notices. The local part may not start right after
# '=', '/', '&' or '?', so "https://x/?Endpoint=a@b.example" in a footer is not an address.
_ADDR_RE = re.compile(
    r"(?<![A-Za-z0-9_%+'=&/?.@-])"
    r"((?:[A-Za-z0-9_%+'-][A-Za-z0-9_%+'=.-]{0,63}|\"[^\"\r\n\\]{1,64}\")"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,62})"
    r"(?![A-Za-z0-9-])"
)


# What wraps an address in reports: a type prefix ("rfc822;", "smtp=", "x400:"), quotes,
# brackets and the punctuation of the sentence around it.
_TYPE_PREFIX = re.compile(r"^(?:rfc822|rfc-822|smtp|x-?400|unknown|mailto|internet)\s*[;:=]\s*", re.IGNORECASE)
_WRAPPING = " \t\r\n'\"`<>()[]{},;:."
_LOCAL_RE = re.compile(r"^(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}|\"[^\"\r\n\\]{1,62}\")$")
_DOMAIN_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def clean_address(value: str) -> str | None:
    """``value`` as a bare, validated, lower-cased address, or None when it is not one.

    Strips what reports wrap addresses in: type prefixes (``rfc822;``, ``smtp=``), quotes,
    angle brackets and trailing punctuation; lower-cases; checks the result is an addr-spec
    with a real domain (so ``user@localhost`` or ``a@b`` from a transcript is not taken).
    """
    text = value.strip()
    for _ in range(4):  # "<'smtp=a@b'>": each layer peels one wrapping
        before = text
        text = _TYPE_PREFIX.sub("", text.strip(_WRAPPING)).strip(_WRAPPING)
        if text == before:
            break
    local, at, domain = text.rpartition("@")
    if not at or not local:
        return None
    if local.startswith('"') != local.endswith('"') or local == '"':
        local = local.strip('"')
    domain = domain.lower().rstrip(".")
    if not _LOCAL_RE.match(local):
        return None
    # An unquoted local part with ".." is a path or an ellipsis ("see ...@"), not an address.
    if not local.startswith('"') and (".." in local or local.startswith(".") or local.endswith(".")):
        return None
    if len(domain) > 253 or not _DOMAIN_RE.match(domain):
        return None
    return f"{local.lower()}@{domain}"


def find_addresses(text: str) -> list[tuple[str, int, int]]:
    """Every address in ``text`` as (clean lower-cased address, start, end)."""
    found: list[tuple[str, int, int]] = []
    for match in _ADDR_RE.finditer(text[:MAX_SCAN]):
        addr = clean_address(match.group(1))
        if addr is not None:
            found.append((addr, match.start(1), match.end(1)))
    return found


def address_in(value: str | None) -> str | None:
    """The first address in a header-like value ("rfc822; <a@b>", "Name <a@b>"), lower-cased."""
    if not value:
        return None
    found = find_addresses(value)
    return found[0][0] if found else None


def decode_header_value(value: object, *, encoded_words: bool = True) -> str:
    """A header value as readable one-line text: 8-bit bytes read as UTF-8, RFC 2047 words
    decoded (unless ``encoded_words`` is False, for fields where they are literal text)."""
    text = str(value)
    # The bytes parser keeps undecodable 8-bit header bytes as surrogates; most are UTF-8.
    with contextlib.suppress(UnicodeError):
        text = text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    if encoded_words and "=?" in text:
        # A broken encoded-word leaves the raw text, which is still useful.
        with contextlib.suppress(Exception):
            text = str(email.header.make_header(email.header.decode_header(text)))
    return " ".join(text.split())


def header_values(msg: Message, name: str) -> list[str]:
    """All values of header ``name`` (case-insensitive), decoded; [] when absent or unreadable."""
    wanted = name.lower()
    try:
        items = msg.raw_items()
        return [decode_header_value(value) for key, value in items if str(key).lower() == wanted]
    except Exception:
        return []


def header(msg: Message, name: str) -> str:
    """The first value of header ``name``, decoded, or ''."""
    values = header_values(msg, name)
    return values[0] if values else ""


_CTYPE_RE = re.compile(r"\s*([A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+)")


def content_type(part: Message) -> str:
    """The part's content type, lower-cased; text/plain when it cannot be read."""
    try:
        # A parameter folded without its ';' stays glued to the type: keep the type alone.
        match = _CTYPE_RE.match(part.get_content_type())
    except Exception:
        return "text/plain"
    return match.group(1).lower() if match else "text/plain"


def part_param(part: Message, name: str) -> str:
    """A Content-Type parameter, lower-cased, or ''."""
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    if isinstance(value, tuple):
        value = value[2]
    return str(value).strip().strip('"').lower() if value else ""


def payload_of(part: Message) -> object:
    """``part.get_payload()``, or None when the email package cannot produce it."""
    try:
        return part.get_payload()
    except Exception:
        return None


def iter_parts(msg: Message) -> Iterator[Message]:
    """``msg`` and its parts, depth-first, without entering embedded messages (message/rfc822):
    the returned original's parts are not the notice's.

    Iterative with a cap, so a deliberately deep MIME tree cannot exhaust the stack.
    """
    stack = [msg]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        ctype = content_type(part)
        if ctype in ("message/rfc822", "message/global") and part is not msg:
            continue
        if ctype in ("message/delivery-status", "message/global-delivery-status", "message/feedback-report"):
            continue
        payload = payload_of(part)
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


def is_text_like(part: Message) -> bool:
    """True for text/plain, and for a multipart whose lost boundary left its body as plain text."""
    ctype = content_type(part)
    return ctype == "text/plain" or (ctype.startswith("multipart/") and isinstance(payload_of(part), str))


def part_text(part: Message) -> str:
    """The decoded text of a leaf part ('' for containers); HTML is reduced to plain text."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = payload_of(part)
        return raw if isinstance(raw, str) else ""
    charset = "utf-8"
    with contextlib.suppress(Exception):  # an unreadable charset parameter falls back to UTF-8
        charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, "replace")
    except (LookupError, ValueError):
        text = payload.decode("utf-8", "replace")
    if content_type(part) == "text/html":
        text = html_to_text(text)
    return text


_BLOCK_TAGS = re.compile(r"<\s*(?:br|/p|/div|/tr|/li|/h\d|/table)\b[^>]{0,200}>", re.IGNORECASE)
_TAGS = re.compile(r"<[^<>]{0,2000}>")
_HIDDEN_START = re.compile(r"<(style|script|head)[\s>/]", re.IGNORECASE)


def html_to_text(text: str) -> str:
    """Crude HTML-to-text: enough to find addresses and SMTP replies in an HTML-only notice."""
    text = _drop_hidden(text[:MAX_SCAN])
    text = _BLOCK_TAGS.sub("\n", text)
    text = _TAGS.sub(" ", text)
    return html.unescape(text)


def _drop_hidden(text: str) -> str:
    """``text`` without <style>, <script> and <head> elements.

    Each search starts where the last element ended, so the work stays linear; a lazy
    ``<style>.*?</style>`` regex is quadratic on a page of unclosed tags.
    """
    kept: list[str] = []
    position = 0
    while start := _HIDDEN_START.search(text, position):
        end = re.compile(rf"</{start.group(1)}\s*>", re.IGNORECASE).search(text, start.end())
        if end is None:
            break
        kept.append(text[position : start.start()])
        position = end.end()
    kept.append(text[position:])
    return " ".join(kept)


def structured_text(part: Message) -> str:
    """The text of a message/delivery-status or message/feedback-report part.

    The email package parses these into one pseudo-message per block; we rebuild the
    field lines so that one reader handles them and a text/plain part that holds the same.
    """
    payload = payload_of(part)
    if isinstance(payload, str):
        return part_text(part)
    if not isinstance(payload, list):
        return ""
    blocks: list[str] = []
    for block in payload:
        if not isinstance(block, Message):
            continue
        lines = [f"{key}: {decode_header_value(value, encoded_words=False)}" for key, value in block.raw_items()]
        rest = payload_of(block)
        if isinstance(rest, str) and rest.strip():
            # A line without a colon ends the header parse early; what follows is still fields.
            lines.append(rest)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


_FIELD_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]{0,60})[ \t]*:[ \t]*(.*)$")


def parse_fields(text: str, starts_block: tuple[str, ...] = ()) -> list[dict[str, list[str]]]:
    """Split "Name: value" lines into blank-line separated blocks (RFC 3464 / RFC 5965 layout).

    Keys are lower-cased; continuation lines are unfolded; repeated fields keep every value,
    except that a repeated field named in ``starts_block`` opens a new block (for reports
    that forget the blank line between recipients).
    """
    blocks: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    last: str | None = None
    for line in text[:MAX_SCAN].splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[:1] in (" ", "\t") and last is not None:
            values = current[last]
            values[-1] = f"{values[-1]} {line.strip()}".strip()
            continue
        match = _FIELD_RE.match(line)
        if match:
            last = match.group(1).lower()
            if last in starts_block and last in current:
                blocks.append(current)
                current = {}
            current.setdefault(last, []).append(match.group(2).strip())
        else:
            last = None
    if current:
        blocks.append(current)
    return blocks


def first(block: dict[str, list[str]], *names: str) -> str:
    """The first non-empty value among ``names`` in a field block, or ''."""
    for name in names:
        for value in block.get(name, []):
            if value.strip():
                return value.strip()
    return ""


def embedded_message(msg: Message) -> Message | None:
    """The returned original message (or its headers) carried in a message/rfc822 or
    text/rfc822-headers part, if any."""
    for part in iter_parts(msg):
        if part is msg:
            continue
        ctype = content_type(part)
        if ctype in ("message/rfc822", "message/global", "message/partial"):
            payload = payload_of(part)
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            if isinstance(payload, str):
                return parse_text_message(payload)
        if ctype in ("text/rfc822-headers", "text/rfc822-header", "message/rfc822-headers"):
            return parse_text_message(part_text(part))
    return None


def parse_text_message(text: str) -> Message | None:
    """Parse a message (or bare header block) held as text; None when it cannot be read."""
    try:
        return email.message_from_string(text.lstrip()[:MAX_SCAN], policy=email.policy.compat32)
    except Exception:
        return None


# "smtp; 550 ..." / "X-Postfix; ...": the diagnostic type (RFC 3464) is noise to a reader.
_DIAGNOSTIC_TYPE = re.compile(r"^\s*[A-Za-z][\w-]{0,20}\s*;\s*")


def without_diagnostic_type(text: str) -> str:
    """A Diagnostic-Code value without its "smtp;" type prefix."""
    return _DIAGNOSTIC_TYPE.sub("", text, count=1)


def trim(text: str | None, limit: int = 1000) -> str | None:
    """Whitespace-collapsed text cut to ``limit`` characters; None when empty."""
    if not text:
        return None
    flat = " ".join(text.split())
    return flat[:limit] if flat else None
