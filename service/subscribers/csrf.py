"""CSRF protection for the public forms that a plain browser form passes without JavaScript or cookies.

Two checks, either of which refuses a forged post:

* a signed, timed hidden field (``csrf``) that only a page we served carries,
  bound to the form it came from (and, on the preferences page, to the
  person), so a token from one form does not work on another;
* the browser's own word: a ``Sec-Fetch-Site: cross-site`` post comes from
  another site's page, whatever it carries.  A browser that sends no
  ``Sec-Fetch-Site`` but an ``Origin`` (older Safari, some embedded browsers)
  is judged by that: it must be ``LETTERBOX_PUBLIC_URL``'s origin or the
  request's own host (a local trial reached by another name); ``Origin: null``
  (a sandboxed frame, a cross-site redirect) is refused.  With neither header
  (old clients) the token alone decides.

The confirm and unsubscribe buttons need neither: their signed link is the
secret, and RFC 8058 forbids asking a mail client for more.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection

from ..runtime import runtime_of
from ..tokens import Purpose, TokenInvalid, TokenSigner

FIELD = "csrf"
MAX_AGE_SECONDS = 24 * 3600


class Form(IntEnum):
    """Which form a token belongs to."""

    SUBSCRIBE = 1
    PREFERENCES = 2


def issue(signer: TokenSigner, form: Form, subject: int = 0) -> str:
    """A token for one rendering of ``form`` (``subject``: the person, for the preferences page)."""
    return signer.sign(Purpose.CSRF, int(form), subject)


def passes(
    signer: TokenSigner, token: str, form: Form, subject: int = 0, *, request: ASGIConnection[Any, Any, Any, Any]
) -> bool:
    """Whether a post carries a fresh token for this form and did not come from another site."""
    if not token or not same_site(request):
        return False
    try:
        fields = signer.verify(Purpose.CSRF, token, max_age=MAX_AGE_SECONDS)
    except TokenInvalid:  # forged, for another form, or expired
        return False
    return fields == (int(form), subject)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_site(request: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the browser's headers place the post on our own site (see the module's docstring)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site != "cross-site"
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = _host_port(runtime_of(request.app.state).settings.public_url)
    return (found := _host_port(origin)) is not None and (found == own or _is_request_host(found, request))


def _host_port(url: str) -> tuple[str, int] | None:
    """(host, port) of an origin or URL, the port defaulted by scheme; None when it is no http(s) origin."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


def _is_request_host(origin: tuple[str, int], request: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the origin names the host and port the request was sent to (Host, or the scheme's default port)."""
    host = urlsplit(f"//{request.headers.get('host', '')}")
    try:
        port = host.port or _DEFAULT_PORTS.get(request.scope["scheme"])
    except ValueError:
        return False
    return host.hostname is not None and (host.hostname.lower(), port) == origin
