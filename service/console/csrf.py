"""CSRF protection for every console form.

Every unsafe request under ``/console`` must carry a hidden ``csrf`` field
whose signed value is bound to the browser: to the session once signed in,
to a random nonce in the sign-in page's own cookie before (so a forged post
cannot sign a victim in to someone else's account either).  A browser that
says the post came from another site (``Sec-Fetch-Site: cross-site``, or a
foreign ``Origin``) is refused whatever it carries.  Templates write the field
with ``{{ csrf_field() }}``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from markupsafe import Markup, escape

from ..subscribers.csrf import same_site
from ..tokens import Purpose, TokenSigner

FIELD = "csrf"
PRE_SESSION_COOKIE = "letterbox_console_signin"
_SESSION, _PRE_SESSION = 1, 2
STATE_KEY = "console_csrf"
"""Where the request's token is kept for ``csrf_field()`` (on the request's state)."""


def session_token(signer: TokenSigner, session_id: int) -> str:
    """The token of every form shown within a session."""
    return signer.sign(Purpose.CONSOLE_CSRF, _SESSION, session_id)


def pre_session_token(signer: TokenSigner, nonce: int) -> str:
    """The token of the sign-in form, bound to the nonce in the sign-in cookie."""
    return signer.sign(Purpose.CONSOLE_CSRF, _PRE_SESSION, nonce)


def new_nonce() -> int:
    """A fresh random nonce for the sign-in cookie."""
    return secrets.randbits(62)


def nonce_from(cookie: str | None) -> int | None:
    """The nonce in a sign-in cookie, or None."""
    if cookie is None or not cookie.isdigit() or len(cookie) > 20:
        return None
    return int(cookie)


def pre_session_cookie(nonce: int, *, secure: bool) -> Cookie:
    """The sign-in page's cookie (an hour is plenty to type a password)."""
    return Cookie(key=PRE_SESSION_COOKIE, value=str(nonce), path="/console", httponly=True, samesite="lax",
                  secure=secure, max_age=3600)


def pre_session_cookie_cleared(*, secure: bool) -> Cookie:
    """Removes the sign-in page's cookie once a session binds the forms instead."""
    return Cookie(key=PRE_SESSION_COOKIE, value="", path="/console", httponly=True, samesite="lax", secure=secure,
                  max_age=0)


def passes(connection: ASGIConnection[Any, Any, Any, Any], presented: str, expected: str | None) -> bool:
    """Whether a post carries the expected token and was not sent from another site's page."""
    if expected is None or not presented or not same_site(connection):
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def csrf_field(context: Mapping[str, Any], /) -> Markup:
    """The template callable ``csrf_field()``: the hidden input every console form carries."""
    token = getattr(context["request"].state, STATE_KEY, None) or ""
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, escape(token))
