"""Edition mail: the MIME template is built once per edition, each copy is spliced from it.

Building an ``EmailMessage`` per recipient caps a process near 500 msg/s, so
``prepare`` does all the MIME work once (headers, boundary, quoted-printable
bodies with the placeholder positions cut out) and ``PreparedMail.render``
only encodes the few personal values and joins bytes.

Copies are CRLF-normal by construction, and ``PreparedMail.render_data`` also
gives a copy's DATA form (RFC 5321 dot-stuffing) from template pieces stuffed
once per edition, so nothing scans the whole message per copy on its way out.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import secrets
import time
from collections.abc import Mapping
from typing import NamedTuple

import html2text
import msgspec

from .addresses import UnsendableAddress, wire_address


class HeaderInjectionError(ValueError):
    """A value would break or change a header: control characters (CR, LF, ...) or not one address."""


class EditionMail(msgspec.Struct, frozen=True):
    """What is the same in every copy of an edition."""

    subject: str
    html: str
    text: str | None  # None: derived from html with html2text
    from_addr: str  # "Name <addr@x>" or "addr@x"
    reply_to: str | None
    list_id: str  # "newsletter.lists.example.org"
    list_name: str  # display name in List-Id, may be empty


class Personalisation(msgspec.Struct, frozen=True):
    """What differs per copy."""

    to_email: str
    to_name: str
    unsubscribe_url: str  # https://.../unsubscribe/TOKEN (http:// only for a local trial)
    unsubscribe_mailto: str  # mailto:unsubscribe+TOKEN@bounce.domain
    preferences_url: str
    message_id: str  # "<...@domain>"; empty: one is made up with message_id_domain
    view_url: str = ""  # the reader's copy as a web page (GET /view/TOKEN); empty where there is none


_KEYS = ("name", "unsubscribe_url", "preferences_url", "view_url")
PLACEHOLDERS = frozenset(_KEYS)
"""The ``{{placeholders}}`` the composer fills in per recipient; any other ``{{…}}`` is sent as written."""
_PLACEHOLDER = re.compile(r"\{\{\s*(" + "|".join(_KEYS) + r")\s*\}\}")
# Tab is refused too: it is legal folding white space, so it could smuggle structure.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ATOMS = re.compile(rf"{_ATEXT}(?: {_ATEXT})*")
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})+")
_DOMAIN = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")  # 'localhost' is a valid Message-ID domain
_NO_ADDR = "\x00-\x20\x7f-\x9f\u2028\u2029<>()\\[\\]\\\\,;:@\""
_ADDRESS = re.compile(f"[^{_NO_ADDR}]+@[^{_NO_ADDR}]+")
_MAILBOX = re.compile(r"\s*(?:(?P<name>.*?)\s*<(?P<addr>[^<>]*)>|(?P<bare>[^<>\s]+))\s*", re.DOTALL)
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_URI = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,900}")  # printable ASCII without '<' '>'
_QP_SAFE = re.compile(r"[\x20-\x3c\x3e-\x7e]{0,75}")  # needs no quoted-printable escaping
# RFC 5322 wants lines <= 78; RFC 2047 wants lines with encoded words <= 76, so 76 for all.
_FOLD_AT = 76
_CRLF = b"\r\n"


def dot_stuff(message: bytes) -> bytes:
    """A second dot before each line that starts with one (RFC 5321 4.5.2), in a message whose
    line breaks are all CRLF: that message's DATA form, the bytes aiosmtplib would write for it."""
    stuffed = message.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def _check(label: str, value: str) -> None:
    if _CONTROL.search(value):
        raise HeaderInjectionError(f"{label} contains a control character (CR, LF, tab, ...): {value!r}")


def _address(label: str, value: str) -> bytes:
    """Check a bare address and encode it as sent (see addresses.py): the domain in ASCII,
    a non-ASCII local part as UTF-8 (RFC 6532, travels only with SMTPUTF8)."""
    if not _ADDRESS.fullmatch(value):
        raise HeaderInjectionError(f"{label} is not a single plain address: {value!r}")
    try:
        return wire_address(value).encode()
    except UnsendableAddress as exc:
        raise HeaderInjectionError(f"{label}: {exc}") from None


