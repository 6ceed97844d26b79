"""The public form: what it shows, how it checks, and how it refuses forgeries, bots and floods."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar

from service.db.pool import Database
from tests.subscribers.conftest import Client, csrf_of, rows, subscribe, value
from tests.support.clock import FakeClock

pytestmark = pytest.mark.usefixtures("demo")


def assert_security_headers(headers: object, *, token_page: bool = False) -> None:
    """The headers every public page sends."""
    assert hasattr(headers, "get")
    csp = headers.get("content-security-policy")
    assert csp is not None
    assert "script-src" not in csp and "default-src 'none'" in csp, "no script may run at all"
    assert "style-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("x-frame-options") == "DENY"
    assert headers.get("referrer-policy") == ("no-referrer" if token_page else "same-origin")


async def test_the_form_offers_the_taxonomy_from_the_database_accessibly(client: Client, db: Database) -> None:
    await db.pool.execute("INSERT INTO lists (slug, name, public) VALUES ('board', 'Board papers', false)")
    response = await client.get("/subscribe")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response.headers)
    page = response.text
    for field in ("email", "name", "agency", "role"):
        assert f'<label for="{field}">' in page, f"{field} has a label"
    assert "<fieldset" in page and "<legend>What would you like to receive?</legend>" in page
    for slug in ("newsletter", "training", "practice-reviews"):
        assert f'name="lists" value="{slug}"' in page and f'<label for="list-{slug}">' in page
    assert "board" not in page, "lists that are not public are not offered"
    assert "Children&#39;s social care" in page and "Designated safeguarding lead" in page
    assert '<meta name="viewport"' in page and 'lang="en"' in page
    assert '<link rel="stylesheet" href="/static/letterbox.css">' in page
    assert "<script" not in page and "style=" not in page, "nothing inline for the CSP to refuse"
    assert 'name="website"' in page and 'tabindex="-1"' in page, "the honeypot is out of the tab order"
    assert csrf_of(page)


async def test_the_stylesheet_is_served_with_visible_focus(client: Client) -> None:
    response = await client.get("/static/letterbox.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert ":focus-visible" in response.text and "@media" in response.text


async def test_bad_input_shows_an_error_summary_and_writes_nothing(client: Client, db: Database) -> None:
    response = await subscribe(client, "not-an-address", lists=(), name="Ann")
    assert response.status_code == 400
    assert_security_headers(response.headers)
    page = response.text
    assert "<title>Error: Subscribe" in page
    assert 'class="error-summary" role="alert"' in page
    assert '<a href="#email">Enter a valid e-mail address' in page
    assert '<a href="#list-' in page and "Choose at least one newsletter." in page
    assert 'id="email-error"' in page and 'aria-invalid="true"' in page
    assert 'value="not-an-address"' in page and 'value="Ann"' in page, "what was typed is kept"
    assert await value(db, "SELECT count(*) FROM subscribers") == 0
    assert await value(db, "SELECT count(*) FROM consents") == 0


@pytest.mark.parametrize(
    ("fields", "lists", "message"),
    [
        ({"agency": "mi5"}, ("newsletter",), "Choose an organisation from the list."),
        ({"role": "king"}, ("newsletter",), "Choose a role from the list."),
        ({}, ("nonsense",), "Choose lists from those shown."),
        ({}, ("board",), "Choose lists from those shown."),
        ({"name": "x" * 201}, ("newsletter",), "at most 200 characters"),
        ({"name": "Ann\r\nBcc: all@example.org"}, ("newsletter",), "line breaks"),
    ],
)
async def test_values_not_offered_are_refused(client: Client, db: Database, fields: dict[str, Any],
                                              lists: tuple[str, ...], message: str) -> None:
    await db.pool.execute("INSERT INTO lists (slug, name, public) VALUES ('board', 'Board papers', false)")
    response = await subscribe(client, "ann@example.org", lists=lists, **fields)
    assert response.status_code == 400
    assert message in response.text
    assert await value(db, "SELECT count(*) FROM subscribers") == 0


async def test_names_are_escaped_wherever_they_are_shown(client: Client) -> None:
    evil = '<script>alert("x")</script>'
    response = await subscribe(client, "broken address", name=evil)
    assert response.status_code == 400
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in response.text


async def test_a_post_without_a_valid_csrf_token_is_refused_and_writes_nothing(
    client: Client, db: Database, clock: FakeClock
) -> None:
    data = {"email": "ann@example.org", "lists": "newsletter"}
    missing = await client.post("/subscribe", data=data)
    forged = await client.post("/subscribe", data={**data, "csrf": "1-0.abc.def"})
    token = csrf_of((await client.get("/subscribe")).text)
    cross_site = await client.post("/subscribe", data={**data, "csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
    clock.advance(25 * 3600)
    expired = await client.post("/subscribe", data={**data, "csrf": token})
    for response in (missing, forged, cross_site, expired):
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "This form has expired or did not come from this site" in response.text
        assert_security_headers(response.headers, token_page=True)
    assert await value(db, "SELECT count(*) FROM subscribers") == 0
    assert await value(db, "SELECT count(*) FROM rate_limits") == 0
    same_site = await subscribe(client, "ann@example.org", headers={"Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 200, "a real browser's own post passes"


async def test_the_honeypot_gets_the_usual_answer_and_nothing_happens(client: Client, db: Database) -> None:
    trapped = await subscribe(client, "bot@example.org", website="http://spam.example.org")
    real = await subscribe(client, "ann@example.org")
    assert trapped.status_code == real.status_code == 200
    assert trapped.text == real.text
    assert [r["email"] for r in await rows(db, "SELECT email FROM subscribers")] == ["ann@example.org"]


async def test_addresses_are_normalised_and_unique_whatever_their_case(client: Client, db: Database) -> None:
    assert (await subscribe(client, "  Ann.Smith@EXAMPLE.org ")).status_code == 200
    assert (await subscribe(client, "ann.smith@example.ORG")).status_code == 200
    assert [r["email"] for r in await rows(db, "SELECT email FROM subscribers")] == ["Ann.Smith@example.org"]


async def test_international_domains_are_one_person_in_their_ascii_form(client: Client, db: Database) -> None:
    assert (await subscribe(client, "reader@bücher.example")).status_code == 200
    assert (await subscribe(client, "reader@xn--bcher-kva.example")).status_code == 200
    assert (await subscribe(client, "üser@example.com")).status_code == 200
    stored = sorted(r["email"] for r in await rows(db, "SELECT email FROM subscribers"))
    assert stored == ["reader@xn--bcher-kva.example", "üser@example.com"]


async def test_bytes_that_are_not_utf8_are_a_field_error(client: Client, db: Database) -> None:
    form = await client.get("/subscribe")
    body = f"csrf={csrf_of(form.text)}&email=a%FF%40example.org&name=&agency=&role=&website=&lists=newsletter"
    response = await client.post("/subscribe", content=body.encode(),
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert "could not be read" in response.text and 'href="#email"' in response.text
    assert await value(db, "SELECT count(*) FROM subscribers") == 0


async def test_too_many_posts_for_one_address_get_a_429_page(client: Client, db: Database, clock: FakeClock) -> None:
    for _ in range(5):
        assert (await subscribe(client, "ann@example.org")).status_code == 200
    limited = await subscribe(client, "ANN@example.org")
    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("text/html")
    assert 0 < int(limited.headers["retry-after"]) <= 3600
    assert "Too many attempts" in limited.text
    assert (await subscribe(client, "bob@example.org")).status_code == 200, "other addresses are not held up"
    buckets = [r["bucket"] for r in await rows(db, "SELECT bucket FROM rate_limits")]
    assert not any("ann" in b for b in buckets), "addresses are not kept in clear in bucket names"
    clock.advance(3600)
    assert (await subscribe(client, "ann@example.org")).status_code == 200, "the next window starts afresh"


async def test_too_many_posts_from_one_client_get_a_429_page(client: Client, clock: FakeClock) -> None:
    for i in range(30):
        assert (await subscribe(client, f"person{i}@example.org")).status_code == 200
    limited = await subscribe(client, "one-more@example.org")
    assert limited.status_code == 429
    assert re.search(r"wait about \d+ minutes?", limited.text)
    clock.advance(600)
    assert (await subscribe(client, "one-more@example.org")).status_code == 200


async def test_errors_on_public_pages_are_html(client: Client, app: Litestar) -> None:
    response = await client.post("/subscribe", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response.headers, token_page=True)
