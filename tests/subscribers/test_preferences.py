"""The preferences page: change details and lists, or leave everything, from the link in a mail."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service.db.pool import Database
from service.links import Links
from service.settings import Settings
from service.tokens import TokenSigner
from tests.subscribers.conftest import Client, csrf_of, rows, value
from tests.subscribers.test_form import assert_security_headers
from tests.subscribers.test_unsubscribe import confirmed_reader, subscription_statuses

pytestmark = pytest.mark.usefixtures("demo")


def ticked(page: str) -> set[str]:
    """The list checkboxes that are ticked on a page."""
    tags = re.findall(r'<input type="checkbox"[^>]*name="lists"[^>]*>', page)
    return {re.search(r'value="([^"]+)"', tag)[1] for tag in tags if re.search(r"\bchecked\b", tag)}  # type: ignore[index]


def preferences_path(settings: Settings, reader: int) -> str:
    """The path of a reader's preferences link."""
    url = Links(settings, TokenSigner(settings.secret_keys)).preferences_url(reader)
    return url.removeprefix(settings.public_url)


async def post_preferences(client: Client, path: str, **fields: Any) -> Any:
    """Open the page, then post it with ``fields`` as a browser would."""
    page = await client.get(path)
    data = {"csrf": csrf_of(page.text), "name": "", "agency": "", "role": "", "action": "save", **fields}
    return await client.post(path, data=data)


async def test_the_page_shows_the_current_choices(client: Client, db: Database, settings: Settings) -> None:
    reader = await confirmed_reader(db, "ann@example.org", ("newsletter",))
    await db.pool.execute("UPDATE subscribers SET name = '<script>alert(1)</script>', agency = 'police'")
    response = await client.get(preferences_path(settings, reader))
    assert response.status_code == 200
    assert_security_headers(response.headers, token_page=True)
    page = response.text
    assert "<strong>ann@example.org</strong>" in page
    assert "<script>" not in page and 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert '<option value="police" selected>' in page
    assert ticked(page) == {"newsletter"}, "training is offered, not ticked"
    assert 'value="training"' in page
    assert "<legend>What would you like to receive?</legend>" in page


async def test_saving_changes_details_and_lists(client: Client, db: Database, settings: Settings) -> None:
    reader = await confirmed_reader(db, "ann@example.org", ("newsletter",))
    response = await post_preferences(client, preferences_path(settings, reader), name="Ann Jones",
                                      agency="health", role="strategic-lead", lists=["training", "practice-reviews"])
    assert response.status_code == 200 and "Your choices are saved" in response.text
    person = (await rows(db, "SELECT * FROM subscribers"))[0]
    assert (person["name"], person["agency"], person["role"], person["status"]) == (
        "Ann Jones", "health", "strategic-lead", "active")
    assert await subscription_statuses(db, reader) == {
        "newsletter": "unsubscribed", "training": "confirmed", "practice-reviews": "confirmed"}
    (consent,) = await rows(db, "SELECT * FROM consents")
    assert consent["action"] == "preferences" and sorted(consent["lists"]) == ["practice-reviews", "training"]


async def test_unticking_everything_unsubscribes_and_ticking_again_comes_back(
    client: Client, db: Database, settings: Settings
) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    path = preferences_path(settings, reader)
    assert (await post_preferences(client, path)).status_code == 200
    assert await value(db, "SELECT status FROM subscribers") == "unsubscribed"
    assert (await post_preferences(client, path, lists=["newsletter"])).status_code == 200
    assert await value(db, "SELECT status FROM subscribers") == "active"


async def test_leave_everything(client: Client, db: Database, settings: Settings) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    response = await post_preferences(client, preferences_path(settings, reader), action="leave",
                                      lists=["newsletter"])
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert set((await subscription_statuses(db, reader)).values()) == {"unsubscribed"}
    assert await value(db, "SELECT status FROM subscribers") == "unsubscribed"
    assert [r["action"] for r in await rows(db, "SELECT action FROM consents")] == ["unsubscribe"]


async def test_a_hidden_list_the_person_is_on_can_be_left(client: Client, db: Database, settings: Settings) -> None:
    await db.pool.execute("INSERT INTO lists (slug, name, public) VALUES ('board', 'Board papers', false)")
    reader = await confirmed_reader(db, "ann@example.org", ("newsletter", "board"))
    path = preferences_path(settings, reader)
    assert 'value="board"' in (await client.get(path)).text
    assert (await post_preferences(client, path, lists=["newsletter"])).status_code == 200
    assert (await subscription_statuses(db, reader))["board"] == "unsubscribed"
    refused = await post_preferences(client, path, lists=["board"])
    assert refused.status_code == 400, "a hidden list cannot be joined from the page once left"


async def test_bad_values_and_forged_posts_change_nothing(client: Client, db: Database, settings: Settings) -> None:
    reader = await confirmed_reader(db, "ann@example.org", ("newsletter",))
    other = await confirmed_reader(db, "bob@example.org", ("newsletter",))
    path = preferences_path(settings, reader)
    invalid = await post_preferences(client, path, agency="mi5", lists=["training"])
    assert invalid.status_code == 400
    assert '<a href="#agency">Choose an organisation from the list.</a>' in invalid.text
    missing = await client.post(path, data={"name": "X", "lists": "training"})
    others_token = csrf_of((await client.get(preferences_path(settings, other))).text)
    borrowed = await client.post(path, data={"csrf": others_token, "name": "X", "lists": "training"})
    cross_site = await client.post(path, data={"csrf": csrf_of((await client.get(path)).text), "name": "X"},
                                   headers={"Sec-Fetch-Site": "cross-site"})
    for response in (missing, borrowed, cross_site):
        assert response.status_code == 403
    assert await subscription_statuses(db, reader) == {"newsletter": "confirmed"}
    assert await value(db, "SELECT name FROM subscribers WHERE id = $1", reader) == "Ann"
    assert await value(db, "SELECT count(*) FROM consents") == 0


async def test_a_link_for_someone_no_longer_on_file(client: Client, settings: Settings) -> None:
    path = preferences_path(settings, 4242)
    assert (await client.get(path)).status_code == 410
    assert (await client.get(path[:-2] + "zz")).status_code == 400
