"""The audit log: entries for /v1 and console changes, GET /v1/audit paging, erasure scrubbing, append-only."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.support.console import csrf_token, make_user, signed_in

Client = AsyncTestClient[Litestar]


async def _entries(client: Client, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/audit", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_v1_changes_are_recorded_with_the_keys_name(client: Client, admin_headers: dict[str, str]) -> None:
    assert (await client.post("/v1/lists", json={"slug": "news", "name": "News"}, headers=admin_headers)).status_code == 201
    assert (await client.patch("/v1/lists/news", json={"name": "The news"}, headers=admin_headers)).status_code == 200
    # A refused change leaves no entry: it rolled back with the change.
    assert (await client.post("/v1/lists", json={"slug": "news", "name": "Again"}, headers=admin_headers)).status_code == 409
    items = (await _entries(client, admin_headers))["items"]
    assert [(i["actor"], i["action"], i["object_type"], i["object_id"]) for i in items] == [
        ("bootstrap", "list.update", "list", "news"),
        ("bootstrap", "list.create", "list", "news"),
    ]
    assert items[0]["detail"] == {"name": "The news"}


async def test_v1_audit_needs_admin_and_pages_by_cursor(client: Client, settings: Settings,
                                                        admin_headers: dict[str, str]) -> None:
    for n in range(5):
        await client.post("/v1/agencies", json={"slug": f"a{n}", "name": f"Agency {n}"}, headers=admin_headers)
    first = await _entries(client, admin_headers, limit=2)
    second = await _entries(client, admin_headers, limit=2, cursor=first["next_cursor"])
    third = await _entries(client, admin_headers, limit=2, cursor=second["next_cursor"])
    ids = [i["object_id"] for page in (first, second, third) for i in page["items"]]
    assert ids == ["a4", "a3", "a2", "a1", "a0"]
    assert third["next_cursor"] is None
    bad = await client.get("/v1/audit", headers=admin_headers, params={"cursor": "nope"})
    assert bad.status_code == 422
    key = await client.post("/v1/lists", json={"slug": "x", "name": "X"}, headers=admin_headers)
    assert key.status_code == 201
    conn_key = await _reader_key(client, settings)
    assert (await client.get("/v1/audit", headers=conn_key)).status_code == 403


async def _reader_key(client: Client, settings: Settings) -> dict[str, str]:
    """An API key with a read scope only, made through the console by an admin."""
    token = await signed_in(client, settings, "admin", "keys-admin@example.org")
    made = await client.post("/console/api-keys", data={"csrf": token, "name": "reader", "scope": "subscribers:read"})
    assert made.status_code == 201, made.text
    secret = made.text.split('id="new-token">')[1].split("<")[0]
    return {"Authorization": f"Bearer {secret}"}


async def test_console_changes_are_recorded_with_the_users_email(client: Client, settings: Settings,
                                                                 admin_headers: dict[str, str]) -> None:
    token = await signed_in(client, settings, "admin")
    await make_user(settings, "ed@example.org", "editor")
    users = await client.get("/console/users")
    ed_id = users.text.split('action="/console/users/')[-2].split("/")[0]
    assert (await client.post(f"/console/users/{ed_id}/role", data={"csrf": token, "role": "viewer"})).status_code == 303
    made = await client.post("/console/api-keys", data={"csrf": token, "name": "intranet", "scope": ["subscribers:write"]})
    assert made.status_code == 201
    assert "shown only this once" in made.text
    items = (await _entries(client, admin_headers))["items"]
    assert [(i["actor"], i["action"]) for i in items] == [
        ("admin@example.org", "api_key.create"), ("admin@example.org", "user.role"),
    ]
    assert items[1]["detail"] == {"email": "ed@example.org", "from": "editor", "to": "viewer"}
    page = await client.get("/console/audit")
    assert page.status_code == 200
    assert "api_key.create" in page.text and "admin@example.org" in page.text


async def test_erasing_a_reader_scrubs_their_entries(client: Client, settings: Settings,
                                                     admin_headers: dict[str, str]) -> None:
    await client.post("/v1/lists", json={"slug": "news", "name": "News"}, headers=admin_headers)
    asked = await client.post("/v1/subscriptions", json={"email": "Ann@example.org", "name": "Ann Example",
                                                         "lists": ["news"]}, headers={**admin_headers, "Idempotency-Key": "k"})
    assert asked.status_code == 202, asked.text
    conn = await asyncpg.connect(settings.database_url)
    try:
        subscriber_id = await conn.fetchval("SELECT id FROM subscribers")
        patched = await client.patch(f"/v1/subscribers/{subscriber_id}", json={"name": "Ann B. Example"},
                                     headers=admin_headers)
        assert patched.status_code == 200, patched.text
        lifted = await client.delete("/v1/suppressions/ann@example.org", headers=admin_headers)
        assert lifted.status_code == 404  # not suppressed: refused, and so not recorded
        assert (await client.delete(f"/v1/subscribers/{subscriber_id}", headers=admin_headers)).status_code == 204
        text = str(await conn.fetch("SELECT * FROM audit_log"))
    finally:
        await conn.close()
    assert "ann" not in text.lower()
    items = (await _entries(client, admin_headers))["items"]
    assert [(i["action"], i["object_id"], i["detail"]) for i in items] == [
        ("subscriber.erase", str(subscriber_id), None),
        ("subscriber.update", str(subscriber_id), None),
        ("subscription.request", None, None),
        ("list.create", "news", {"name": "News", "public": True}),
    ]


async def test_the_audit_log_is_append_only(client: Client, settings: Settings, admin_headers: dict[str, str]) -> None:
    await client.post("/v1/lists", json={"slug": "news", "name": "News"}, headers=admin_headers)
    conn = await asyncpg.connect(settings.database_url)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM audit_log")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE audit_log SET actor = 'someone else'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("""UPDATE audit_log SET detail = '{"name": "forged"}'""")
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
    finally:
        await conn.close()


async def test_viewer_cannot_change_users_or_keys(client: Client, settings: Settings) -> None:
    token = await signed_in(client, settings, "viewer")
    for path, data in (("/console/users", {"email": "x@example.org", "role": "admin"}),
                       ("/console/api-keys", {"name": "k", "scope": "admin"}),
                       ("/console/users/1/role", {"role": "admin"})):
        response = await client.post(path, data={"csrf": token, **data})
        assert response.status_code == 403, path
    page = await client.get("/console/account")
    assert csrf_token(page.text) == token


async def test_editions_steered_through_v1_are_recorded(client: Client, settings: Settings,
                                                        admin_headers: dict[str, str]) -> None:
    from tests.support.seed import seed_readers

    await seed_readers(settings.database_url or "", 2, lists=("news",))
    posted = await client.post("/v1/editions", json={"subject": "November briefing", "html": "<p>Hello</p>",
                                                     "lists": ["news"]}, headers={**admin_headers, "Idempotency-Key": "k"})
    assert posted.status_code == 202, posted.text
    edition_id = posted.json()["id"]
    for step in ("pause", "resume", "cancel"):
        assert (await client.post(f"/v1/editions/{edition_id}/{step}", headers=admin_headers)).status_code == 200
    assert (await client.post(f"/v1/editions/{edition_id}/resume", headers=admin_headers)).status_code == 409
    items = (await _entries(client, admin_headers))["items"]
    assert [(i["action"], i["object_id"]) for i in items][:4] == [
        ("edition.cancel", str(edition_id)), ("edition.resume", str(edition_id)),
        ("edition.pause", str(edition_id)), ("edition.post", str(edition_id)),
    ]
