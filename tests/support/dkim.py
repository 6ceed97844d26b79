"""A DKIM key for a test, and the DNS answer that publishes it (dkimpy verifies against it)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

DnsLookup = Callable[..., bytes]


def dkim_key(folder: Path, *, selector: str = "lb1", domain: str = "example.org") -> tuple[Path, DnsLookup]:
    """Write a new RSA-2048 key to ``folder/dkim.pem``; return its path and a ``dnsfunc`` for ``dkim.verify``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = folder / "dkim.pem"
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public = base64.b64encode(key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    published = f"{selector}._domainkey.{domain}.".encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == published, name
        return b"v=DKIM1; k=rsa; p=" + public

    return key_file, dns
