"""DKIM signing of rendered copies (RFC 6376): rsa-sha256, relaxed/relaxed, via dkimpy."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dkim
from dkim.crypto import (
    RSASSA_PKCS1_v1_5_sign,
    RSASSA_PKCS1_v1_5_verify,
    UnparsableKeyError,
    parse_pem_private_key,
)

# RFC 8058 requires List-Unsubscribe and List-Unsubscribe-Post to be covered by the signature.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
                  b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to")
# Listed once more than present, so a second From added in transit breaks the signature
# instead of being shown to the reader (RFC 6376 section 8.15).
_OVERSIGNED = (b"from",)
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*")


class DkimSigner:
    """Signs messages for one domain and selector with one RSA key, checked at construction."""

    def __init__(self, *, domain: str, selector: str, private_key_pem: bytes) -> None:
        """Validate domain, selector and key; ValueError says what is wrong with which one."""
        if not _DOMAIN.fullmatch(domain):
            raise ValueError(f"DKIM domain {domain!r} is not a DNS domain name")
        if not _SELECTOR.fullmatch(selector):
            raise ValueError(f"DKIM selector {selector!r} is not a DNS label")
        self.domain = domain
        self.selector = selector
        self._domain = domain.encode()
        self._selector = selector.encode()
        self._pem = private_key_pem
        what = f"DKIM private key for selector {selector!r} of {domain!r}"
        try:
            key = parse_pem_private_key(private_key_pem)
        except (UnparsableKeyError, ValueError, IndexError, TypeError) as exc:
            raise ValueError(f"{what} is not a PEM RSA private key (PKCS#1 or PKCS#8): {exc}") from exc
        bits = int(key["modulus"]).bit_length()
        if bits < 1024:  # RFC 8301: verifiers must not accept shorter keys
            raise ValueError(f"{what} has {bits} bits; at least 1024 are needed, 2048 recommended")
        # A key whose parts do not belong together parses fine but signs garbage: find out now.
        probe = hashlib.sha256(b"letterbox dkim key check")
        public = {"modulus": key["modulus"], "publicExponent": key["publicExponent"]}
        if not RSASSA_PKCS1_v1_5_verify(probe, bytes(RSASSA_PKCS1_v1_5_sign(probe, key)), public):
            raise ValueError(f"{what} is inconsistent: a test signature does not verify")

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
        """Return ``message`` with a DKIM-Signature header prepended (rsa-sha256, relaxed/relaxed)."""
        end = message.find(b"\r\n\r\n")
        present = {name.lower() for name in _FIELD_NAME.findall(message[: end if end >= 0 else len(message)])}
        include = [name for name in SIGNED_HEADERS if name in present]
        include += [name for name in _OVERSIGNED if name in present]
        try:
            signature: bytes = dkim.sign(message, self._selector, self._domain, self._pem,
                                         canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
        except dkim.DKIMException as exc:
            raise ValueError(f"cannot DKIM-sign message: {exc}") from exc
        return signature + message
