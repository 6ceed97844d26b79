"""DKIM signing of rendered copies (RFC 6376): relaxed/relaxed, rsa-sha256 or ed25519-sha256 (RFC 8463).

dkimpy does RSA in pure Python, about 120 signatures/s for a 2048-bit key, while a delivery
process sends about 1,500 messages/s. So the canonicalisation is done here with ``re`` and
bytes methods (which run in C, not per character in Python) and the signature by OpenSSL
through ``cryptography``. dkimpy is still the independent verifier in the tests.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

# RFC 8058 requires List-Unsubscribe and List-Unsubscribe-Post to be covered by the signature.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
                  b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to")
# Listed once more than present, so a second From added in transit breaks the signature
# instead of being shown to the reader (RFC 6376 section 8.15).
_OVERSIGNED = (b"from",)
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*")

_FIELD_NAME = re.compile(rb"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ':'
# A line break not followed by WSP ends a field; one followed by WSP is folding inside it.
_FIELD_BREAK = re.compile(rb"\r\n(?![ \t])")
_WSP_RUN = re.compile(rb"[ \t]+")
# Runs of WSP other than a lone SP: rewriting a lone SP by itself would cost a substitution per word.
_WSP_TO_COLLAPSE = re.compile(rb"\t[ \t]*| [ \t]+")
# What aiosmtplib (our transport) turns into CRLF before DATA; we sign the message as it travels.
_LINE_END = re.compile(rb"\r\n|\r|\n")
_LINE = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters, CRLF excluded
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_PROBE = b"letterbox dkim key check"
_SIGNED_SET = frozenset(SIGNED_HEADERS)


def _canonical_value(value: bytes) -> bytes:
    """Relaxed header value (RFC 6376 3.4.2): unfolded, WSP runs as one SP, no WSP at either end."""
    value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:  # most values have nothing to collapse: skip the regex
        value = _WSP_RUN.sub(b" ", value)
    return value.strip(b" \t")


def _canonical_lines(text: bytes) -> bytes:
    """Relaxed body lines (RFC 6376 3.4.4) of whole CRLF lines: WSP runs as one SP, none at a line's end.

    The ``in`` tests skip the regular expression for the usual text, which has nothing to collapse.
    """
    if b"\t" in text or b"  " in text:
        text = _WSP_TO_COLLAPSE.sub(b" ", text)
    if b" \r\n" in text:  # after collapsing, trailing WSP is exactly one SP
        text = text.replace(b" \r\n", b"\r\n")
    return text


def body_hash(canonical_parts: Sequence[bytes]) -> bytes:
    """The ``bh=`` value (base64 SHA-256) of a relaxed body given as the canonical lines of its parts,
    in order: the empty lines at its end dropped and a final CRLF kept unless it is empty (RFC 6376 3.4.4)."""
    last = len(canonical_parts) - 1
    # Every CR and LF is part of a CRLF here, so rstrip drops whole trailing empty lines.
    while last >= 0 and not canonical_parts[last].rstrip(b"\r\n"):
        last -= 1
    digest = hashlib.sha256()
    if last >= 0:  # an empty body hashes as nothing, without the CRLF (as in dkimpy)
        for part in canonical_parts[:last]:
            digest.update(part)
        digest.update(canonical_parts[last].rstrip(b"\r\n") + b"\r\n")
    return base64.b64encode(digest.digest())


class BodyPieces:
    """Relaxed bodies of copies assembled from an edition's shared pieces and each copy's values
    (see :meth:`service.mail.compose.PreparedMail.render_copy`): a shared piece is canonicalised
    once, not for every copy. The relaxed form works line by line, and every body piece of a
    composed copy is whole lines, so the canonical body is the canonical pieces, in order."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        # id() of a shared piece -> (the piece, kept alive so that its id is not reused; its form).
        self._shared: dict[int, tuple[bytes, bytes]] = {}
        self._forms: dict[int, bytes] = {}  # id() of a shared piece's form -> that form

    def split(self, pieces: Sequence[bytes], shared: Sequence[bool]) -> tuple[bytes, list[bytes]] | None:
        """The header fields (no final CRLF) of ``b"".join(pieces)`` and its body's relaxed lines, part
        by part (see :func:`body_hash`), as :meth:`DkimSigner.header` would work them out. A shared
        piece's form is the same bytes object for every copy (see :meth:`is_shared`). None when the
        pieces are not laid out as a composed copy's are: then sign the joined message."""
        for index, piece in enumerate(pieces):
            end = piece.find(b"\r\n\r\n") if shared[index] else -1
            if end >= 0:
                break
            if piece.endswith(b"\r") or piece.endswith(b"\r\n"):  # a blank line could straddle two pieces
                return None
        else:
            return None
        fields = b"".join([*pieces[:index], piece[:end]])
        if fields.startswith(b"\r\n") or not fields:
            return None
        body: list[bytes] = []
        for n in range(index, len(pieces)):
            whole = pieces[n]
            piece = whole[end + 4:] if n == index else whole
            if piece and not piece.endswith(b"\r\n"):
                return None  # not whole lines: a WSP run or a line's end could straddle two pieces
            if not shared[n]:
                body.append(_canonical_lines(piece))
                continue
            known = self._shared.get(id(whole))
            if known is None or known[0] is not whole:
                if len(self._shared) >= self._limit:
                    self._shared.clear()
                    self._forms.clear()
                known = self._shared[id(whole)] = (whole, _canonical_lines(piece))
                self._forms[id(known[1])] = known[1]
            body.append(known[1])
        return fields, body

    def is_shared(self, part: bytes) -> bool:
        """Whether ``part`` (from :meth:`split`) is a shared piece's form, the same object in every copy."""
        return self._forms.get(id(part)) is part


