"""The admin pages: users (create, change role, disable, never yourself) and API keys (shown once, revoked)."""

from __future__ import annotations

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.support.console import PASSWORD, make_user, sign_in, signed_in

Client = AsyncTestClient[Litestar]


class Browsers:
    """Two browsers on one test client (one app, one lifespan): each keeps its own cookies."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.jars = {"admin": httpx.Cookies(), "other": httpx.Cookies()}
        self.current = "admin"

    def use(self, name: str) -> Client:
        """Switch the client to ``name``'s cookies, keeping the current browser's."""
        self.jars[self.current] = httpx.Cookies(self.client.cookies)
        self.client.cookies = httpx.Cookies(self.jars[name])
        self.current = name
        return self.client


async def test_admin_creates_a_user_who_can_sign_in(client: Client, settings: Settings) -> None:
    browsers = Browsers(client)
    token = await signed_in(client, settings, "admin")
    made = await client.post("/console/users", data={"csrf": token, "email": "New@Example.org", "role": "editor",
                                                     "password": PASSWORD})
    assert made.status_code == 303
    page = await client.get("/console/users")
    assert "new@example.org" in page.text
    other = browsers.use("other")
    await sign_in(other, "new@example.org")
    assert "(editor)" in (await other.get("/console/account")).text
    browsers.use("admin")
    weak = await client.post("/console/users", data={"csrf": token, "email": "weak@example.org", "role": "viewer",
                                                      "password": "short"})
    assert weak.status_code == 422
    assert "at least 12 characters" in weak.text
    taken = await client.post("/console/users", data={"csrf": token, "email": "NEW@example.org", "role": "viewer"})
    assert taken.status_code == 409


async def test_changing_a_role_or_disabling_signs_the_user_out(client: Client, settings: Settings) -> None:
    browsers = Browsers(client)
    token = await signed_in(client, settings, "admin")
    editor = await make_user(settings, "ed@example.org", "editor")
    other = browsers.use("other")
    await sign_in(other, "ed@example.org")
    admin = browsers.use("admin")
    changed = await admin.post(f"/console/users/{editor.id}/role", data={"csrf": token, "role": "viewer"})
    assert changed.status_code == 303
    other = browsers.use("other")
    assert (await other.get("/console/account")).status_code == 303  # signed out: sign in again as a viewer
    await sign_in(other, "ed@example.org")
    assert "(viewer)" in (await other.get("/console/account")).text
    admin = browsers.use("admin")
    assert (await admin.post(f"/console/users/{editor.id}/disable", data={"csrf": token})).status_code == 303
    other = browsers.use("other")
    assert (await other.get("/console/account")).status_code == 303
    admin = browsers.use("admin")
    assert (await admin.post(f"/console/users/{editor.id}/enable", data={"csrf": token})).status_code == 303
    await sign_in(browsers.use("other"), "ed@example.org")


async def test_an_admin_cannot_lock_themselves_out(client: Client, settings: Settings) -> None:
    token = await signed_in(client, settings, "admin")
    me = (await client.get("/console/users")).text.split('action="/console/users/')[1].split("/")[0]
    assert (await client.post(f"/console/users/{me}/disable", data={"csrf": token})).status_code == 422
    assert (await client.post(f"/console/users/{me}/role", data={"csrf": token, "role": "viewer"})).status_code == 422
    assert (await client.get("/console/users")).status_code == 200
    assert (await client.post("/console/users/999/disable", data={"csrf": token})).status_code == 404


async def test_an_api_key_is_shown_once_and_revoked(client: Client, settings: Settings) -> None:
    token = await signed_in(client, settings, "admin")
    made = await client.post("/console/api-keys", data={"csrf": token, "name": "intranet",
                                                        "scope": ["subscribers:read", "subscribers:write"]})
    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"
    assert made.headers["referrer-policy"] == "no-referrer"
    secret = made.text.split('id="new-token">')[1].split("<")[0]
    assert secret.startswith("lbk_")
    assert secret not in (await client.get("/console/api-keys")).text
    assert (await client.get("/v1/subscribers", headers={"Authorization": f"Bearer {secret}"})).status_code == 200
    key_id = made.text.split('action="/console/api-keys/')[1].split("/")[0]
    assert (await client.post(f"/console/api-keys/{key_id}/revoke", data={"csrf": token})).status_code == 303
    assert (await client.get("/v1/subscribers", headers={"Authorization": f"Bearer {secret}"})).status_code == 401
    for bad in ({"name": "", "scope": "admin"}, {"name": "x"}, {"name": "x", "scope": "everything"}):
        assert (await client.post("/console/api-keys", data={"csrf": token, **bad})).status_code == 422, bad
