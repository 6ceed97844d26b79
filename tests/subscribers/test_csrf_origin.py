"""CSRF on the public forms when the browser sends ``Origin`` but no ``Sec-Fetch-Site`` (issue 12, finding 7).

A cross-site ``Origin`` (or ``Origin: null``) is refused and writes nothing; our own
origin, the request's own host (a local trial reached by another name) and a post
without either header (old clients, where the signed token alone decides) pass.
"""

from __future__ import annotations

import pytest

from service.db.pool import Database
from service.settings import Settings
from tests.subscribers.conftest import Client, csrf_of, subscribe, value
from tests.subscribers.test_preferences import preferences_path
from tests.subscribers.test_unsubscribe import confirmed_reader

pytestmark = pytest.mark.usefixtures("demo")
REFUSED = "This form has expired or did not come from this site"


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "https://news.example.org.evil.example", "http://news.example.org:8443"]
)
async def test_a_cross_site_origin_without_sec_fetch_site_is_refused(client: Client, db: Database, origin: str) -> None:
    refused = await subscribe(client, "ann@example.org", headers={"Origin": origin})
    assert refused.status_code == 403 and REFUSED in refused.text
    assert await value(db, "SELECT count(*) FROM subscribers") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://news.example.org"},  # LETTERBOX_PUBLIC_URL's origin
        {"Origin": "https://NEWS.example.org:443"},  # the same, spelt otherwise
        {},  # an old client: no Origin, no Sec-Fetch-Site; the token still decides
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},  # the browser's own word wins
    ],
)
async def test_our_own_origin_or_no_origin_passes(client: Client, db: Database, headers: dict[str, str]) -> None:
    assert (await subscribe(client, "ann@example.org", headers=headers)).status_code == 200
    assert await value(db, "SELECT count(*) FROM subscribers") == 1


async def test_the_requests_own_host_passes_for_a_local_trial(client: Client) -> None:
    # A trial reached as http://localhost:8000 while LETTERBOX_PUBLIC_URL names another host.
    local = {"Origin": "http://localhost:8000", "Host": "localhost:8000"}
    assert (await subscribe(client, "ann@example.org", headers=local)).status_code == 200
    other_port = {"Origin": "http://localhost:9999", "Host": "localhost:8000"}
    assert (await subscribe(client, "bob@example.org", headers=other_port)).status_code == 403


async def test_a_cross_site_origin_is_refused_on_the_preferences_form(
    client: Client, db: Database, settings: Settings
) -> None:
    reader = await confirmed_reader(db, "ann@example.org", ("newsletter",))
    path = preferences_path(settings, reader)
    data = {"csrf": csrf_of((await client.get(path)).text), "name": "Mallory", "agency": "", "role": "",
            "action": "save", "lists": ["newsletter"]}  # fmt: skip
    refused = await client.post(path, data=data, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert await value(db, "SELECT name FROM subscribers WHERE id = $1", reader) != "Mallory"
    assert (await client.post(path, data=data, headers={"Origin": "https://news.example.org"})).status_code == 200
