"""The event-endpoints API: secrets shown once, listings without them, deletes, bad input,
and the server-side request forgery guard at creation."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.auth import generate_key
from service.db.pool import Database
from service.events.addresses import refusal
from service.settings import Settings
from tests.conftest import replace_settings
from tests.events.conftest import Client, Headers, register
from tests.support.clock import FakeClock


async def test_the_secret_is_shown_once_and_never_listed(client: Client, admin_headers: Headers) -> None:
    created = await register(client, admin_headers, "http://127.0.0.1:9/hook",
                             ["subscriber.confirmed", "complaint", "complaint"], description="CRM")
    assert created["events"] == ["subscriber.confirmed", "complaint"], "a repeated type is kept once"
    assert created["description"] == "CRM" and created["url"] == "http://127.0.0.1:9/hook"
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    other = await register(client, admin_headers, "http://127.0.0.1:9/other")
    assert other["secret"] != secret

    listed = await client.get("/v1/event-endpoints", headers=admin_headers)
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["items"]] == [created["id"], other["id"]]
    assert all("secret" not in e for e in listed.json()["items"])
    assert secret not in listed.text and other["secret"] not in listed.text
    shown = await client.get(f"/v1/event-endpoints/{created['id']}/attempts", headers=admin_headers)
    assert shown.json() == {"items": [], "next_cursor": None} and secret not in shown.text


async def test_listing_pages_with_a_cursor(client: Client, admin_headers: Headers) -> None:
    ids = [(await register(client, admin_headers, f"http://127.0.0.1:9/{n}"))["id"] for n in range(3)]
    first = (await client.get("/v1/event-endpoints?limit=2", headers=admin_headers)).json()
    assert [e["id"] for e in first["items"]] == ids[:2] and first["next_cursor"]
    second = (await client.get(f"/v1/event-endpoints?limit=2&cursor={first['next_cursor']}",
                               headers=admin_headers)).json()
    assert [e["id"] for e in second["items"]] == ids[2:] and second["next_cursor"] is None
    wrong = await client.get(f"/v1/subscribers?cursor={first['next_cursor']}", headers=admin_headers)
    assert wrong.status_code == 422, "one listing's cursor is refused by another"


async def test_delete_removes_the_endpoint(client: Client, admin_headers: Headers) -> None:
    created = await register(client, admin_headers, "http://127.0.0.1:9/hook")
    assert (await client.delete(f"/v1/event-endpoints/{created['id']}", headers=admin_headers)).status_code == 204
    assert (await client.get("/v1/event-endpoints", headers=admin_headers)).json()["items"] == []
    again = await client.delete(f"/v1/event-endpoints/{created['id']}", headers=admin_headers)
    assert again.status_code == 404 and again.headers["content-type"].startswith("application/problem+json")
    gone = await client.get(f"/v1/event-endpoints/{created['id']}/attempts", headers=admin_headers)
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"url": "http://127.0.0.1:9/hook", "events": ["subscriber.deleted"]}, "events"),
        ({"url": "http://127.0.0.1:9/hook", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/hook"}, "events"),
        ({"url": "ftp://127.0.0.1/hook", "events": ["complaint"]}, "url"),
        ({"url": "http://user:pw@127.0.0.1:9/hook", "events": ["complaint"]}, "password"),
        ({"url": "http://127.0.0.1:99999/hook", "events": ["complaint"]}, "port"),
        ({"url": "http:///hook", "events": ["complaint"]}, "no host"),
        ({"url": "http://127.0.0.1:9/a b", "events": ["complaint"]}, "spaces"),
        # urlsplit's own refusals (brackets that hold no IPv6 address) were a 500.
        ({"url": "https://[abc/hook", "events": ["complaint"]}, "host is not valid"),
        ({"url": "https://[zz]/hook", "events": ["complaint"]}, "host is not valid"),
        ({"url": "http://127.0.0.1:9/hook", "events": ["complaint"], "secret": "mine"}, "secret"),
    ],
)
async def test_bad_input_is_a_422_and_writes_nothing(
    client: Client, admin_headers: Headers, body: dict[str, object], words: str
) -> None:
    response = await client.post("/v1/event-endpoints", json=body, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in response.json()["detail"]
    assert (await client.get("/v1/event-endpoints", headers=admin_headers)).json()["items"] == []


async def test_only_admin_keys_manage_endpoints(client: Client, db: Database, admin_headers: Headers) -> None:
    assert (await client.get("/v1/event-endpoints")).status_code == 401
    key = generate_key()
    await db.pool.execute(db.q["api-key-insert"], "writer", key.prefix, key.secret_hash, ["subscribers:write"])
    writer = {"Authorization": f"Bearer {key.token}"}
    assert (await client.get("/v1/event-endpoints", headers=writer)).status_code == 403
    refused = await client.post("/v1/event-endpoints", json={"url": "http://127.0.0.1:9/", "events": ["complaint"]},
                                headers=writer)
    assert refused.status_code == 403


@pytest.fixture
async def guarded(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    """The app as deployed: LETTERBOX_EVENT_ALLOW_PRIVATE left off."""
    app: Litestar = create_app(replace_settings(settings, event_allow_private=False), clock=clock)
    async with AsyncTestClient(app, base_url="https://news.example.org") as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
        ("https://localhost:8443/hook", "localhost resolves to 127.0.0.1, a loopback address"),
        ("https://[::1]/hook", "::1 is a loopback address"),
        ("https://[::ffff:127.0.0.1]/hook", "a loopback address"),
        ("https://10.1.2.3/hook", "a private address"),
        ("https://192.168.0.10/hook", "a private address"),
        ("https://172.16.5.4/hook", "a private address"),
        ("https://169.254.169.254/latest/meta-data", "a link-local address"),
        ("https://[fe80::1]/hook", "a link-local address"),
        ("https://[fd12:3456::1]/hook", "a unique-local address"),
        ("https://224.0.0.1/hook", "a multicast address"),
        ("https://[ff02::1]/hook", "a multicast address"),
        ("https://240.0.0.1/hook", "reserved"),
        ("https://0.0.0.0/hook", "an unspecified address"),
        ("https://100.64.0.1/hook", "not a public address"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
        ("http://8.8.8.8/hook", "https only"),
    ],
)
async def test_private_and_plain_http_urls_are_refused_without_the_setting(
    guarded: Client, admin_headers: Headers, url: str, words: str
) -> None:
    response = await guarded.post("/v1/event-endpoints", json={"url": url, "events": ["complaint"]},
                                  headers=admin_headers)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"], response.json()["detail"]
    assert (await guarded.get("/v1/event-endpoints", headers=admin_headers)).json()["items"] == []


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.2", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("2002:a00:1::1", "a private address"),  # 6to4 carrying 10.0.0.1
        ("192.0.2.7", "a private address"),  # documentation range
        ("198.18.0.1", "a private address"),  # benchmarking range
        ("fc00::1", "a unique-local address"),
        ("::", "an unspecified address"),
        ("64:ff9b::a00:1", "a reserved address"),
    ],
)
def test_addresses_are_judged_public_or_not(address: str, reason: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason
