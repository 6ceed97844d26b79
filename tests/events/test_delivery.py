"""The worker posts outbox messages to a real HTTP receiver on loopback: signed per Standard
Webhooks, retried with the same webhook-id until a 2xx, failed when the tries run out, refused
at send time when the address is not public, and never held up by a slow endpoint."""

from __future__ import annotations

import asyncio

import pytest
from litestar import Litestar

from service.db.pool import Database
from service.settings import Settings, SettingsError, load_settings
from tests.conftest import replace_settings
from tests.events.conftest import Client, Headers, attempts, register, settled, verified
from tests.events.receiver import Receiver
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

# The worker posts events end to end to a real HTTP receiver: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow


async def _an_event(client: Client, headers: Headers, email: str = "reader@example.org") -> int:
    """Cause one subscriber.unsubscribed event through the API: an operator unsubscribes a reader."""
    subscriber_id = await _reader(client, headers, email)
    response = await client.patch(f"/v1/subscribers/{subscriber_id}", json={"status": "unsubscribed"},
                                  headers=headers)
    assert response.status_code == 200, response.text
    return subscriber_id


async def _reader(client: Client, headers: Headers, email: str) -> int:
    imported = await client.post("/v1/subscribers/import", content=f"email,lists\n{email},news\n".encode(),
                                 headers={**headers, "content-type": "text/csv"})
    assert imported.status_code == 200 and imported.json()["created"] == 1, imported.text
    found = (await client.get("/v1/subscribers", params={"q": email}, headers=headers)).json()["items"]
    return int(found[0]["id"])


async def _lists(settings: Settings) -> None:
    await seed_readers(settings.database_url or "", 0)


async def test_a_message_is_signed_and_delivered_once(
    client: Client, app: Litestar, admin_headers: Headers, settings: Settings, receiver: Receiver
) -> None:
    await _lists(settings)
    endpoint = await register(client, admin_headers, receiver.url(), ["subscriber.unsubscribed"])
    subscriber_id = await _an_event(client, admin_headers)
    async with running_worker(app):
        (delivered,) = await receiver.wait_for(1)
        (item,) = await settled(client, admin_headers, endpoint["id"], 1)
    body = verified(endpoint["secret"], delivered)
    assert body["type"] == "subscriber.unsubscribed"
    assert body["timestamp"].endswith("Z")
    assert body["data"]["subscriber"] == {"id": subscriber_id, "email": "reader@example.org", "name": "",
                                          "agency": None, "role": None, "status": "unsubscribed"}
    assert body["data"]["lists"] == ["news"] and body["data"]["source"] == "operator"
    assert delivered.headers["webhook-id"].startswith("msg_")
    assert delivered.headers["content-type"] == "application/json"
    assert item["status"] == "delivered" and item["attempts"] == 1 and item["last_status"] == 200
    assert item["last_error"] is None and item["delivered_at"] and item["next_attempt_at"] is None
    assert item["webhook_id"] == delivered.headers["webhook-id"] and item["type"] == "subscriber.unsubscribed"
    assert len(receiver.received) == 1, "a delivered message is not sent again"


async def test_failures_are_retried_with_the_same_webhook_id_until_a_2xx(
    client: Client, app: Litestar, admin_headers: Headers, settings: Settings, receiver: Receiver
) -> None:
    await _lists(settings)
    endpoint = await register(client, admin_headers, receiver.url(), ["subscriber.unsubscribed"])
    receiver.answer("/hook", 500, 503)
    await _an_event(client, admin_headers)
    async with running_worker(app):
        tries = await receiver.wait_for(3)
        (item,) = await settled(client, admin_headers, endpoint["id"], 1)
    assert len({t.headers["webhook-id"] for t in tries}) == 1, "every try carries the same webhook-id"
    assert len({t.body for t in tries}) == 1, "and the same body"
    for attempt in tries:
        verified(endpoint["secret"], attempt)
    assert item["status"] == "delivered" and item["attempts"] == 3 and item["last_status"] == 200
    # Each try is kept with its status and reply.
    assert [(t["attempt"], t["status"]) for t in item["tries"]] == [(1, 500), (2, 503), (3, 200)]
    assert item["tries"][0]["reply"] == "HTTP 500: receiver answered 500" and item["tries"][0]["tried_at"]


