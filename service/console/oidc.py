"""Signing in with OpenID Connect (Microsoft Entra ID, Google, any provider), when configured.

``GET /console/oidc/start`` keeps a fresh ``state``, ``nonce`` and PKCE
verifier in a signed, HttpOnly cookie (10 minutes, ``/console/oidc`` only)
and sends the browser to the provider; ``GET /console/oidc/callback`` checks
the state against that cookie, exchanges the code and verifies the ID token
(service/console/oidc_client.py).  The verified email must belong to an
existing, enabled account: an unknown email is refused, never made into an
account, so an admin decides who gets in and with which role.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import asyncpg
import httpx
import structlog
from litestar import Request, get
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from ..db.pool import Database
from ..settings import Settings
from ..tokens import Purpose, TokenInvalid, TokenSigner
from . import session
from .oidc_client import Flow, OidcFailed, authorization_url, discover, exchange, new_flow, verified_email
from .signin import PUBLIC, safe_next, signed_in
from .web import HEADERS, ConsolePageError, render

log = structlog.get_logger(__name__)

COOKIE = "letterbox_console_oidc"
PATH = "/console/oidc"
MAX_AGE = 600


class OidcRefused(ConsolePageError):
    """The sign-in with the organisation's account did not succeed."""

    status_code = 400
    title = "You could not be signed in"


class OidcNotConfigured(ConsolePageError):
    """OpenID Connect is not set up on this server."""

    status_code = 404
    title = "Page not found"


def _redirect_uri(settings: Settings) -> str:
    return f"{settings.public_url}{PATH}/callback"


def _configured(settings: Settings) -> tuple[str, str, str]:
    if settings.oidc_issuer is None or settings.oidc_client_id is None or settings.oidc_client_secret is None:
        raise OidcNotConfigured("Sign-in with an organisation's account is not set up here.")
    return settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret


def _flow_cookie(settings: Settings, value: str, max_age: int) -> Cookie:
    return Cookie(key=COOKIE, value=value, path=PATH, httponly=True, samesite="lax", max_age=max_age,
                  secure=settings.public_url.startswith("https://"))


@get("/oidc/start", opt=PUBLIC, include_in_schema=False)
async def oidc_start(settings: NamedDependency[Settings], signer: NamedDependency[TokenSigner],
                     next_path: Annotated[str | None, QueryParameter(name="next")] = None) -> Redirect:
    """Leave for the provider, remembering this flow in a signed cookie."""
    issuer, client_id, _ = _configured(settings)
    flow = new_flow(safe_next(next_path))
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            provider = await discover(client, issuer)
    except OidcFailed as exc:
        log.warning("oidc_unavailable", reason=str(exc))
        raise OidcRefused("The sign-in service could not be reached. Try again later, or sign in with your "
                          "password.") from exc
    cookie = _flow_cookie(settings, signer.sign_value(Purpose.CONSOLE_OIDC, flow), MAX_AGE)
    return Redirect(authorization_url(provider, client_id, _redirect_uri(settings), flow), status_code=303,
                    headers=HEADERS, cookies=[cookie])


@get("/oidc/callback", opt=PUBLIC, include_in_schema=False)
async def oidc_callback(
    request: Request[Any, Any, Any], conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database],
    settings: NamedDependency[Settings], signer: NamedDependency[TokenSigner],
    code: Annotated[str | None, QueryParameter(name="code", max_length=4000)] = None,
    returned_state: Annotated[str | None, QueryParameter(name="state", max_length=500)] = None,
    error: Annotated[str | None, QueryParameter(name="error", max_length=200)] = None,
) -> Redirect | Template:
    """Back from the provider: check the state, the code and the ID token, then open a session."""
    issuer, client_id, client_secret = _configured(settings)
    flow = _read_flow(signer, request.cookies.get(COOKIE))
    if flow is None or returned_state is None or not hmac.compare_digest(returned_state, flow.state):
        raise OidcRefused("This sign-in was not started here or took too long. Start again from the sign-in page.")
    if error is not None or code is None:
        raise OidcRefused("The sign-in service did not sign you in. Start again, or sign in with your password.")
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            provider = await discover(client, issuer)
            claims = await exchange(client, provider, client_id, client_secret, _redirect_uri(settings), code, flow)
    except OidcFailed as exc:
        log.warning("oidc_refused", reason=str(exc))
        raise OidcRefused("The sign-in service's answer could not be trusted. Start again from the sign-in "
                          "page.") from exc
    email = verified_email(claims)
    account = await conn.fetchrow(db.q["user-by-email"], email) if email else None
    if account is None or account["disabled"]:
        log.info("oidc_no_account", known=account is not None)
        page = render("console/error.html", {
            "title": "You do not have a console account",
            "message": f"{email or 'Your account'} may not use the console. Ask an administrator to add you.",
        }, status=403)
        page.cookies.append(_flow_cookie(settings, "", 0))
        return page
    response = signed_in(signer, settings, await session.start(conn, db.q, settings, account["id"]), flow.next)
    response.cookies.append(_flow_cookie(settings, "", 0))
    return response


def _read_flow(signer: TokenSigner, cookie: str | None) -> Flow | None:
    if not cookie:
        return None
    try:
        return signer.verify_value(Purpose.CONSOLE_OIDC, cookie, Flow, max_age=MAX_AGE)
    except TokenInvalid:  # forged, for something else, or older than the flow may take
        return None


handlers = [oidc_start, oidc_callback]
