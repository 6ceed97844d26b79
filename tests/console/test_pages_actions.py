"""What the console's pages change: steering editions, editing and erasing readers, lists and suppressions.

Each change is refused to a role below the one it needs (403 page), writes its audit entry in the
same transaction, and bad input is a 4xx page that leaves the data as it was.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.support.console import signed_in
from tests.support.console_data import seed_console, sql
from tests.support.smtp import SmtpSink

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def data(client: Client, settings: Settings, admin_headers: dict[str, str]) -> dict[str, Any]:
    """Six readers and an edition part-way through (nobody signed in yet)."""
    return await seed_console(settings.database_url or "", client, admin_headers)


async def audit_actions(settings: Settings) -> list[tuple[str, str, str]]:
    """(actor, action, object id) of every audit entry made in the console (not the seeding's /v1 posts)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        return [tuple(r) for r in await conn.fetch("SELECT actor, action, object_id FROM audit_log WHERE actor <> 'bootstrap' ORDER BY id")]
    finally:
        await conn.close()


def assert_page(response: Any, status: int, words: str) -> None:
    """An HTML console page with ``status`` saying ``words``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert words in response.text


async def test_viewer_cannot_steer_an_edition(client: Client, data: dict[str, Any], settings: Settings) -> None:
    csrf = await signed_in(client, settings, "viewer")
    edition_id = data["edition_id"]
    for change in ("pause", "resume", "cancel"):
        refused = await client.post(f"/console/editions/{edition_id}/{change}", data={"csrf": csrf})
        assert_page(refused, 403, "This needs the editor role")
    assert await sql(settings, "SELECT status FROM editions WHERE id = $1", edition_id) == "sending"
    assert await audit_actions(settings) == []


async def test_editor_is_sent_a_proof_of_the_edition_and_a_viewer_is_not(
    client: Client, data: dict[str, Any], settings: Settings, smtp_sink: SmtpSink
) -> None:
    edition_id = data["edition_id"]
    copies = await sql(settings, "SELECT count(*) FROM deliveries WHERE edition_id = $1", edition_id)
    viewer_csrf = await signed_in(client, settings, "viewer")
    assert "Send me a proof" not in (await client.get(f"/console/editions/{edition_id}")).text
    refused = await client.post(f"/console/editions/{edition_id}/proof", data={"csrf": viewer_csrf})
    assert_page(refused, 403, "This needs the editor role")
    await client.post("/console/sign-out", data={"csrf": viewer_csrf})

    csrf = await signed_in(client, settings, "editor")
    assert "Send me a proof" in (await client.get(f"/console/editions/{edition_id}")).text
    sent = await client.post(f"/console/editions/{edition_id}/proof", data={"csrf": csrf})
    assert sent.status_code == 303 and sent.headers["location"] == f"/console/editions/{edition_id}?proof=sent"
    (proof,) = await smtp_sink.wait_for(1)
    assert proof.rcpt_tos == ["editor@example.org"]
    message = proof.parsed()
    assert message["X-Letterbox-Proof"] == "yes"
    subject = await sql(settings, "SELECT subject FROM editions WHERE id = $1", edition_id)
    assert message["Subject"] == subject
    shown = await client.get(sent.headers["location"])
    assert "A proof is on its way to editor@example.org" in shown.text
    # A proof is no copy: the edition's deliveries are as they were; the change is audited.
    assert await sql(settings, "SELECT count(*) FROM deliveries WHERE edition_id = $1", edition_id) == copies
    assert await audit_actions(settings) == [("editor@example.org", "edition.proof", str(edition_id))]


async def test_a_proof_of_an_unknown_edition_is_a_404_page(client: Client, data: dict[str, Any],
                                                          settings: Settings, smtp_sink: SmtpSink) -> None:
    csrf = await signed_in(client, settings, "editor")
    missing = await client.post("/console/editions/999999/proof", data={"csrf": csrf})
    assert_page(missing, 404, "There is no edition 999999")
    assert smtp_sink.received == []


async def test_editor_pauses_resumes_and_cancels(client: Client, data: dict[str, Any], settings: Settings) -> None:
    csrf = await signed_in(client, settings, "editor")
    edition_id = data["edition_id"]
    page = await client.get(f"/console/editions/{edition_id}")
    assert "Pause sending" in page.text and "Cancel this edition" in page.text and "Resume sending" not in page.text

    paused = await client.post(f"/console/editions/{edition_id}/pause", data={"csrf": csrf})
    assert paused.status_code == 303 and paused.headers["location"] == f"/console/editions/{edition_id}"
    assert await sql(settings, "SELECT status FROM editions WHERE id = $1", edition_id) == "paused"
    assert "Resume sending" in (await client.get(f"/console/editions/{edition_id}")).text
    # The pause told event endpoints, as a /v1 pause does (same domain code).
    assert_page(await client.post(f"/console/editions/{edition_id}/pause", data={"csrf": csrf}), 409,
                "is paused and cannot be paused")

    assert (await client.post(f"/console/editions/{edition_id}/resume", data={"csrf": csrf})).status_code == 303
    assert await sql(settings, "SELECT status FROM editions WHERE id = $1", edition_id) == "queued"
    assert (await client.post(f"/console/editions/{edition_id}/cancel", data={"csrf": csrf})).status_code == 303
    assert await sql(settings, "SELECT status FROM editions WHERE id = $1", edition_id) == "cancelled"
    assert await sql(settings, "SELECT count(*) FROM deliveries WHERE status = 'queued'") == 0
    assert await audit_actions(settings) == [
        ("editor@example.org", f"edition.{change}", str(edition_id)) for change in ("pause", "resume", "cancel")
    ]
    assert_page(await client.post("/console/editions/987654/pause", data={"csrf": csrf}), 404, "no edition 987654")


async def test_editor_edits_a_reader(client: Client, data: dict[str, Any], settings: Settings) -> None:
    csrf = await signed_in(client, settings, "editor")
    reader = data["subscriber_ids"][3]
    page = await client.get(f"/console/subscribers/{reader}")
    assert "Save changes" in page.text and "Erase this reader" not in page.text
    saved = await client.post(f"/console/subscribers/{reader}", data={
        "csrf": csrf, "name": "Pat Reader", "agency": "health", "role": "lead", "status": ""})
    assert saved.status_code == 303 and saved.headers["location"] == f"/console/subscribers/{reader}?saved=1"
    row = await sql(settings, "SELECT (name, agency, role, status)::text FROM subscribers WHERE id = $1", reader)
    assert row == '("Pat Reader",health,lead,active)'
    assert "The changes are saved." in (await client.get(saved.headers["location"])).text
    left = await client.post(f"/console/subscribers/{reader}", data={
        "csrf": csrf, "name": "Pat Reader", "agency": "health", "role": "lead", "status": "unsubscribed"})
    assert left.status_code == 303
    assert await sql(settings, "SELECT status FROM subscribers WHERE id = $1", reader) == "unsubscribed"
    assert [a[1] for a in await audit_actions(settings)] == ["subscriber.update", "subscriber.update"]


@pytest.mark.parametrize(("fields", "status", "words"), [
    ({"agency": "nowhere"}, 400, "nowhere"),
    ({"agency": "Not A Slug!"}, 400, "cannot be saved"),
    ({"status": "active"}, 409, "cannot be made active"),
    ({"status": "deleted"}, 400, "Choose a status"),
    ({"name": "x" * 201}, 400, "cannot be saved"),
])
async def test_a_bad_reader_edit_changes_nothing(client: Client, data: dict[str, Any], settings: Settings,
                                                 fields: dict[str, str], status: int, words: str) -> None:
    csrf = await signed_in(client, settings, "editor")
    reader = data["subscriber_ids"][3]
    await sql(settings, "UPDATE subscribers SET status = 'unsubscribed' WHERE id = $1", reader)
    before = await sql(settings, "SELECT (name, agency, role, status)::text FROM subscribers WHERE id = $1", reader)
    form = {"csrf": csrf, "name": "Changed", "agency": "", "role": "", "status": "", **fields}
    assert_page(await client.post(f"/console/subscribers/{reader}", data=form), status, words)
    assert await sql(settings, "SELECT (name, agency, role, status)::text FROM subscribers WHERE id = $1",
                     reader) == before
    assert await audit_actions(settings) == []


async def test_viewer_cannot_edit_a_reader(client: Client, data: dict[str, Any], settings: Settings) -> None:
    csrf = await signed_in(client, settings, "viewer")
    reader = data["subscriber_ids"][3]
    assert_page(await client.post(f"/console/subscribers/{reader}", data={"csrf": csrf, "name": "X"}), 403,
                "This needs the editor role")


async def test_export_downloads_everything_held(client: Client, data: dict[str, Any], settings: Settings) -> None:
    await signed_in(client, settings, "viewer")
    reader = data["subscriber_ids"][0]
    export = await client.get(f"/console/subscribers/{reader}/export")
    assert export.status_code == 200
    assert export.headers["content-disposition"] == f'attachment; filename="reader-{reader}.json"'
    body = export.json()
    assert body["subscriber"]["email"] == data["emails"][0]
    assert body["deliveries"]["by_status"] == {"failed": 1}
    assert len(body["bounce_events"]) == 1


@pytest.mark.parametrize("role", ["viewer", "editor"])
async def test_only_an_admin_may_erase(client: Client, data: dict[str, Any], settings: Settings, role: str) -> None:
    csrf = await signed_in(client, settings, role)
    reader = data["subscriber_ids"][0]
    assert_page(await client.get(f"/console/subscribers/{reader}/erase"), 403, "This needs the admin role")
    assert_page(await client.post(f"/console/subscribers/{reader}/erase", data={"csrf": csrf}), 403,
                "This needs the admin role")
    assert await sql(settings, "SELECT count(*) FROM subscribers WHERE id = $1", reader) == 1


async def test_admin_erases_after_a_confirmation(client: Client, data: dict[str, Any], settings: Settings) -> None:
    csrf = await signed_in(client, settings, "admin")
    reader, email = data["subscriber_ids"][0], data["emails"][0]
    page = await client.get(f"/console/subscribers/{reader}")
    assert f'href="/console/subscribers/{reader}/erase"' in page.text
    confirmation = await client.get(f"/console/subscribers/{reader}/erase")
    assert_page(confirmation, 200, "This cannot be undone")
    assert await sql(settings, "SELECT count(*) FROM subscribers WHERE id = $1", reader) == 1, "asking erased nothing"
    erased = await client.post(f"/console/subscribers/{reader}/erase", data={"csrf": csrf})
    assert_page(erased, 200, "Reader erased")
    assert await sql(settings, "SELECT count(*) FROM subscribers WHERE id = $1", reader) == 0
    assert await sql(settings, "SELECT reason FROM suppressions WHERE email_hash = email_hash($1)", email) == "erasure"
    assert await audit_actions(settings) == [("admin@example.org", "subscriber.erase", str(reader))]
    assert_page(await client.get(f"/console/subscribers/{reader}"), 404, "or they were erased")
    assert_page(await client.post(f"/console/subscribers/{reader}/erase", data={"csrf": csrf}), 404,
                "already erased")


async def test_editor_adds_renames_and_archives_lists(client: Client, data: dict[str, Any],
                                                      settings: Settings) -> None:
    csrf = await signed_in(client, settings, "editor")
    added = await client.post("/console/lists", data={"csrf": csrf, "slug": "alerts", "name": "Alerts",
                                                      "description": "Urgent notices", "public": "yes"})
    assert added.status_code == 303 and added.headers["location"] == "/console/lists?saved=alerts"
    assert await sql(settings, "SELECT public FROM lists WHERE slug = 'alerts'") is True
    assert_page(await client.post("/console/lists", data={"csrf": csrf, "slug": "alerts", "name": "Again"}), 409,
                "That short name is taken")
    assert_page(await client.post("/console/lists", data={"csrf": csrf, "slug": "Bad Slug", "name": "B"}), 400,
                "cannot be saved")
    renamed = await client.post("/console/lists/alerts", data={"csrf": csrf, "action": "rename",
                                                               "name": "Safeguarding alerts", "description": ""})
    assert renamed.status_code == 303
    assert await sql(settings, "SELECT name FROM lists WHERE slug = 'alerts'") == "Safeguarding alerts"
    archived = await client.post("/console/lists/alerts", data={"csrf": csrf, "action": "archive"})
    assert archived.status_code == 303
    assert await sql(settings, "SELECT (archived_at IS NOT NULL, public)::text FROM lists WHERE slug = 'alerts'") \
        == "(t,f)"
    assert "Safeguarding alerts" not in (await client.get("/subscribe")).text, "archived lists leave the form"
    assert_page(await client.post("/console/lists/alerts", data={"csrf": csrf, "action": "archive"}), 400,
                "already archived")
    assert (await client.post("/console/lists/alerts", data={"csrf": csrf, "action": "restore"})).status_code == 303
    assert_page(await client.post("/console/lists/nope", data={"csrf": csrf, "action": "archive"}), 404,
                "There is no list")
    assert_page(await client.post("/console/lists/alerts", data={"csrf": csrf, "action": "drop"}), 400,
                "Choose rename, archive or restore")
    for kind, path in (("agency", "/console/agencies"), ("role", "/console/roles")):
        assert (await client.post(path, data={"csrf": csrf, "slug": "probation", "name": "Probation"})).status_code \
            == 303
        assert_page(await client.post(path, data={"csrf": csrf, "slug": "probation", "name": "P"}), 409, "taken")
        assert await sql(settings, f"SELECT name FROM {'agencies' if kind == 'agency' else 'roles'} "  # noqa: S608
                                   "WHERE slug = 'probation'") == "Probation"
    assert [a[1] for a in await audit_actions(settings)] == [
        "list.create", "list.rename", "list.archive", "list.restore", "agency.create", "role.create"]


async def test_viewer_cannot_change_lists(client: Client, data: dict[str, Any], settings: Settings) -> None:
    csrf = await signed_in(client, settings, "viewer")
    assert_page(await client.post("/console/lists", data={"csrf": csrf, "slug": "x", "name": "X"}), 403,
                "This needs the editor role")
    assert_page(await client.post("/console/agencies", data={"csrf": csrf, "slug": "x", "name": "X"}), 403,
                "This needs the editor role")


async def test_admin_adds_and_lifts_suppressions(client: Client, data: dict[str, Any], settings: Settings) -> None:
    csrf = await signed_in(client, settings, "admin")
    added = await client.post("/console/suppressions", data={"csrf": csrf, "email": "Someone@Example.org",
                                                             "detail": "asked by phone"})
    assert added.status_code == 303
    assert await sql(settings, "SELECT reason || ':' || detail FROM suppressions WHERE email = 'someone@example.org'") \
        == "manual:asked by phone"
    assert_page(await client.post("/console/suppressions", data={"csrf": csrf, "email": "not an address"}), 400,
                "E-mail address")
    page = await client.get("/console/suppressions?done=added")
    assert "The address is suppressed." in page.text and "Lift<span" in page.text
    lifted = await client.post("/console/suppressions/lift", data={"csrf": csrf, "email": "someone@example.org"})
    assert lifted.status_code == 303
    assert await sql(settings, "SELECT count(*) FROM suppressions") == 0
    assert_page(await client.post("/console/suppressions/lift", data={"csrf": csrf, "email": "someone@example.org"}),
                404, "not suppressed")
    assert [a[1] for a in await audit_actions(settings)] == ["suppression.add", "suppression.lift"]


async def test_editor_cannot_change_suppressions(client: Client, data: dict[str, Any], settings: Settings) -> None:
    csrf = await signed_in(client, settings, "editor")
    assert_page(await client.post("/console/suppressions", data={"csrf": csrf, "email": "a@example.org"}), 403,
                "This needs the admin role")
    assert "Suppress an address" not in (await client.get("/console/suppressions")).text
