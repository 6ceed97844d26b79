"""Each event fires from its real cause, in the same transaction: confirming through the link,
one-click unsubscribe, erasure (without the address), bounces and complaints through the API,
an edition finishing, and pauses by an operator and by the worker.  A change that rolls back
leaves no event; a delay warning or a repeated report fires nothing."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar

from service.db.pool import Database
from service.runtime import runtime_of
from service.subscribers import lifecycle
from service.tokens import Purpose
from tests.bounces.sends import dsn_mail, sent_edition
from tests.editions.test_guard import _guard, _report, _sending_edition
from tests.events.conftest import Client, Headers, outbox, register, settled, verified
from tests.events.receiver import Receiver
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

# The worker posts events end to end to a real HTTP receiver: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

RFC822 = {"Content-Type": "message/rfc822"}


async def _delivered(client: Client, app: Litestar, headers: Headers, receiver: Receiver, endpoint: dict[str, Any],
                     count: int) -> list[dict[str, Any]]:
    """Run the worker until ``count`` messages reached the receiver; their verified bodies, by type (a few are
    posted at once, so they may arrive in any order)."""
    async with running_worker(app):
        arrived = await receiver.wait_for(count)
        await settled(client, headers, endpoint["id"], count)
    assert len(receiver.received) == count, "nothing more than expected"
    return sorted((verified(endpoint["secret"], d) for d in arrived), key=lambda body: str(body["type"]))


async def _subscriber_id(db: Database, email: str) -> int:
    return int(await db.pool.fetchval("SELECT id FROM subscribers WHERE email = $1", email))



def _database_url(app: Litestar) -> str:
    url = runtime_of(app.state).settings.database_url
    assert url is not None
    return url

async def test_confirming_fires_subscriber_confirmed(
    client: Client, app: Litestar, admin_headers: Headers, db: Database, receiver: Receiver
) -> None:
    await seed_readers(_database_url(app), 0)  # the lists
    endpoint = await register(client, admin_headers, receiver.url(), ["subscriber.confirmed"])
    asked = await client.post("/v1/subscriptions", headers=admin_headers,
                              json={"email": "Ada@Example.org", "name": "Ada", "lists": ["news", "training"]})
    assert asked.status_code == 202
    subscriber_id = await _subscriber_id(db, "Ada@example.org")
    assert await outbox(db) == [], "asking is not confirming"
    token = runtime_of(app.state).signer.sign(Purpose.CONFIRM, subscriber_id)
    assert (await client.post(f"/confirm/{token}")).status_code == 200
    assert (await client.post(f"/confirm/{token}")).status_code == 200, "pressing again is harmless"
    (body,) = await _delivered(client, app, admin_headers, receiver, endpoint, 1)
    assert body["type"] == "subscriber.confirmed"
    assert body["data"] == {
        "subscriber": {"id": subscriber_id, "email": "Ada@example.org", "name": "Ada", "agency": None,
                       "role": None, "status": "active"},
        "lists": ["news", "training"],
    }


async def test_one_click_unsubscribe_fires_subscriber_unsubscribed(
    client: Client, app: Litestar, admin_headers: Headers, db: Database, receiver: Receiver
) -> None:
    (email,) = await seed_readers(_database_url(app), 1, lists=("news", "training"))
    subscriber_id = await _subscriber_id(db, email)
    edition_id, _ = await sent_edition(_database_url(app), [email])
    news = await db.pool.fetchval("SELECT id FROM lists WHERE slug = 'news'")
    endpoint = await register(client, admin_headers, receiver.url(), ["subscriber.unsubscribed"])
    token = runtime_of(app.state).signer.sign(Purpose.UNSUBSCRIBE, subscriber_id, news, edition_id)
    form = {"content-type": "application/x-www-form-urlencoded"}
    for _ in range(2):  # the second press changes nothing and fires nothing
        response = await client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=form)
        assert response.status_code == 200
    (body,) = await _delivered(client, app, admin_headers, receiver, endpoint, 1)
    assert body["type"] == "subscriber.unsubscribed"
    assert body["data"]["subscriber"]["id"] == subscriber_id and body["data"]["subscriber"]["email"] == email
    assert body["data"]["subscriber"]["status"] == "active", "still on the training list"
    assert (body["data"]["lists"], body["data"]["edition_id"], body["data"]["source"]) == (
        ["news"], edition_id, "one-click")


async def test_erasure_fires_subscriber_erased_without_the_address_and_scrubs_earlier_messages(
    client: Client, app: Litestar, admin_headers: Headers, db: Database, receiver: Receiver
) -> None:
    (email,) = await seed_readers(_database_url(app), 1)
    subscriber_id = await _subscriber_id(db, email)
    endpoint = await register(client, admin_headers, receiver.url(), ["subscriber.unsubscribed", "subscriber.erased"])
    unsubscribed = await client.patch(f"/v1/subscribers/{subscriber_id}", json={"status": "unsubscribed"},
                                      headers=admin_headers)
    assert unsubscribed.status_code == 200
    assert any(email in str(r["data"]) for r in await outbox(db)), "the waiting message names the reader"
    assert (await client.delete(f"/v1/subscribers/{subscriber_id}", headers=admin_headers)).status_code == 204
    rows = await outbox(db)
    assert not any(email.lower() in str(r["data"]).lower() for r in rows), "erasure reaches the outbox too"
    assert not any("Reader" in str(r["data"]) for r in rows), "and the name"
    erased, first = await _delivered(client, app, admin_headers, receiver, endpoint, 2)
    assert erased == {"type": "subscriber.erased", "timestamp": erased["timestamp"],
                      "data": {"subscriber": {"id": subscriber_id}}}
    assert first["data"]["subscriber"] == {"id": subscriber_id, "agency": "health", "role": "practitioner",
                                           "status": "unsubscribed"}
    assert email not in str([d.body for d in receiver.received])


async def test_bounces_and_complaints_fire_once_each(
    client: Client, app: Litestar, admin_headers: Headers, db: Database, receiver: Receiver
) -> None:
    url = _database_url(app)
    hard, soft, complaint, delayed = await seed_readers(url, 4)
    endpoint = await register(client, admin_headers, receiver.url(), ["bounce.hard", "bounce.soft", "complaint"])
    edition_id, copies = await sent_edition(url, [hard, soft, complaint, delayed])

    async def raw(copy: int, email: str, **fields: str) -> None:
        verp = f"bounce+{runtime_of(app.state).signer.sign(Purpose.VERP, copy)}@news.example.org"
        response = await client.post("/v1/bounces/raw", content=dsn_mail(verp, email, **fields),
                                     headers={**admin_headers, **RFC822})
        assert response.status_code == 200, response.text

    await raw(copies[3], delayed, action="delayed", status="4.4.1", diagnostic="Connection timed out")
    for _ in range(2):  # the same copy reported twice counts once
        await raw(copies[1], soft, action="failed", status="4.2.2", diagnostic="452 4.2.2 Mailbox full")
    await raw(copies[0], hard, action="failed", status="5.1.1", diagnostic="550 5.1.1 User unknown")
    reported = await client.post("/v1/bounces", json={"email": complaint, "kind": "complaint"}, headers=admin_headers)
    assert reported.status_code == 200 and reported.json() == {"matched": True}
    unknown = await client.post("/v1/bounces", json={"email": "nobody@example.org", "kind": "hard"},
                                headers=admin_headers)
    assert unknown.json() == {"matched": False}
    bodies = await _delivered(client, app, admin_headers, receiver, endpoint, 3)
    by_type = {b["type"]: b["data"] for b in bodies}
    assert sorted(by_type) == ["bounce.hard", "bounce.soft", "complaint"]
    assert by_type["bounce.soft"]["subscriber"]["email"] == soft
    assert by_type["bounce.soft"]["subscriber"]["status"] == "active", "one soft bounce suppresses nobody"
    assert (by_type["bounce.soft"]["edition_id"], by_type["bounce.soft"]["status"]) == (edition_id, "4.2.2")
    assert by_type["bounce.hard"]["subscriber"]["status"] == "bounced"
    assert by_type["bounce.hard"]["diagnostic"] == "550 5.1.1 User unknown"
    assert by_type["bounce.hard"]["source"] == "api-raw" and by_type["complaint"]["source"] == "api"
    assert by_type["complaint"]["subscriber"]["status"] == "complained"


async def test_a_hard_bounce_after_a_soft_one_of_the_same_copy_fires_as_it_suppresses(
    client: Client, app: Litestar, admin_headers: Headers, db: Database, receiver: Receiver
) -> None:
    url = _database_url(app)
    (email,) = await seed_readers(url, 1)
    endpoint = await register(client, admin_headers, receiver.url(), ["bounce.hard", "bounce.soft"])
    _, (copy,) = await sent_edition(url, [email])
    verp = f"bounce+{runtime_of(app.state).signer.sign(Purpose.VERP, copy)}@news.example.org"
    for fields in ({"status": "4.2.2", "diagnostic": "452 Mailbox full"},
                   {"status": "5.1.1", "diagnostic": "550 User unknown"},
                   {"status": "5.1.1", "diagnostic": "550 User unknown"}):
        response = await client.post("/v1/bounces/raw", content=dsn_mail(verp, email, action="failed", **fields),
                                     headers={**admin_headers, **RFC822})
        assert response.status_code == 200
    bodies = await _delivered(client, app, admin_headers, receiver, endpoint, 2)
    assert [b["type"] for b in bodies] == ["bounce.hard", "bounce.soft"], "the repeat of the hard one fires nothing"


async def test_an_edition_done_and_paused_fire(
    client: Client, app: Litestar, admin_headers: Headers, db: Database, receiver: Receiver, smtp_sink: SmtpSink
) -> None:
    await seed_readers(_database_url(app), 2)
    endpoint = await register(client, admin_headers, receiver.url(), ["edition.done", "edition.paused"])
    later = await client.post("/v1/editions", headers={**admin_headers, "Idempotency-Key": "later"},
                              json={"subject": "Later", "html": "<p>Hi</p>", "lists": ["news"],
                                    "send_at": "2099-01-01T00:00:00Z"})
    assert (await client.post(f"/v1/editions/{later.json()['id']}/pause", headers=admin_headers)).status_code == 200
    again = await client.post(f"/v1/editions/{later.json()['id']}/pause", headers=admin_headers)
    assert again.status_code == 409, "a refused pause fires nothing"
    now = await client.post("/v1/editions", headers={**admin_headers, "Idempotency-Key": "now"},
                            json={"subject": "Now", "html": "<p>Hi</p>", "lists": ["news"]})
    done, paused = await _delivered(client, app, admin_headers, receiver, endpoint, 2)
    assert paused["type"] == "edition.paused"
    assert paused["data"]["edition"] == {
        "id": later.json()["id"], "subject": "Later", "status": "paused", "reason": None, "lists": ["news"],
        "recipients": 2, "queued": 2, "sent": 0, "failed": 0, "skipped": 0, "bounced": 0, "complained": 0,
        "unsubscribed": 0,
    }
    assert done["type"] == "edition.done"
    assert done["data"]["edition"]["id"] == now.json()["id"] and done["data"]["edition"]["status"] == "done"
    assert (done["data"]["edition"]["sent"], done["data"]["edition"]["queued"]) == (2, 0)
    assert len(smtp_sink.received) == 2


async def test_the_worker_pausing_an_edition_fires_edition_paused(
    client: Client, app: Litestar, admin_headers: Headers, receiver: Receiver, smtp_sink: SmtpSink
) -> None:
    await seed_readers(_database_url(app), 2)
    endpoint = await register(client, admin_headers, receiver.url(), ["edition.paused", "edition.done"])
    smtp_sink.mail_reply = "550 5.7.1 Sender address rejected: not owned by user"
    posted = await client.post("/v1/editions", headers={**admin_headers, "Idempotency-Key": "refused"},
                               json={"subject": "Refused", "html": "<p>Hi</p>", "lists": ["news"]})
    (body,) = await _delivered(client, app, admin_headers, receiver, endpoint, 1)
    assert body["type"] == "edition.paused" and body["data"]["edition"]["id"] == posted.json()["id"]
    assert "refuses every copy" in body["data"]["edition"]["reason"]


async def test_a_change_that_rolls_back_leaves_no_event(
    client: Client, app: Litestar, admin_headers: Headers, db: Database, receiver: Receiver
) -> None:
    (email,) = await seed_readers(_database_url(app), 1)
    subscriber_id = await _subscriber_id(db, email)
    await register(client, admin_headers, receiver.url())
    actor = lifecycle.Actor.of("api", None, None)

    async def unsubscribe_then_fail() -> None:
        async with db.transaction() as conn:
            assert await lifecycle.unsubscribe(conn, db.q, subscriber_id, None, None, actor) == ["news"]
            assert len(await conn.fetch("SELECT 1 FROM event_messages")) == 1, "written with the change"
            raise RuntimeError("a later step of the same change fails")

    async def erase_then_fail() -> None:
        async with db.transaction() as conn:
            assert await lifecycle.erase(conn, db.q, runtime_of(app.state).settings, subscriber_id)
            raise RuntimeError("a later step of the same change fails")

    with pytest.raises(RuntimeError):
        await unsubscribe_then_fail()
    with pytest.raises(RuntimeError):
        await erase_then_fail()
    assert await outbox(db) == []
    assert await db.pool.fetchval("SELECT status FROM subscribers WHERE id = $1", subscriber_id) == "active"


async def test_the_complaint_guard_pausing_an_edition_fires_edition_paused(
    client: Client, app: Litestar, admin_headers: Headers, receiver: Receiver
) -> None:
    settings = runtime_of(app.state).settings
    endpoint = await register(client, admin_headers, receiver.url(), ["edition.paused"])
    edition_id, emails = await _sending_edition(client, settings, admin_headers, 21)
    await _report(client, admin_headers, emails[0], "complaint", edition_id)
    await _guard(settings, guard_min_sent=10)
    (body,) = await _delivered(client, app, admin_headers, receiver, endpoint, 1)
    assert body["data"]["edition"]["id"] == edition_id and body["data"]["edition"]["status"] == "paused"
    assert body["data"]["edition"]["reason"].startswith("guard: 1 complaints in 20 copies sent")
