"""Signing in with an email and password, and signing out.

A wrong password, an unknown email and a disabled account get the same page
after the same work (an Argon2id check against a dummy hash when there is no
account), so the form says nothing about who has an account.  Failures are
counted per account and per client address (service/accounts/throttle.py);
while either must wait, the form answers 429 without checking the password.
Failures are returned as pages, not raised, so their count is committed.
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from ..accounts import throttle
from ..accounts.passwords import MAX_LENGTH, verify_password
from ..db.pool import Database
from ..settings import Settings
from ..subscribers.web import client_key, form_text
from ..tokens import TokenSigner
from . import csrf, session
from .access import current_operator, current_session_id, requires_viewer
from .web import HEADERS, render, see_other

PUBLIC = {"console_public": True}
HOME = "/console/"
_WRONG = "The email address or password is not right."
_WAIT = "Too many failed attempts. Wait a few minutes, then try again."


def safe_next(value: object) -> str:
    """Where to go after signing in: a console path only (never another site, nor ``//host``)."""
    if (isinstance(value, str) and value.startswith("/console/") and "\\" not in value and "/.." not in value
            and len(value) < 2000):
        return value
    return HOME


def oidc_enabled(settings: Settings) -> bool:
    """Whether OpenID Connect sign-in is configured."""
    return settings.oidc_issuer is not None


def _form(settings: Settings, next_path: str, *, email: str = "", error: str | None = None,
          status: int = 200) -> Template:
    return render("console/sign_in.html", {"next": next_path, "email": email, "error": error,
                                           "oidc": oidc_enabled(settings)}, status=status)


@get("/sign-in", opt=PUBLIC, include_in_schema=False)
async def sign_in_page(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings], signer: NamedDependency[TokenSigner],
    next_path: Annotated[str | None, Parameter(query="next")] = None,
) -> Template | Redirect:
    """The sign-in form (signed in already: straight to the console)."""
    target = safe_next(next_path)
    if current_operator(request) is not None:
        return see_other(target)
    page = _form(settings, target)
    if getattr(request.state, csrf.STATE_KEY, None) is None:
        nonce = csrf.new_nonce()
        setattr(request.state, csrf.STATE_KEY, csrf.pre_session_token(signer, nonce))
        page.cookies.append(csrf.pre_session_cookie(nonce, secure=settings.public_url.startswith("https://")))
    return page


@post("/sign-in", opt=PUBLIC, include_in_schema=False, status_code=HTTP_303_SEE_OTHER)
async def sign_in(
    request: Request[Any, Any, Any], conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database],
    settings: NamedDependency[Settings], signer: NamedDependency[TokenSigner],
) -> Template | Redirect:
    """Check the email and password; on success open a session and go where the user was going."""
    form = await request.form()
    email = form_text(form.get("email"), 320).strip()
    password = form_text(form.get("password"), MAX_LENGTH + 1)
    target = safe_next(form.get("next"))
    if not email or not password:
        return _form(settings, target, email=email, error="Enter your email address and password.", status=400)
    client = client_key(request)
    if await throttle.blocked(conn, db.q, email, client):
        return _form(settings, target, email=email, error=_WAIT, status=429)
    account = await conn.fetchrow(db.q["user-by-email"], email.lower())
    matched = await verify_password(account["password_hash"] if account else None, password)
    if account is None or not matched or account["disabled"]:
        await throttle.failed(conn, db.q, email, client)
        return _form(settings, target, email=email, error=_WRONG, status=400)
    await throttle.succeeded(conn, db.q, email, client)
    return signed_in(signer, settings, await session.start(conn, db.q, settings, account["id"]), target)


def signed_in(signer: TokenSigner, settings: Settings, session_id: int, target: str) -> Redirect:
    """The answer to a successful sign-in (by password or OpenID Connect): the cookie, and on to ``target``."""
    secure = settings.public_url.startswith("https://")
    return Redirect(
        target, status_code=HTTP_303_SEE_OTHER, headers=HEADERS,
        cookies=[session.cookie(signer, settings, session_id), csrf.pre_session_cookie_cleared(secure=secure)],
    )


@post("/sign-out", guards=[requires_viewer], include_in_schema=False, status_code=HTTP_303_SEE_OTHER)
async def sign_out(request: Request[Any, Any, Any], conn: NamedDependency[asyncpg.Connection],
                   db: NamedDependency[Database], settings: NamedDependency[Settings]) -> Redirect:
    """End this session (the row goes, so the cookie is useless even if kept)."""
    session_id = current_session_id(request)
    if session_id is not None:
        await conn.execute(db.q["console-session-delete"], session_id)
    return Redirect("/console/sign-in", status_code=HTTP_303_SEE_OTHER, headers=HEADERS,
                    cookies=[session.cleared(settings)])


handlers = [sign_in_page, sign_in, sign_out]