def _encoded_words(text: str) -> bytes:
    """RFC 2047 B-encoded words of at most 39 UTF-8 bytes, never splitting a character.

    39 bytes make a 64-character word, so even 'Reply-To: ' plus one word stays within the
    76 characters RFC 2047 allows on a line with encoded words, and most names fit in one word.
    """
    words: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for char in text:
        raw = char.encode()
        if size + len(raw) > 39:
            words.append(b"=?utf-8?b?" + base64.b64encode(b"".join(chunk)) + b"?=")
            chunk, size = [], 0
        chunk.append(raw)
        size += len(raw)
    words.append(b"=?utf-8?b?" + base64.b64encode(b"".join(chunk)) + b"?=")
    return b"\r\n ".join(words)


def _phrase(name: str) -> bytes:
    """A display name as atoms, a quoted string or encoded words, whichever keeps it intact."""
    if len(name) <= 60 and "=?" not in name:  # '=?' would be decoded by many readers
        if _ATOMS.fullmatch(name):
            return name.encode()
        if name.isascii():  # control characters were refused before
            return b'"' + name.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'
    return _encoded_words(name)


def _named(field: str, name: str, addr: bytes) -> bytes:
    """`Name <addr>` (or the bare address), folded before '<' when the line gets long."""
    if not name:
        return addr
    phrase = _phrase(name)
    last_line = len(phrase) - phrase.rfind(b"\n") - 1 if b"\n" in phrase else len(field) + 2 + len(phrase)
    gap = b"\r\n " if last_line + len(addr) + 3 > _FOLD_AT else b" "
    return phrase + gap + b"<" + addr + b">"


def _mailbox_header(field: str, value: str) -> bytes:
    _check(field, value)
    found = _MAILBOX.fullmatch(value)
    if found is None:
        raise HeaderInjectionError(f"{field} is not a single address: {value!r}")
    name = (found["name"] or "").strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    addr = _address(field, found["addr"] if found["bare"] is None else found["bare"])
    return field.encode() + b": " + _named(field, name, addr) + _CRLF


def _unstructured_header(field: str, text: str) -> bytes:
    """Fold plain ASCII at spaces; anything a reader might alter goes out as encoded words."""
    if not text:
        return field.encode() + b":\r\n"
    words = text.split(" ")
    if not text.isascii() or "=?" in text or "" in words or max(map(len, words)) > 900:
        return field.encode() + b": " + _encoded_words(text) + _CRLF
    lines, line = [], f"{field}: {words[0]}"
    for word in words[1:]:
        if len(line) + 1 + len(word) > _FOLD_AT:
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
    lines.append(line)
    return "\r\n".join(lines).encode() + _CRLF


def _qp(data: str, *, open_end: bool = False) -> bytes:
    """Quoted-printable with CRLF, lines <= 76; ``open_end`` ends it with a soft break for a splice."""
    encoded = binascii.b2a_qp(data.encode(), istext=True).replace(b"\n", _CRLF)
    if not open_end or not encoded or encoded.endswith(_CRLF):
        return encoded
    start = encoded.rfind(b"\n") + 1
    if len(encoded) - start > 75:  # the '=' of the soft break must still fit into 76
        cut = start + 75
        cut -= 1 if encoded[cut - 1] == 0x3D else 2 if encoded[cut - 2] == 0x3D else 0  # keep '=XX' whole
        encoded = encoded[:cut] + b"=\r\n" + encoded[cut:]
    return encoded + b"=\r\n"


def _qp_value(value: str) -> bytes:
    """A per-recipient value, ending in a soft break so the next template piece starts a line."""
    if _QP_SAFE.fullmatch(value):  # the common case: short ASCII without '='
        return value.encode() + b"=\r\n" if value else b""
    return _qp(value, open_end=True)


