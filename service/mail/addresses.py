"""Addresses as they go on the wire: the one place that decides how an address is sent.

DESIGN.md "International addresses": a domain with an ASCII (IDNA) form is sent
in that form; a non-ASCII local part can only travel with SMTPUTF8 (RFC 6531).
Editions, system mails and the SMTP envelope all take their addresses from here.
"""

from __future__ import annotations

from email.utils import parseaddr

import idna


class UnsendableAddress(ValueError):
    """An address that cannot be put on the wire at all (no '@', a domain IDNA refuses, ...)."""


def ascii_domain(domain: str) -> str:
    """The domain in its ASCII form, lower-cased: ``bücher.example`` → ``xn--bcher-kva.example``."""
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise UnsendableAddress(f"the domain {domain!r} has no ASCII form: {exc}") from exc


def wire_address(address: str) -> str:
    """``local@domain`` with the domain in ASCII; the local part is kept exactly (it is the mailbox's)."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise UnsendableAddress(f"not an address: {address!r}")
    return f"{local}@{ascii_domain(domain)}"


def needs_smtputf8(address: str) -> bool:
    """Whether sending to (or from) ``address`` needs the SMTPUTF8 extension: a non-ASCII local part."""
    return not address.isascii()


def sender_domain(from_addr: str, fallback: str) -> str:
    """The ASCII domain of a From header's address, for Message-IDs and DKIM; ``fallback`` when it has none."""
    domain = parseaddr(from_addr)[1].rpartition("@")[2]
    return ascii_domain(domain) if domain else fallback
