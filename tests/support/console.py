"""Signing in to the console in tests: accounts made by the CLI's own code (with a light hash), sign-in through
the real form.

    await make_user(settings, "ed@example.org", "editor")
    page = await sign_in(client, "ed@example.org")   # the client now holds the session cookie
    await client.post("/console/…", data={"csrf": csrf_token(page), …})

``signed_in(client, settings, role)`` does both with a fresh address per role.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.accounts.passwords import check_strength
from service.accounts.users import User, create_user
from service.db.pool import shipped_sql
from service.settings import Settings

PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts" / "console"
"""Where browser tests save each console page's screenshot."""
AXE = ROOT / "tests" / "support" / "node" / "node_modules" / "axe-core" / "axe.min.js"
Client = AsyncTestClient[Litestar]
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


@asynccontextmanager
async def console_client(app: Litestar, base_url: str = "https://news.example.org") -> AsyncIterator[Client]:
    """A test client with the app's lifespan running that answers redirects rather than following them."""
    async with AsyncTestClient(app, base_url=base_url) as client:
        client.follow_redirects = False
        yield client


async def make_user(settings: Settings, email: str, role: str, password: str | None = PASSWORD, *,
                    light: bool = True) -> User:
    """Create an account as ``letterbox user create`` does, with a light hash of ``password`` unless told not to.

    Argon2 verifies at the cost written in the hash itself, so an account hashed at the lowest cost
    signs in through the real form and the real check without the production cost (a fifth of a
    second of CPU per hash, twice per test).  Accounts made by the CLI or the users page, and the
    tests that compare sign-in times (``light=False``), keep the production cost.
    """
    if password is not None:
        check_strength(password)
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            if not light:
                return await create_user(conn, shipped_sql()[1], email, role, password)
            user = await create_user(conn, shipped_sql()[1], email, role, None)
            if password is not None:
                await conn.execute("UPDATE users SET password_hash = $1 WHERE id = $2", _light_hash(password), user.id)
            return user
    finally:
        await conn.close()


@functools.cache
def _light_hash(password: str) -> str:
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(password)


def csrf_token(html: str) -> str:
    """The hidden ``csrf`` field of a console page's first form."""
    found = _CSRF.search(html)
    assert found, "no csrf field on the page"
    return found[1]


async def sign_in(client: Any, email: str, password: str = PASSWORD, *, next_path: str | None = None) -> httpx.Response:
    """Sign in through the form (GET then POST, cookies kept by the client); returns the POST's response.

    Raises AssertionError unless the form answered 303 with a session cookie.
    """
    form_page = await client.get("/console/sign-in", params={"next": next_path} if next_path else None,
                                 follow_redirects=False)
    assert form_page.status_code == 200, form_page.text
    response: httpx.Response = await client.post(
        "/console/sign-in", data={"email": email, "password": password, "csrf": csrf_token(form_page.text),
                                  "next": next_path or "/console/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return response


async def signed_in(client: Any, settings: Settings, role: str, email: str | None = None) -> str:
    """Create a user with ``role`` and sign the client in as them; returns a CSRF token for the session's forms."""
    address = email or f"{role}@example.org"
    await make_user(settings, address, role)
    await sign_in(client, address)
    page = await client.get("/console/account", follow_redirects=False)
    assert page.status_code == 200, page.text
    return csrf_token(page.text)


async def check_page(page: Any, name: str) -> None:
    """In a Playwright page (a context with ``bypass_csp``, so axe-core can be injected): save a screenshot,
    fail on axe-core's serious and critical violations, and on sideways scrolling."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if not await page.evaluate("typeof axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{name}: {bad}"
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"