def _derive_text(html_body: str) -> str:
    """Plain text from HTML; placeholders ride through html2text as inert alphanumeric tokens."""
    nonce = secrets.token_hex(4)
    marked = _PLACEHOLDER.sub(lambda m: f"lbx{nonce}s{_KEYS.index(m[1])}e", html_body)
    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: quoted-printable keeps the lines short on the wire
    converter.unicode_snob = True  # keep the real characters, do not transliterate to ASCII
    text: str = converter.handle(marked)
    return re.sub(f"lbx{nonce}s([0-9])e", lambda m: "{{" + _KEYS[int(m[1])] + "}}", text)


def _body_pieces(body: str, first_slot: int) -> list[bytes | int]:
    """Quoted-printable template pieces; ints are slots ``first_slot + index in _KEYS``."""
    parts = _PLACEHOLDER.split(re.sub(r"\r\n?", "\n", body))
    pieces: list[bytes | int] = []
    for i in range(0, len(parts) - 1, 2):
        pieces += [_qp(parts[i], open_end=True), first_slot + _KEYS.index(parts[i + 1])]
    pieces.append(_qp(parts[-1]))
    return pieces


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_last_date: tuple[int, str] = (-1, "")


def format_date(ts: float | None = None) -> str:
    """RFC 5322 date in UTC, e.g. 'Tue, 25 Nov 2025 07:46:00 +0000'; the last second is cached."""
    global _last_date
    second = int(time.time() if ts is None else ts)
    if _last_date[0] != second:
        t = time.gmtime(second)
        _last_date = (second, f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
                              f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")
    return _last_date[1]


# Slots in PreparedMail._pieces: headers first, then one value per placeholder per body part.
_TO, _DATE, _MSGID, _UNSUB, _TEXT = 0, 1, 2, 3, 4
_HTML = _TEXT + len(_KEYS)


class RenderedCopy(NamedTuple):
    """One recipient's copy, as :meth:`PreparedMail.render_copy` makes it."""

    message: bytes
    data: bytes
    """``message`` in its DATA form (see :func:`dot_stuff`), usually the very same object."""
    pieces: list[bytes]
    """What ``message`` is joined from: the template's pieces and this copy's values between them.
    Past the header, every piece is whole CRLF lines (each value starts a line and ends with a soft
    line break), so a line-by-line form such as DKIM's relaxed body can be worked out piece by piece."""


class PreparedMail:
    """One edition's message template; ``render`` makes a recipient's copy from it."""

    def __init__(self, pieces: list[bytes | int], message_id_domain: str, *, one_click: bool) -> None:
        self._pieces = pieces
        self.shared = tuple(isinstance(piece, bytes) for piece in pieces)
        """Per piece of :attr:`RenderedCopy.pieces`: whether it is the template's own, the same
        bytes object in every copy."""
        self._message_id_domain = message_id_domain
        self._link_schemes = ("https://",) if one_click else ("https://", "http://")
        used = {piece for piece in pieces if isinstance(piece, int)}
        # Only the values a template actually uses are encoded per recipient.
        self._text_keys = tuple((key, _TEXT + i) for i, key in enumerate(_KEYS) if _TEXT + i in used)
        self._html_keys = tuple((key, _HTML + i) for i, key in enumerate(_KEYS) if _HTML + i in used)
        self._body_slots = tuple(i for i, piece in enumerate(pieces) if isinstance(piece, int) and piece >= _TEXT)
        # The DATA form of the shared pieces, stuffed once for the edition. Only a body piece can
        # start with a dot, and each starts a line (it follows a part head or a value ending in a
        # line break); None when no line of the template starts with a dot, the usual case.
        wire = [dot_stuff(piece) if isinstance(piece, bytes) else piece for piece in pieces]
        self._wire_pieces = None if wire == pieces else wire

    def render(self, p: Personalisation, *, date: str | None = None) -> bytes:
        """The full RFC 5322 message (CRLF) for one recipient; HeaderInjectionError on bad values."""
        return b"".join([x if isinstance(x, bytes) else y for x, y in zip(self._pieces, self._values(p, date),
                                                                           strict=True)])

    def render_data(self, p: Personalisation, *, date: str | None = None) -> tuple[bytes, bytes]:
        """The copy as :meth:`render` makes it, and the same copy in its DATA form (see
        :func:`dot_stuff`), usually the very same bytes object."""
        copy = self.render_copy(p, date=date)
        return copy.message, copy.data

    def render_copy(self, p: Personalisation, *, date: str | None = None) -> RenderedCopy:
        """:meth:`render_data`'s two forms, and the pieces the message is joined from (see
        :class:`RenderedCopy`; :attr:`shared` says which are the template's own)."""
        values = self._values(p, date)
        pieces = [x if isinstance(x, bytes) else y for x, y in zip(self._pieces, values, strict=True)]
        message = b"".join(pieces)
        # Every body slot starts a line, so a value's leading dot is a line's; header values never start one.
        stuffed = {i: dot_stuff(values[i]) for i in self._body_slots
                   if values[i][:1] == b"." or b"\n." in values[i]}
        if self._wire_pieces is None and not stuffed:  # the usual copy: no line starts with a dot
            return RenderedCopy(message, message, pieces)
        data = b"".join([x if isinstance(x, bytes) else stuffed.get(i, values[i])
                         for i, x in enumerate(self._wire_pieces or self._pieces)])
        return RenderedCopy(message, data, pieces)

    def _values(self, p: Personalisation, date: str | None) -> list[bytes]:
        """The per-recipient bytes, at the index of each slot in ``_pieces``."""
        for label, value in (("to_name", p.to_name), ("preferences_url", p.preferences_url),
                             ("view_url", p.view_url)):
            _check(label, value)
        if not (_URI.fullmatch(p.unsubscribe_url) and p.unsubscribe_url.startswith(self._link_schemes)):
            wanted = " or ".join(scheme.rstrip(":/") for scheme in self._link_schemes)
            raise HeaderInjectionError(f"unsubscribe_url is not a plain {wanted} URI: {p.unsubscribe_url!r}")
        if not (_URI.fullmatch(p.unsubscribe_mailto) and p.unsubscribe_mailto.startswith("mailto:")):
            raise HeaderInjectionError(f"unsubscribe_mailto is not a mailto URI: {p.unsubscribe_mailto!r}")
        message_id = p.message_id or f"<{secrets.token_hex(16)}@{self._message_id_domain}>"
        if not _MESSAGE_ID.fullmatch(message_id):
            raise HeaderInjectionError(f"message_id is not '<id@domain>': {message_id!r}")
        date = format_date() if date is None else date
        _check("date", date)
        unsubscribe = f"<{p.unsubscribe_url}>, <{p.unsubscribe_mailto}>"
        if len(unsubscribe) > _FOLD_AT - 18:  # 18 = len("List-Unsubscribe: ")
            unsubscribe = unsubscribe.replace(", ", ",\r\n ")
        values: list[bytes] = [_named("To", p.to_name, _address("to_email", p.to_email)), date.encode(),
                               message_id.encode(), unsubscribe.encode(), *(b"" for _ in range(2 * len(_KEYS)))]
        raw = {"name": p.to_name, "unsubscribe_url": p.unsubscribe_url, "preferences_url": p.preferences_url,
               "view_url": p.view_url}
        for key, slot in self._text_keys:
            values[slot] = _qp_value(raw[key])
        for key, slot in self._html_keys:
            values[slot] = _qp_value(html.escape(raw[key]))
        return [values[x] if isinstance(x, int) else b"" for x in self._pieces]


def prepare(mail: EditionMail, *, message_id_domain: str, one_click: bool = True) -> PreparedMail:
    """Validate the edition's headers (HeaderInjectionError) and build its MIME template.

    ``one_click``: offer RFC 8058 one-click (``List-Unsubscribe-Post``). RFC 8058 allows it only
    with an https unsubscribe URI, so a local trial on http sends the http and mailto links alone.
    """
    for label, value in (("subject", mail.subject), ("list_id", mail.list_id), ("list_name", mail.list_name),
                         ("message_id_domain", message_id_domain)):
        _check(label, value)
    if not _DOT_ATOM.fullmatch(mail.list_id) or len(mail.list_id) > 255:
        raise HeaderInjectionError(f"list_id is not a dotted identifier like 'news.lists.example.org': "
                                   f"{mail.list_id!r}")
    if not _DOMAIN.fullmatch(message_id_domain):
        raise HeaderInjectionError(f"message_id_domain is not a domain: {message_id_domain!r}")
    list_id = mail.list_id.encode()
    list_id = _named("List-Id", mail.list_name, list_id) if mail.list_name else b"<" + list_id + b">"
    boundary = _boundary()
    text = _derive_text(mail.html) if mail.text is None else mail.text
    pieces: list[bytes | int] = [
        _mailbox_header("From", mail.from_addr) + b"To: ", _TO,
        b"\r\n" + _unstructured_header("Subject", mail.subject) + b"Date: ", _DATE,
        b"\r\nMessage-ID: ", _MSGID,
        b"\r\nMIME-Version: 1.0\r\n"
        + (b"" if mail.reply_to is None else _mailbox_header("Reply-To", mail.reply_to))
        + b"List-Id: " + list_id + b"\r\nList-Unsubscribe: ", _UNSUB,
        b"\r\n" + (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" if one_click else b""),
        *_alternative(boundary, text, mail.html),
    ]
    # Adjacent static pieces are merged so render joins as few strings as possible.
    merged: list[bytes | int] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        else:
            merged.append(piece)
    return PreparedMail(merged, message_id_domain, one_click=one_click)


def compose_simple(*, from_addr: str, to_email: str, subject: str, text: str, html: str | None = None,
                   headers: Mapping[str, str] | None = None, message_id_domain: str) -> bytes:
    """A one-off system mail (e.g. a confirmation link), built with the same header and address
    builders as edition copies; HeaderInjectionError on anything that would break a header."""
    _check("subject", subject)
    for label, value in (("message_id_domain", message_id_domain), *(headers or {}).items()):
        _check(label, value)
    if not _DOMAIN.fullmatch(message_id_domain):
        raise HeaderInjectionError(f"message_id_domain is not a domain: {message_id_domain!r}")
    head = [
        _mailbox_header("From", from_addr),
        b"To: " + recipient_address(to_email) + _CRLF,
        _unstructured_header("Subject", subject),
        b"Date: " + format_date().encode() + _CRLF,
        f"Message-ID: <{secrets.token_hex(16)}@{message_id_domain}>".encode() + _CRLF,
        b"MIME-Version: 1.0\r\n",
    ]
    for name, value in (headers or {}).items():
        if not re.fullmatch(r"[!-9;-~]+", name):
            raise HeaderInjectionError(f"header name is not printable ASCII without ':': {name!r}")
        head.append(_unstructured_header(name, value))
    if html is None:
        body = [b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
                _qp(re.sub(r"\r\n?", "\n", text))]
    else:
        body = [piece for piece in _alternative(_boundary(), text, html) if isinstance(piece, bytes)]
    return b"".join(head + body)


def recipient_address(to_email: str) -> bytes:
    """The To address of a system mail as :func:`compose_simple` writes it: its only check that depends
    on the recipient, so a caller can learn whether an address will be refused without composing."""
    return _address("to_email", to_email)


def _boundary() -> bytes:
    # '=_' cannot occur in quoted-printable text, so the boundary can never collide with a body.
    return f"=_lbx_{secrets.token_hex(16)}".encode()


def _alternative(boundary: bytes, text: str, html_body: str) -> list[bytes | int]:
    """The multipart/alternative header and parts; ints are the per-recipient slots of the bodies."""
    part_head = b"--" + boundary + b"\r\nContent-Type: text/%s; charset=utf-8\r\n" \
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    return [
        b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n\r\n' + part_head % b"plain",
        *_body_pieces(text, _TEXT),
        b"\r\n" + part_head % b"html",
        *_body_pieces(html_body, _HTML),
        b"\r\n--" + boundary + b"--\r\n",
    ]
