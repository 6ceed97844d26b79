"""Where event messages may go: http(s) URLs without credentials, on public addresses only.

Server-side request forgery: whoever registers an endpoint could otherwise make the
worker post to the cloud's metadata service, the database or anything else on the
private network.  Unless ``LETTERBOX_EVENT_ALLOW_PRIVATE`` is set, an endpoint is refused
when its host is, or resolves to, an address that is not public, and every connection
checks again (a name can be pointed elsewhere after it was registered).  The sender
connects to the very address it checked (service/events/http.py), so a second lookup
cannot answer differently.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Final
from urllib.parse import urlsplit

RESOLVE_SECONDS: Final = 5.0
ALLOW_HINT: Final = "set LETTERBOX_EVENT_ALLOW_PRIVATE=true to allow private networks"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_UNIQUE_LOCAL: Final = ipaddress.ip_network("fc00::/7")


class AddressRefused(ValueError):
    """Events may not go to this URL or address; the message says why, in words for an operator."""


def check_url(url: str, *, allow_private: bool) -> tuple[str, int]:
    """The host and port of an endpoint URL events may be posted to; :class:`AddressRefused` otherwise."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise AddressRefused("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # brackets that hold no IPv6 address: "https://[abc/"
        raise AddressRefused(f"the host is not valid ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise AddressRefused("only http and https URLs can receive events")
    if parts.scheme == "http" and not allow_private:
        raise AddressRefused(f"events are posted over https only ({ALLOW_HINT} and plain http)")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("put no user name or password in the URL: receivers check the signature instead")
    try:
        port = parts.port
    except ValueError as exc:
        raise AddressRefused("the port is not a number from 0 to 65535") from exc
    if not parts.hostname:
        raise AddressRefused("the URL names no host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refusal(address: IPAddress) -> str | None:
    """Why events may not go to ``address`` ("a loopback address", …), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address carried inside IPv6 is judged as itself.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return refusal(embedded)
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _UNIQUE_LOCAL:
        return "a unique-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order; :class:`AddressRefused` when none."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise AddressRefused(f"{host} does not resolve to an address") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in found))


async def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses of ``host``, every one of them public unless private ones are allowed."""
    addresses = await resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = refusal(ipaddress.ip_address(address))
            if reason is not None:
                named = f"{address} is" if address == host else f"{host} resolves to {address},"
                raise AddressRefused(f"{named} {reason}: events go to public addresses only ({ALLOW_HINT})")
    return addresses
