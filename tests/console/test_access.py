"""The console's gate: sign-in, sessions and their cookie, roles, CSRF, idle timeout, revocation, headers."""

from __future__ import annotations

import asyncpg
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from service.console.routes import UnguardedRoute, console_router
from service.settings import Settings
from tests.support.console import PASSWORD, console_client, csrf_token, make_user, sign_in, signed_in

Client = AsyncTestClient[Litestar]


async def test_signed_out_is_sent_to_sign_in_with_next(client: Client) -> None:
    response = await client.get("/console/account?tab=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?next=%2Fconsole%2Faccount%3Ftab%3D1"


async def test_sign_in_sets_a_strict_cookie_and_returns_to_next(client: Client, settings: Settings) -> None:
    await make_user(settings, "Viewer@Example.org", "viewer")
    response = await sign_in(client, "viewer@example.org", next_path="/console/account")
    assert response.headers["location"] == "/console/account"
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "letterbox_console=" in v)
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=lax" in lowered
    assert "secure" in lowered  # the public URL is https
    assert "path=/console" in lowered
    page = await client.get("/console/account")
    assert page.status_code == 200
    assert "viewer@example.org" in page.text
    assert "(viewer)" in page.text


async def test_cookie_is_not_secure_on_a_plain_http_public_url(settings: Settings, clock: object) -> None:
    import msgspec

    from service.app import create_app

    plain = msgspec.structs.replace(settings, public_url="http://127.0.0.1:8000")
    await make_user(settings, "v@example.org", "viewer")
    async with console_client(create_app(plain), "http://127.0.0.1:8000") as http_client:
        response = await sign_in(http_client, "v@example.org")
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "letterbox_console=" in v)
    assert "secure" not in cookie.lower()


async def test_next_never_leaves_the_console(client: Client, settings: Settings) -> None:
    await make_user(settings, "v@example.org", "viewer")
    for target in ("https://evil.example/", "//evil.example/console/", "/console\\@evil", "/v1/lists",
                   "/console/../v1/lists"):
        client.cookies.clear()
        response = await sign_in(client, "v@example.org", next_path=target)
        assert response.headers["location"] == "/console/", target


async def test_pages_carry_the_security_headers(client: Client, settings: Settings) -> None:
    for response in (await client.get("/console/sign-in"), await client.get("/console/account")):
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"


async def test_sign_in_without_csrf_or_from_another_site_is_refused(client: Client, settings: Settings) -> None:
    await make_user(settings, "v@example.org", "viewer")
    page = await client.get("/console/sign-in")
    token = csrf_token(page.text)
    missing = await client.post("/console/sign-in", data={"email": "v@example.org", "password": PASSWORD})
    assert missing.status_code == 403
    forged = await client.post("/console/sign-in", data={"email": "v@example.org", "password": PASSWORD,
                                                          "csrf": token + "x"})
    assert forged.status_code == 403
    cross = await client.post("/console/sign-in", data={"email": "v@example.org", "password": PASSWORD,
                                                         "csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    # Another browser's sign-in token (login CSRF) does not work with this browser's cookie.
    client.cookies.clear()
    await client.get("/console/sign-in")
    stolen = await client.post("/console/sign-in", data={"email": "v@example.org", "password": PASSWORD,
                                                          "csrf": token})
    assert stolen.status_code == 403
    assert "letterbox_console" not in client.cookies


async def test_signed_in_forms_need_the_sessions_token(client: Client, settings: Settings) -> None:
    token = await signed_in(client, settings, "viewer")
    refused = await client.post("/console/sign-out", data={"csrf": "nope"})
    assert refused.status_code == 403
    assert "This form could not be sent" in refused.text
    assert (await client.get("/console/account")).status_code == 200  # still signed in
    out = await client.post("/console/sign-out", data={"csrf": token})
    assert out.status_code == 303
    assert (await client.get("/console/account")).status_code == 303


async def test_a_session_cookie_kept_after_sign_out_no_longer_works(client: Client, settings: Settings) -> None:
    token = await signed_in(client, settings, "viewer")
    kept = client.cookies.get("letterbox_console")
    await client.post("/console/sign-out", data={"csrf": token})
    client.cookies.set("letterbox_console", kept or "", domain="news.example.org", path="/console")
    assert (await client.get("/console/account")).status_code == 303


async def test_forged_session_cookie_is_signed_out(client: Client) -> None:
    client.cookies.set("letterbox_console", "1.forged", domain="news.example.org", path="/console")
    assert (await client.get("/console/account")).status_code == 303


async def test_idle_session_is_signed_out(client: Client, settings: Settings) -> None:
    await signed_in(client, settings, "viewer")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("UPDATE console_sessions SET last_seen_at = now() - interval '29 minutes'")
        assert (await client.get("/console/account")).status_code == 200  # used: the timeout slides
        await conn.execute("UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes'")
    finally:
        await conn.close()
    assert (await client.get("/console/account")).status_code == 303


async def test_disabled_user_is_signed_out_and_cannot_sign_in(client: Client, settings: Settings) -> None:
    await signed_in(client, settings, "editor")
    conn = await asyncpg.connect(settings.database_url)
    try:
        from service.accounts.users import disable_user
        from service.db.queries import load_queries
        from service.db.sql_files import QUERIES_DIR

        async with conn.transaction():
            await disable_user(conn, load_queries(QUERIES_DIR), "editor@example.org")
    finally:
        await conn.close()
    assert (await client.get("/console/account")).status_code == 303
    page = await client.get("/console/sign-in")
    response = await client.post("/console/sign-in", data={"email": "editor@example.org", "password": PASSWORD,
                                                            "csrf": csrf_token(page.text)})
    assert response.status_code == 400
    assert "The email address or password is not right." in response.text


def test_a_console_route_without_a_role_guard_stops_the_start() -> None:
    @get("/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "open to all"

    with pytest.raises(UnguardedRoute, match="forgotten"):
        console_router([forgotten])
async def test_roles_viewer_is_refused_admin_pages(client: Client, settings: Settings) -> None:
    await signed_in(client, settings, "viewer")
    for path in ("/console/users", "/console/api-keys", "/console/audit"):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert "You cannot do this" in response.text




async def test_next_is_escaped_on_the_sign_in_page(client: Client) -> None:
    page = await client.get("/console/sign-in", params={"next": '/console/"><script>alert(1)</script>'})
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&#34;&gt;&lt;script&gt;" in page.text or "&quot;&gt;&lt;script&gt;" in page.text