async def test_a_message_fails_for_good_when_the_tries_run_out(
    client: Client, app: Litestar, admin_headers: Headers, settings: Settings, receiver: Receiver
) -> None:
    await _lists(settings)
    endpoint = await register(client, admin_headers, receiver.url(), ["subscriber.unsubscribed"])
    receiver.answer("/hook", 500, 500, 502, 200)
    await _an_event(client, admin_headers)
    async with running_worker(app):
        (item,) = await settled(client, admin_headers, endpoint["id"], 1)
    assert len(receiver.to("/hook")) == 3, "one try more than waits (two), then no more"
    assert item["status"] == "failed" and item["attempts"] == 3
    assert item["last_status"] == 502 and item["last_error"] == "HTTP 502: receiver answered 502"
    assert item["next_attempt_at"] is None and item["delivered_at"] is None
    assert (await attempts(client, admin_headers, endpoint["id"], status="failed")) == [item]
    assert (await attempts(client, admin_headers, endpoint["id"], status="delivered")) == []


async def test_an_endpoint_that_is_down_is_retried_and_the_error_kept(
    client: Client, app: Litestar, admin_headers: Headers, settings: Settings, receiver: Receiver
) -> None:
    await _lists(settings)
    closed = Receiver()  # bound but never served: nothing listens on its port
    endpoint = await register(client, admin_headers, closed.url(), ["subscriber.unsubscribed"])
    await closed.stop()
    await _an_event(client, admin_headers)
    async with running_worker(app):
        (item,) = await settled(client, admin_headers, endpoint["id"], 1)
    assert item["status"] == "failed" and item["attempts"] == 3 and item["last_status"] is None
    assert item["last_error"].startswith("ConnectError"), item["last_error"]
    assert [t["status"] for t in item["tries"]] == [None, None, None]
    assert all(t["reply"].startswith("ConnectError") for t in item["tries"])


async def test_an_address_that_is_not_public_fails_at_send_time(
    client: Client, app: Litestar, admin_headers: Headers, settings: Settings, receiver: Receiver
) -> None:
    """Registered while private addresses were allowed; the worker now runs without the setting."""
    await _lists(settings)
    endpoint = await register(client, admin_headers, receiver.url(host="localhost"), ["subscriber.unsubscribed"])
    await _an_event(client, admin_headers)
    async with running_worker(app, replace_settings(settings, event_allow_private=False)):
        (item,) = await settled(client, admin_headers, endpoint["id"], 1)
    assert receiver.received == [], "nothing reached the loopback address"
    assert item["status"] == "failed" and item["last_status"] is None
    assert item["last_error"].startswith("not sent: localhost resolves to 127.0.0.1, a loopback address")


async def test_a_slow_endpoint_holds_up_neither_other_endpoints_nor_the_mail(
    client: Client, app: Litestar, admin_headers: Headers, settings: Settings, receiver: Receiver,
    smtp_sink: SmtpSink,
) -> None:
    await seed_readers(settings.database_url or "", 3)
    slow = await register(client, admin_headers, receiver.url("/slow"), ["subscriber.unsubscribed"])
    fast = await register(client, admin_headers, receiver.url("/fast"), ["subscriber.unsubscribed"])
    release = receiver.hold("/slow")
    await _an_event(client, admin_headers, "one@example.org")
    async with running_worker(app):
        await receiver.wait_for(1, "/slow")
        await _an_event(client, admin_headers, "two@example.org")
        posted = await client.post("/v1/editions", headers={**admin_headers, "Idempotency-Key": "slow"},
                                   json={"subject": "News", "html": "<p>Hi</p>", "lists": ["news"]})
        assert posted.status_code == 202
        await receiver.wait_for(2, "/fast")
        await smtp_sink.wait_for(posted.json()["recipients"])
        held = await attempts(client, admin_headers, slow["id"], status="pending")
        assert [h["attempts"] for h in held] == [1, 1], "both still waiting for their first answer"
        release.set()
        await settled(client, admin_headers, slow["id"], 2)
    assert [i["status"] for i in await attempts(client, admin_headers, fast["id"])] == ["delivered", "delivered"]
    assert [i["status"] for i in await attempts(client, admin_headers, slow["id"])] == ["delivered", "delivered"]


