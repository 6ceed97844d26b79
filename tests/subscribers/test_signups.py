"""Form sign-ups are recorded durably before the answer: one a crash left undecided is decided by a worker."""

from __future__ import annotations

import pytest
from litestar import Litestar

from service.db.pool import Database
from service.settings import Settings
from service.subscribers import lifecycle, signups
from service.taxonomy.terms import ListRef
from tests.subscribers.conftest import Client, rows, subscribe, value

pytestmark = pytest.mark.usefixtures("demo")


async def test_the_form_leaves_nothing_waiting_once_answered(client: Client, db: Database) -> None:
    assert (await subscribe(client, "ann@example.org")).status_code == 200
    assert await value(db, "SELECT count(*) FROM sign_up_requests") == 0
    assert await value(db, "SELECT count(*) FROM system_mails WHERE recipient = 'ann@example.org'") == 1


async def test_a_sign_up_its_process_never_decided_is_decided_by_a_worker(
    client: Client, app: Litestar, db: Database, settings: Settings
) -> None:
    newsletter = (await rows(db, "SELECT id, slug, name, public FROM lists WHERE slug = 'newsletter'"))[0]
    sign_up = lifecycle.SignUp(email="bob@example.org", name="Bob", agency=None, role=None,
                               lists=[ListRef(newsletter["id"], newsletter["slug"], newsletter["name"], True)])
    # The form recorded it and answered; the process died before its background task ran.
    recorded = await signups.record(db.pool, db.q, settings, sign_up, lifecycle.Actor.of("form", "192.0.2.7", "test"),
                                    "192.0.2.7", 0.0)
    assert recorded.request_id is not None
    assert await signups.decide_left_behind(db) == 0, "not yet: its process may decide it"
    await db.pool.execute("UPDATE sign_up_requests SET created_at = now() - interval '1 minute'")
    assert await signups.decide_left_behind(db) == 1
    assert await value(db, "SELECT count(*) FROM sign_up_requests") == 0
    assert await value(db, "SELECT status FROM subscribers WHERE email = 'bob@example.org'") == "pending"
    assert await value(db, "SELECT count(*) FROM system_mails WHERE recipient = 'bob@example.org'") == 1
    consent = (await rows(db, "SELECT source, host(ip) AS ip FROM consents"))[0]
    assert (consent["source"], consent["ip"]) == ("form", "192.0.2.7")
