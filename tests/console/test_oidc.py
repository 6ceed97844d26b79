"""OpenID Connect sign-in against a real provider (the certified oidc-provider package) on loopback.

The browser's part is played by an httpx client that follows the provider's redirects; the
app's part (discovery, the code exchange, the ID token's checks) talks to the provider over
real HTTP. Failures: a state that is not this browser's, an ID token with another nonce,
an email with no account, a disabled account.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from tests.support.clock import FakeClock
from tests.support.console import console_client, make_user
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, oidc_provider

Client = AsyncTestClient[Litestar]
CALLBACK = "https://news.example.org/console/oidc/callback"


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with oidc_provider(CALLBACK) as running:
        yield running


@pytest.fixture
async def client(settings: Settings, provider: OidcProvider, clock: FakeClock) -> AsyncIterator[Client]:
    configured = msgspec.structs.replace(settings, oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID,
                                         oidc_client_secret=CLIENT_SECRET)
    async with console_client(create_app(configured, clock=clock)) as test_client:
        yield test_client


async def _to_provider(client: Client, next_path: str = "/console/account") -> str:
    """Start a sign-in at the app; the provider's authorization URL it sends the browser to."""
    started = await client.get("/console/oidc/start", params={"next": next_path})
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] and query["nonce"] and query["code_challenge"]
    return location


async def _through_provider(authorize_url: str) -> str:
    """Follow the provider's redirects as a browser would; the callback URL it finally sends us to."""
    async with httpx.AsyncClient() as browser:
        url = authorize_url
        for _ in range(10):
            response = await browser.get(url)
            assert response.status_code in (302, 303), response.text
            url = str(response.url.join(response.headers["location"]))
            if url.startswith(CALLBACK):
                return url
    raise AssertionError("the provider never sent the browser back")


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.slow  # a real provider: a node process
async def test_sign_in_with_the_provider(client: Client, settings: Settings, provider: OidcProvider) -> None:
    await make_user(settings, "dpo@example.org", "admin", password=None)
    provider.login_as("DPO@example.org")
    callback = await _through_provider(await _to_provider(client))
    back = await client.get(_path(callback))
    assert back.status_code == 303, back.text
    assert back.headers["location"] == "/console/account"
    page = await client.get("/console/account")
    assert page.status_code == 200
    assert "dpo@example.org" in page.text and "(admin)" in page.text


@pytest.mark.slow  # a real provider: a node process
async def test_a_state_not_started_by_this_browser_is_refused(client: Client, settings: Settings,
                                                              provider: OidcProvider) -> None:
    await make_user(settings, "dpo@example.org", "admin", password=None)
    provider.login_as("dpo@example.org")
    callback = await _through_provider(await _to_provider(client))
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = urlunsplit(parts._replace(query=urlencode({**query, "state": "someone-elses-state"})))
    refused = await client.get(_path(forged))
    assert refused.status_code == 400
    assert "You could not be signed in" in refused.text
    client.cookies.clear()  # a callback without the flow's cookie (another browser) is refused too
    assert (await client.get(_path(callback))).status_code == 400
    assert (await client.get("/console/account")).status_code == 303


@pytest.mark.slow  # a real provider: a node process
async def test_an_id_token_with_another_nonce_is_refused(client: Client, settings: Settings,
                                                         provider: OidcProvider) -> None:
    await make_user(settings, "dpo@example.org", "admin", password=None)
    provider.login_as("dpo@example.org")
    parts = urlsplit(await _to_provider(client))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    # Same state and PKCE challenge, so only the nonce in the ID token is wrong.
    replayed = urlunsplit(parts._replace(query=urlencode({**query, "nonce": "an-old-nonce"})))
    refused = await client.get(_path(await _through_provider(replayed)))
    assert refused.status_code == 400
    assert (await client.get("/console/account")).status_code == 303


@pytest.mark.slow  # a real provider: a node process
async def test_an_email_without_an_account_is_refused(client: Client, settings: Settings,
                                                      provider: OidcProvider) -> None:
    provider.login_as("stranger@example.org")
    refused = await client.get(_path(await _through_provider(await _to_provider(client))))
    assert refused.status_code == 403
    assert "do not have a console account" in refused.text
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0  # no account was made
    finally:
        await conn.close()
    assert (await client.get("/console/account")).status_code == 303


@pytest.mark.slow  # a real provider: a node process
async def test_a_disabled_account_is_refused(client: Client, settings: Settings, provider: OidcProvider) -> None:
    await make_user(settings, "gone@example.org", "editor", password=None)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("UPDATE users SET disabled = true")
    finally:
        await conn.close()
    provider.login_as("gone@example.org")
    assert (await client.get(_path(await _through_provider(await _to_provider(client))))).status_code == 403


async def test_without_configuration_there_is_no_oidc(settings: Settings) -> None:
    async with console_client(create_app(settings)) as plain:
        assert (await plain.get("/console/oidc/start")).status_code == 404
        assert "organisation's account" not in (await plain.get("/console/sign-in")).text


def test_oidc_settings_come_all_three_or_none() -> None:
    from service.settings import SettingsError, load_settings

    given = {"LETTERBOX_OIDC_ISSUER": "https://login.example.org/tenant/v2.0", "LETTERBOX_OIDC_CLIENT_ID": "c",
             "LETTERBOX_OIDC_CLIENT_SECRET": "s"}
    assert load_settings(given).oidc_issuer == "https://login.example.org/tenant/v2.0"
    with pytest.raises(SettingsError, match="LETTERBOX_OIDC_CLIENT_SECRET"):
        load_settings({k: v for k, v in given.items() if k != "LETTERBOX_OIDC_CLIENT_SECRET"})
    with pytest.raises(SettingsError, match="LETTERBOX_OIDC_ISSUER"):
        load_settings({**given, "LETTERBOX_OIDC_ISSUER": "login.example.org"})
    with pytest.raises(SettingsError, match="LETTERBOX_CONSOLE_IDLE_MINUTES"):
        load_settings({"LETTERBOX_CONSOLE_IDLE_MINUTES": "0"})