async def test_the_attempts_listing_pages_newest_first(
    client: Client, admin_headers: Headers, settings: Settings, receiver: Receiver, db: Database
) -> None:
    await _lists(settings)
    endpoint = await register(client, admin_headers, receiver.url(), ["subscriber.unsubscribed"])
    for n in range(3):
        await _an_event(client, admin_headers, f"r{n}@example.org")
    ids = [r["id"] for r in await db.pool.fetch("SELECT id FROM event_messages ORDER BY id DESC")]
    path = f"/v1/event-endpoints/{endpoint['id']}/attempts"
    first = (await client.get(path, params={"limit": 2}, headers=admin_headers)).json()
    assert [i["id"] for i in first["items"]] == ids[:2] and first["next_cursor"]
    second = (await client.get(path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin_headers))
    assert [i["id"] for i in second.json()["items"]] == ids[2:] and second.json()["next_cursor"] is None
    assert all(i["status"] == "pending" and i["attempts"] == 0 for i in first["items"])
    bad = await client.get(path, params={"status": "lost"}, headers=admin_headers)
    assert bad.status_code == 422


def test_the_default_schedule_tries_at_least_five_times_over_about_an_hour() -> None:
    waits = load_settings({}).event_retry_seconds
    assert len(waits) + 1 >= 5
    assert 50 * 60 <= sum(waits) <= 90 * 60
    assert list(waits) == sorted(waits), "the waits grow"


def test_the_settings_are_read() -> None:
    settings = load_settings({"LETTERBOX_EVENT_ALLOW_PRIVATE": "true", "LETTERBOX_EVENT_RETRY_SECONDS": "1, 2.5,10"})
    assert settings.event_allow_private and settings.event_retry_seconds == (1.0, 2.5, 10.0)
    assert not load_settings({"LETTERBOX_EVENT_ALLOW_PRIVATE": "false"}).event_allow_private
    assert not load_settings({}).event_allow_private


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LETTERBOX_EVENT_ALLOW_PRIVATE", "maybe"),
        ("LETTERBOX_EVENT_RETRY_SECONDS", "5,,60"),
        ("LETTERBOX_EVENT_RETRY_SECONDS", "-1"),
        ("LETTERBOX_EVENT_RETRY_SECONDS", "inf"),
    ],
)
def test_bad_settings_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings({variable: value})


async def test_stopping_the_worker_waits_for_posts_in_flight(
    client: Client, app: Litestar, admin_headers: Headers, settings: Settings, receiver: Receiver
) -> None:
    await _lists(settings)
    endpoint = await register(client, admin_headers, receiver.url("/slow"), ["subscriber.unsubscribed"])
    release = receiver.hold("/slow")
    await _an_event(client, admin_headers)
    async with running_worker(app) as stop:
        await receiver.wait_for(1, "/slow")
        stop.set()
        await asyncio.sleep(0)
        release.set()
    (item,) = await attempts(client, admin_headers, endpoint["id"])
    assert item["status"] == "delivered", "the answer that came during the stop was recorded"


async def test_old_delivered_and_failed_messages_are_dropped_pending_ones_kept(
    client: Client, app: Litestar, admin_headers: Headers, settings: Settings, receiver: Receiver, db: Database
) -> None:
    await _lists(settings)
    endpoint = await register(client, admin_headers, receiver.url(), ["subscriber.unsubscribed"])
    for n in range(3):
        await _an_event(client, admin_headers, f"r{n}@example.org")
    ids = [r["id"] for r in await db.pool.fetch("SELECT id FROM event_messages ORDER BY id")]
    await db.pool.execute(
        "UPDATE event_messages SET created_at = now() - interval '31 days', next_attempt_at = now() + interval '1 day',"
        " status = CASE id WHEN $1 THEN 'delivered' WHEN $2 THEN 'failed' ELSE 'pending' END", ids[0], ids[1])
    async with running_worker(app):
        for _ in range(400):  # the worker purges at its start; give it up to 20 s
            if len(await attempts(client, admin_headers, endpoint["id"])) == 1:
                break
            await asyncio.sleep(0.05)
    (kept,) = await attempts(client, admin_headers, endpoint["id"])
    assert kept["id"] == ids[2] and kept["status"] == "pending", "a message still to send is never dropped"
