"""The operator API: subscription requests, the reader list with keyset pagination, one reader, PATCH rules."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar

from service.auth import generate_key
from service.db.pool import Database
from tests.subscribers.conftest import Client, link_in, rows, value
from tests.subscribers.test_unsubscribe import confirmed_reader, subscription_statuses
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

pytestmark = pytest.mark.usefixtures("demo")
Headers = dict[str, str]


async def key_with(db: Database, *scopes: str) -> Headers:
    """Authorization headers of a new API key with ``scopes``."""
    key = generate_key()
    await db.pool.execute("INSERT INTO api_keys (name, prefix, secret_hash, scopes) VALUES ('t', $1, $2, $3)",
                          key.prefix, key.secret_hash, list(scopes))
    return {"Authorization": f"Bearer {key.token}"}


async def test_a_subscription_request_is_the_same_double_opt_in(
    client: Client, app: Litestar, db: Database, admin_headers: Headers, smtp_sink: SmtpSink
) -> None:
    body = {"email": "Ann@Example.org", "name": "Ann", "agency": "police", "role": "practitioner",
            "lists": ["newsletter"], "attributes": {"team": "north", "fte": 0.5}}
    response = await client.post("/v1/subscriptions", json=body, headers=admin_headers)
    assert response.status_code == 202
    assert response.json() == {"status": "pending"}
    person = (await rows(db, "SELECT * FROM subscribers"))[0]
    assert (person["email"], person["status"], person["attributes"]) == (
        "Ann@example.org", "pending", {"team": "north", "fte": 0.5})
    assert await value(db, "SELECT source FROM consents") == "api"
    async with running_worker(app):
        (received,) = await smtp_sink.wait_for(1)
    assert (await client.post(link_in(received, "confirm"))).status_code == 200
    assert await value(db, "SELECT status FROM subscribers") == "active"
    again = await client.post("/v1/subscriptions", json=body, headers=admin_headers)
    assert again.status_code == 202 and again.json() == {"status": "pending"}, "no enumeration here either"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"lists": ["newsletter", "nope"]}, "There is no list 'nope'."),
        ({"agency": "mi5"}, "There is no agency 'mi5'."),
        ({"role": "king"}, "There is no role 'king'."),
        ({"email": "not an address"}, "email: Enter a valid e-mail address"),
        ({"lists": []}, "lists"),
        ({"colour": "blue"}, "colour"),
        ({"name": "a\nb"}, "line breaks"),
    ],
)
async def test_bad_requests_are_422_and_write_nothing(
    client: Client, db: Database, admin_headers: Headers, change: dict[str, Any], detail: str
) -> None:
    body = {"email": "ann@example.org", "lists": ["newsletter"], **change}
    response = await client.post("/v1/subscriptions", json=body, headers=admin_headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    assert await value(db, "SELECT count(*) FROM subscribers") == 0


async def test_scopes(client: Client, db: Database) -> None:
    reader = await key_with(db, "subscribers:read")
    writer = await key_with(db, "subscribers:write")
    body = {"email": "ann@example.org", "lists": ["newsletter"]}
    assert (await client.post("/v1/subscriptions", json=body)).status_code == 401
    assert (await client.post("/v1/subscriptions", json=body, headers=reader)).status_code == 403
    assert (await client.post("/v1/subscriptions", json=body, headers=writer)).status_code == 202
    assert (await client.get("/v1/subscribers", headers=reader)).status_code == 200
    assert (await client.get("/v1/subscribers", headers=await key_with(db, "editions:write"))).status_code == 403
    (person,) = (await client.get("/v1/subscribers", headers=reader)).json()["items"]
    assert (await client.delete(f"/v1/subscribers/{person['id']}", headers=reader)).status_code == 403
    assert (await client.patch(f"/v1/subscribers/{person['id']}", json={"name": "x"}, headers=reader)).status_code == 403


async def _seed(db: Database, count: int) -> None:
    await db.pool.execute(
        """
        INSERT INTO subscribers (email, name, agency, role, status)
        SELECT 'reader' || i || '@example.org', 'Reader ' || i,
               CASE WHEN i % 2 = 0 THEN 'police' ELSE 'health' END,
               CASE WHEN i % 3 = 0 THEN 'strategic-lead' ELSE 'practitioner' END,
               CASE WHEN i % 5 = 0 THEN 'unsubscribed' ELSE 'active' END
        FROM generate_series(1, $1) AS i
        """, count)
    await db.pool.execute(
        "INSERT INTO subscriptions (list_id, subscriber_id, status) "
        "SELECT l.id, s.id, 'confirmed' FROM subscribers s, lists l WHERE l.slug = 'newsletter' AND s.id % 4 = 0")


async def test_keyset_pagination_walks_everyone_once(client: Client, db: Database, admin_headers: Headers) -> None:
    await _seed(db, 25)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/v1/subscribers", params=params, headers=admin_headers)
        assert response.status_code == 200
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor.isascii() and not cursor.isdigit(), "the cursor is opaque"
    assert pages == 3 and seen == sorted(seen) and len(set(seen)) == 25
    item = page["items"][-1]
    assert set(item) == {"id", "email", "name", "agency", "role", "attributes", "status", "lists", "created_at",
                         "confirmed_at"}


async def test_filters(client: Client, db: Database, admin_headers: Headers) -> None:
    await _seed(db, 25)

    async def emails(**params: Any) -> list[str]:
        response = await client.get("/v1/subscribers", params={"limit": 500, **params}, headers=admin_headers)
        assert response.status_code == 200, response.text
        return [i["email"] for i in response.json()["items"]]

    assert len(await emails(status="unsubscribed")) == 5
    assert len(await emails(agency="police")) == 12
    assert len(await emails(role="strategic-lead")) == 8
    assert len(await emails(list="newsletter")) == 6
    assert await emails(q="READER2") == [f"reader{i}@example.org" for i in (2, 20, 21, 22, 23, 24, 25)]
    assert await emails(q="reader 7") == ["reader7@example.org"]
    assert await emails(q="%") == [], "a pattern character is taken literally"
    on_list = (await client.get("/v1/subscribers", params={"list": "newsletter", "limit": 1},
                                headers=admin_headers)).json()["items"][0]
    assert on_list["lists"] == [{"slug": "newsletter", "status": "confirmed"}]


@pytest.mark.parametrize(
    "params",
    [{"cursor": "garbage!"}, {"cursor": "MTIz"}, {"cursor": ""}, {"limit": 0}, {"limit": 501},
     {"status": "sleepy"}, {"list": "nope"}, {"agency": "mi5"}],
)
async def test_bad_query_parameters_are_422(client: Client, admin_headers: Headers, params: dict[str, Any]) -> None:
    response = await client.get("/v1/subscribers", params=params, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_get_and_patch_one(client: Client, db: Database, admin_headers: Headers) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    assert (await client.get("/v1/subscribers/999999", headers=admin_headers)).status_code == 404
    shown = (await client.get(f"/v1/subscribers/{reader}", headers=admin_headers)).json()
    assert shown["email"] == "ann@example.org" and shown["status"] == "active"
    assert shown["lists"] == [{"slug": "newsletter", "status": "confirmed"}, {"slug": "training", "status": "confirmed"}]

    changed = await client.patch(f"/v1/subscribers/{reader}", headers=admin_headers,
                                 json={"name": "Ann Smith", "agency": "police", "attributes": {"team": "east"}})
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["agency"], changed.json()["attributes"]) == (
        "Ann Smith", "police", {"team": "east"})
    cleared = await client.patch(f"/v1/subscribers/{reader}", json={"agency": None}, headers=admin_headers)
    assert cleared.json()["agency"] is None and cleared.json()["name"] == "Ann Smith", "absent fields stay"

    for body, status in [({}, 422), ({"agency": "mi5"}, 422), ({"status": "bounced"}, 422), ({"email": "x"}, 422),
                         ({"name": "x" * 201}, 422)]:
        response = await client.patch(f"/v1/subscribers/{reader}", json=body, headers=admin_headers)
        assert response.status_code == status, body
    assert (await client.patch("/v1/subscribers/999999", json={"name": "x"}, headers=admin_headers)).status_code == 404


async def test_status_rules(client: Client, db: Database, admin_headers: Headers) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    left = await client.patch(f"/v1/subscribers/{reader}", json={"status": "unsubscribed"}, headers=admin_headers)
    assert left.status_code == 200 and left.json()["status"] == "unsubscribed"
    assert set((await subscription_statuses(db, reader)).values()) == {"unsubscribed"}
    assert await value(db, "SELECT source FROM consents WHERE action = 'unsubscribe'") == "operator"

    refused = await client.patch(f"/v1/subscribers/{reader}", json={"status": "active"}, headers=admin_headers)
    assert refused.status_code == 409 and "subscribe and confirm" in refused.json()["detail"]

    bounced = await confirmed_reader(db, "bob@example.org")
    await db.pool.execute("UPDATE subscribers SET status = 'bounced' WHERE id = $1", bounced)
    await db.pool.execute("INSERT INTO suppressions (email_hash, email, reason) "
                          "VALUES (email_hash('bob@example.org'), 'bob@example.org', 'hard_bounce')")
    still = await client.patch(f"/v1/subscribers/{bounced}", json={"status": "active"}, headers=admin_headers)
    assert still.status_code == 409 and "suppressed" in still.json()["detail"]
    await db.pool.execute("DELETE FROM suppressions")
    back = await client.patch(f"/v1/subscribers/{bounced}", json={"status": "active"}, headers=admin_headers)
    assert back.status_code == 200 and back.json()["status"] == "active"
