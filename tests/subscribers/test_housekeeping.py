"""The demo taxonomy and the purge of sign-ups never confirmed."""

from __future__ import annotations

from service.db.pool import Database
from service.settings import Settings
from service.subscribers.demo import load_demo
from service.subscribers.purge import purge_pending
from tests.conftest import replace_settings
from tests.subscribers.conftest import Client, rows, subscribe, value


async def test_demo_loads_a_real_form_and_is_idempotent(client: Client, db: Database) -> None:
    await db.pool.execute("INSERT INTO agencies (slug, name) VALUES ('police', 'Constabulary')")
    await load_demo(db)
    await load_demo(db)
    assert await value(db, "SELECT count(*) FROM lists") == 3
    assert await value(db, "SELECT name FROM agencies WHERE slug = 'police'") == "Constabulary", "nothing overwritten"
    roles = {r["slug"] for r in await rows(db, "SELECT slug FROM roles")}
    assert roles == {"practitioner", "operational-manager", "strategic-lead", "designated-safeguarding-lead"}
    page = (await client.get("/subscribe")).text
    assert "Children&#39;s social care" in page and "Practice review briefings" in page


async def test_pending_sign_ups_are_purged_after_the_limit(client: Client, db: Database, settings: Settings) -> None:
    await load_demo(db)
    for email in ("old@example.org", "recent@example.org", "active@example.org"):
        assert (await subscribe(client, email)).status_code == 200
    await db.pool.execute("UPDATE subscribers SET status = 'active', confirmed_at = now() "
                          "WHERE email = 'active@example.org'")
    await db.pool.execute("UPDATE subscriptions SET status = 'confirmed' WHERE subscriber_id = "
                          "(SELECT id FROM subscribers WHERE email = 'active@example.org')")
    assert (await subscribe(client, "active@example.org", lists=("training",))).status_code == 200
    await db.pool.execute("UPDATE subscribers SET updated_at = now() - interval '31 days', "
                          "created_at = now() - interval '31 days' WHERE email <> 'recent@example.org'")
    await db.pool.execute("UPDATE subscriptions SET updated_at = now() - interval '31 days' WHERE status = 'pending' "
                          "AND subscriber_id <> (SELECT id FROM subscribers WHERE email = 'recent@example.org')")

    assert await purge_pending(db, replace_settings(settings, pending_purge_days=30)) == 1
    left = {r["email"]: r["status"] for r in await rows(db, "SELECT email, status FROM subscribers")}
    assert left == {"recent@example.org": "pending", "active@example.org": "active"}
    active = await rows(db, "SELECT l.slug, s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id "
                            "JOIN subscribers p ON p.id = s.subscriber_id WHERE p.email = 'active@example.org'")
    assert [tuple(r) for r in active] == [("newsletter", "confirmed")], "the unconfirmed list request is forgotten"
    assert await value(db, "SELECT count(*) FROM system_mails WHERE recipient = 'old@example.org'") == 0
    assert await purge_pending(db, settings) == 0
