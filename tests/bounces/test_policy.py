"""What bounces and complaints do to a reader, through ``POST /v1/bounces``: hard, complaint, soft
counting (limit, window, "no delivery in between"), unknown addresses, edition counts, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.bounces.sends import fetch, key_headers, reader_state, sent_edition, value
from tests.support.seed import seed_readers

Client = AsyncTestClient[Litestar]


async def _bounce(client: Client, headers: dict[str, str], **body: Any) -> bool:
    response = await client.post("/v1/bounces", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return bool(response.json()["matched"])


async def test_hard_bounce_suppresses_at_once(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    alice, bob = await seed_readers(url, 2)
    reason = "smtp; 550 5.1.1 <x>... User unknown"
    assert await _bounce(client, admin_headers, email=alice.upper(), kind="hard", reason=reason)
    assert await reader_state(url, alice) == {
        "status": "bounced", "soft_bounces": 0, "suppressed": "hard_bounce", "lists": ["confirmed"],
    }  # fmt: skip
    assert (await reader_state(url, bob))["status"] == "active"
    (event,) = await fetch(url, "SELECT kind, status, diagnostic, source FROM bounce_events")
    assert dict(event) == {"kind": "hard", "status": "5.1.1", "diagnostic": reason, "source": "api"}


async def test_complaint_unsubscribes_from_every_list_and_suppresses(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1, lists=("news", "training"))
    assert await _bounce(client, admin_headers, email=alice, kind="complaint")
    assert await reader_state(url, alice) == {
        "status": "complained", "soft_bounces": 0, "suppressed": "complaint", "lists": ["unsubscribed"] * 2,
    }  # fmt: skip


async def test_soft_bounces_suppress_at_the_limit(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    for expected in (1, 2):
        assert await _bounce(client, admin_headers, email=alice, kind="soft", reason="452 4.2.2 Mailbox full")
        state = await reader_state(url, alice)
        assert (state["status"], state["soft_bounces"], state["suppressed"]) == ("active", expected, None)
    assert await _bounce(client, admin_headers, email=alice, kind="soft", reason="452 4.2.2 Mailbox full")
    state = await reader_state(url, alice)
    assert (state["status"], state["suppressed"]) == ("bounced", "soft_bounce")
    detail = await value(url, "SELECT detail FROM suppressions")
    assert detail.startswith("3 soft bounces")


async def test_soft_bounces_outside_the_window_start_again(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    for _ in range(2):
        await _bounce(client, admin_headers, email=alice, kind="soft")
    await fetch(url, "UPDATE subscribers SET first_soft_bounce_at = now() - interval '31 days'")
    await _bounce(client, admin_headers, email=alice, kind="soft")
    state = await reader_state(url, alice)
    assert (state["status"], state["soft_bounces"], state["suppressed"]) == ("active", 1, None)


async def test_soft_bounces_across_editions_add_up(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    for _ in range(3):
        # Each edition's copy bounces before the next is sent: no copy got through in between.
        await sent_edition(url, [alice])
        await _bounce(client, admin_headers, email=alice, kind="soft")
    state = await reader_state(url, alice)
    assert (state["status"], state["suppressed"]) == ("bounced", "soft_bounce")
    tied = await value(url, "SELECT count(DISTINCT delivery_id) FROM bounce_events")
    assert tied == 3


async def test_a_delivery_in_between_restarts_the_count(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    await sent_edition(url, [alice])
    await _bounce(client, admin_headers, email=alice, kind="soft")
    await sent_edition(url, [alice])  # delivered: no bounce ever comes for it
    await sent_edition(url, [alice])
    await _bounce(client, admin_headers, email=alice, kind="soft")
    await sent_edition(url, [alice])
    await _bounce(client, admin_headers, email=alice, kind="soft")
    state = await reader_state(url, alice)
    assert (state["status"], state["soft_bounces"], state["suppressed"]) == ("active", 2, None)


async def test_unknown_addresses_change_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    await seed_readers(url, 1)
    for kind in ("hard", "soft", "complaint"):
        assert not await _bounce(client, admin_headers, email="stranger@example.net", kind=kind)
    assert await value(url, "SELECT count(*) FROM bounce_events") == 0
    assert await value(url, "SELECT count(*) FROM suppressions") == 0


async def test_the_edition_counts_its_bounces_and_complaints(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    alice, bob, carol = await seed_readers(url, 3)
    edition_id, deliveries = await sent_edition(url, [alice, bob, carol])
    assert await _bounce(client, admin_headers, email=alice, kind="hard", edition_id=edition_id)
    assert await _bounce(client, admin_headers, email=bob, kind="complaint", edition_id=edition_id)
    shown = (await client.get(f"/v1/editions/{edition_id}", headers=admin_headers)).json()
    assert (shown["bounced"], shown["complained"]) == (1, 1)
    tied = await fetch(url, "SELECT delivery_id, edition_id FROM bounce_events ORDER BY id")
    assert [tuple(r) for r in tied] == [(deliveries[0], edition_id), (deliveries[1], edition_id)]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"email": "not-an-address", "kind": "hard"}, "valid e-mail"),
        ({"email": "a@example.org", "kind": "bounced"}, "kind"),
        ({"email": "a@example.org"}, "kind"),
        ({"email": "a@example.org", "kind": "hard", "colour": "red"}, "colour"),
        ({"email": "a@example.org", "kind": "hard", "edition_id": 424242}, "no edition 424242"),
        ({"email": "a@example.org", "kind": "hard", "edition_id": 0}, "edition_id"),
    ],
)
async def test_bad_reports_are_422_and_change_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings, body: dict[str, Any], words: str
) -> None:
    url = settings.database_url or ""
    await seed_readers(url, 1)
    response = await client.post("/v1/bounces", json=body, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]
    assert await value(url, "SELECT count(*) FROM bounce_events") == 0


async def test_reporting_needs_the_bounces_write_scope(client: Client, settings: Settings) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    body = {"email": alice, "kind": "hard"}
    assert (await client.post("/v1/bounces", json=body)).status_code == 401
    reader_key = await key_headers(url, "subscribers:read", "editions:write")
    assert (await client.post("/v1/bounces", json=body, headers=reader_key)).status_code == 403
    writer_key = await key_headers(url, "bounces:write")
    assert (await client.post("/v1/bounces", json=body, headers=writer_key)).status_code == 200
    assert (await reader_state(url, alice))["status"] == "bounced"