def _wire_form(message: bytes) -> bytes:
    """``message`` as aiosmtplib transmits it: bare CR and bare LF become CRLF, and it ends in CRLF.

    Signing any other form would produce a signature that breaks on the way. Counting is
    much cheaper than a regular expression, and composed copies always pass unchanged.
    """
    crlf = message.count(b"\r\n")
    if message.count(b"\r") != crlf or message.count(b"\n") != crlf:
        message = _LINE_END.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message


def _fold(pieces: list[tuple[bytes, bytes]], column: int) -> tuple[bytes, int]:
    """Join (separator, token) pairs, starting a new line before a token that would pass ``_LINE``.

    Only where FWS is allowed between tokens, so a token longer than a line stays whole.
    Returns the text and the column it ends at.
    """
    out: list[bytes] = []
    for separator, token in pieces:
        if column + len(separator) + len(token) > _LINE and column > 1:
            out.append(b"\r\n ")
            column = 1
        else:
            out.append(separator)
            column += len(separator)
        out.append(token)
        column += len(token)
    return b"".join(out), column


def _load_key(pem: bytes, what: str) -> tuple[bytes, Callable[[bytes], bytes], Callable[[bytes, bytes], None]]:
    """The a= algorithm, a signing function and a verifying function (raises InvalidSignature) for ``pem``."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:  # e.g. an encrypted key: the service has no passphrase to give
        raise ValueError(f"{what} cannot be used: {exc}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        # OpenSSL also refuses RSA keys whose parts do not belong together; tell that apart from
        # garbage by parsing once more without the consistency check.
        try:
            serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ValueError(f"{what} is not a PEM RSA or Ed25519 private key (PKCS#1 or PKCS#8)") from exc
        raise ValueError(f"{what} is inconsistent: its RSA parameters do not belong together") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:  # RFC 8301: verifiers must not accept shorter keys
            raise ValueError(f"{what} has {key.key_size} bits; at least 1024 are needed, 2048 recommended")
        rsa_key, rsa_public = key, key.public_key()
        return (b"rsa-sha256", lambda data: rsa_key.sign(data, _PKCS1, _SHA256),
                lambda signature, data: rsa_public.verify(signature, data, _PKCS1, _SHA256))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        # RFC 8463: PureEdDSA over the SHA-256 hash of the data, not over the data itself.
        ed_key, ed_public = key, key.public_key()
        return (b"ed25519-sha256", lambda data: ed_key.sign(hashlib.sha256(data).digest()),
                lambda signature, data: ed_public.verify(signature, hashlib.sha256(data).digest()))
    raise ValueError(f"{what} is of an unsupported type ({type(key).__name__}); DKIM signs only with RSA "
                     "or Ed25519 keys")


def signable_domain(domain: str) -> bool:
    """Whether ``domain`` can be a DKIM ``d=`` (a dotted DNS name)."""
    return bool(_DOMAIN.fullmatch(domain))


class DkimSigner:
    """Signs messages for one domain and selector with one RSA or Ed25519 key, checked at construction."""

    def __init__(self, *, domain: str, selector: str, private_key_pem: bytes) -> None:
        """Validate domain, selector and key; ValueError says what is wrong with which one."""
        if not _DOMAIN.fullmatch(domain):
            raise ValueError(f"DKIM domain {domain!r} is not a DNS domain name")
        if not _SELECTOR.fullmatch(selector):
            raise ValueError(f"DKIM selector {selector!r} is not a DNS label")
        self.domain = domain
        self.selector = selector
        what = f"DKIM private key for selector {selector!r} of {domain!r}"
        self._algorithm, self._sign, verify = _load_key(private_key_pem, what)
        # Fail now, not on the first message, if the backend cannot make a signature that verifies.
        try:
            verify(self._sign(_PROBE), _PROBE)
        except InvalidSignature as exc:
            raise ValueError(f"{what} is inconsistent: a test signature does not verify") from exc
        self._start_tags()

    def _start_tags(self) -> None:
        # Everything before t= is the same in every signature.
        self._head, self._column = _fold(
            [(b" ", b"v=1;"), (b" ", b"a=" + self._algorithm + b";"), (b" ", b"c=relaxed/relaxed;"),
             (b" ", b"d=" + self.domain.encode() + b";"), (b" ", b"s=" + self.selector.encode() + b";")],
            len(b"DKIM-Signature:"))
        self._last_tags: tuple[tuple[int, tuple[bytes, ...]], bytes, bytes] = ((-1, ()), b"", b"")

    def for_domain(self, domain: str) -> DkimSigner:
        """The same key and selector signing for ``d=domain``, without loading and checking the
        key once more: an RSA key's consistency check costs a good part of a second."""
        if not _DOMAIN.fullmatch(domain):
            raise ValueError(f"DKIM domain {domain!r} is not a DNS domain name")
        signer = copy.copy(self)
        signer.domain = domain
        signer._start_tags()
        return signer

    def _tags(self, timestamp: int, names: tuple[bytes, ...]) -> tuple[bytes, bytes]:
        """The folded header up to h=, and its relaxed form; the same for all messages of one second."""
        cached = self._last_tags  # read once: another thread may replace it meanwhile
        if cached[0] != (timestamp, names):
            pieces = [(b" ", b"t=%d;" % timestamp)] + [(b"", name + b":") for name in names]
            pieces[1] = (b" ", b"h=" + pieces[1][1])
            pieces[-1] = (pieces[-1][0], pieces[-1][1][:-1] + b";")
            tail, _ = _fold(pieces, self._column)
            head = b"DKIM-Signature:" + self._head + tail
            canonical = b"dkim-signature:" + _canonical_value(head[len(b"DKIM-Signature:"):])
            cached = self._last_tags = ((timestamp, names), head, canonical)
        return cached[1], cached[2]

    @classmethod
    def from_file(cls, *, domain: str, selector: str, key_file: str) -> DkimSigner:
        """Load the PEM key from ``key_file``; ValueError (with the path) when it is unusable."""
        try:
            pem = Path(key_file).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read DKIM key file {key_file!r}: {exc.strerror}") from exc
        try:
            return cls(domain=domain, selector=selector, private_key_pem=pem)
        except ValueError as exc:
            raise ValueError(f"{key_file}: {exc}") from exc

    def sign(self, message: bytes) -> bytes:
        """Return ``message`` with a DKIM-Signature header prepended (relaxed/relaxed).

        A message with bare CR or LF line breaks, or without a final CRLF, is returned in the
        CRLF form it is signed (and transmitted) in. ValueError when it cannot be signed: a
        header line that is not a field, or no From field.
        """
        message = _wire_form(message)
        return self.header(message) + message

    def header(self, message: bytes) -> bytes:
        """The DKIM-Signature field (with its CRLF) for a message whose line breaks are all CRLF
        and that ends in one, as composed copies are; ValueError as for :meth:`sign`.

        Safe to call from several threads at once.
        """
        if message.startswith(b"\r\n"):
            fields, body = b"", message[2:]
        else:
            end = message.find(b"\r\n\r\n")
            fields, body = (message[:-2], b"") if end < 0 else (message[:end], message[end + 4:])
        return self.signed_header(fields, body_hash([_canonical_lines(body)]))

    def signed_header(self, fields: bytes, body_hash: bytes) -> bytes:
        """The DKIM-Signature field for a message with these header ``fields`` (CRLF between them,
        none after the last) and this ``bh=`` value (see :func:`body_hash`); ValueError as for :meth:`sign`."""
        present: dict[bytes, list[bytes]] = {}
        for field in _FIELD_BREAK.split(fields) if fields else ():
            name, colon, value = field.partition(b":")
            name = name.rstrip(b" \t")  # obsolete syntax allows WSP before the colon
            if not colon or not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"cannot DKIM-sign message: header line {field[:60]!r} is not a 'Name: value' field")
            name = name.lower()
            if name in _SIGNED_SET:
                present.setdefault(name, []).append(value)
        if b"from" not in present:
            raise ValueError("cannot DKIM-sign message: it has no From field, which DKIM must sign (RFC 6376 5.4)")

        # A verifier takes the instances of a name listed n times from the bottom up (RFC 6376 5.4.2).
        names: list[bytes] = []
        signed: list[bytes] = []
        for name in SIGNED_HEADERS:
            for value in reversed(present.get(name, ())):
                names.append(name)
                signed += (name, b":", _canonical_value(value), b"\r\n")
        names += [name for name in _OVERSIGNED if name in present]

        head, canonical_head = self._tags(int(time.time()), tuple(names))
        # bh= and b= start lines of their own; b= last, as its value is removed before hashing.
        # RFC 6376 3.7: the signature header itself, with an empty b= and without the final CRLF,
        # is hashed last. Unfolded, the CRLF before each of them is gone and its SP stays.
        signed += (canonical_head, b" bh=", body_hash, b"; b=")
        signature = base64.b64encode(self._sign(b"".join(signed)))
        header = head + b"\r\n bh=" + body_hash + b";\r\n b="
        first = _LINE - len(b" b=")
        lines = [signature[:first]] + [signature[i:i + _LINE - 1] for i in range(first, len(signature), _LINE - 1)]
        return header + b"\r\n ".join(lines) + b"\r\n"


class KeyRing:
    """One key and selector, signing for any ``d=`` domain; the key is loaded and checked once."""

    def __init__(self, selector: str, key_pem: bytes) -> None:
        """ValueError when the selector or the key is unusable."""
        self._first = DkimSigner(domain="example.org", selector=selector, private_key_pem=key_pem)
        self._signers: dict[str, DkimSigner] = {}

    def signer_for(self, domain: str) -> DkimSigner:
        """The signer for ``d=domain`` (the edition's From domain)."""
        signer = self._signers.get(domain)
        if signer is None:
            signer = self._signers[domain] = self._first.for_domain(domain)
        return signer

    def sign(self, message: bytes, domain: str) -> bytes:
        """Prepend a DKIM-Signature for ``domain``."""
        return self.signer_for(domain).sign(message)
