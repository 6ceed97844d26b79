"""``/v1/suppressions``: keyset pages newest first, erased people without an address, lifting one."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.bounces.sends import fetch, key_headers, reader_state, value
from tests.support.seed import seed_readers

Client = AsyncTestClient[Litestar]


async def _suppress(url: str, email: str, reason: str, minutes_ago: int, *, erased: bool = False) -> None:
    await fetch(
        url,
        """
        INSERT INTO suppressions (email_hash, email, reason, detail, created_at)
        VALUES (email_hash($1), CASE WHEN $4 THEN NULL ELSE lower($1) END, $2,
                CASE WHEN $4 THEN NULL ELSE 'why: ' || $2 END, date_trunc('second', now()) - make_interval(mins => $3))
        """,
        email,
        reason,
        minutes_ago,
        erased,
    )


async def test_pages_go_newest_first_and_end(client: Client, admin_headers: dict[str, str], settings: Settings) -> None:
    url = settings.database_url or ""
    await _suppress(url, "one@example.org", "hard_bounce", 50)
    await _suppress(url, "two@example.org", "complaint", 40)
    await _suppress(url, "three@example.org", "soft_bounce", 30)
    await _suppress(url, "tie-a@example.org", "manual", 20)  # same second as the next: the hash breaks the tie
    await _suppress(url, "tie-b@example.org", "manual", 20)
    await _suppress(url, "erased@example.org", "erasure", 10, erased=True)
    seen: list[dict[str, object]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/suppressions", params=params, headers=admin_headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    ties = sorted(["tie-a@example.org", "tie-b@example.org"], key=lambda e: hashlib.sha256(e.encode()).digest())
    assert [item["email"] for item in seen] == [
        None, *reversed(ties), "three@example.org", "two@example.org", "one@example.org",
    ]  # fmt: skip
    assert seen[0] == {"email": None, "reason": "erasure", "detail": None, "created_at": seen[0]["created_at"]}
    assert seen[-1]["reason"] == "hard_bounce" and seen[-1]["detail"] == "why: hard_bounce"


async def test_listing_needs_subscribers_read_and_a_good_cursor(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    await _suppress(url, "one@example.org", "hard_bounce", 5)
    reader = await key_headers(url, "subscribers:read")
    assert (await client.get("/v1/suppressions", headers=reader)).json()["items"][0]["email"] == "one@example.org"
    assert (await client.get("/v1/suppressions", headers=await key_headers(url, "bounces:write"))).status_code == 403
    assert (await client.get("/v1/suppressions")).status_code == 401
    for params in ({"cursor": "nonsense"}, {"cursor": "12-" + "zz" * 32}, {"limit": "0"}, {"limit": "1001"}):
        response = await client.get("/v1/suppressions", params=params, headers=admin_headers)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"


async def test_lifting_a_bounce_suppression_restarts_the_soft_count(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    for _ in range(3):
        await client.post("/v1/bounces", json={"email": alice, "kind": "soft"}, headers=admin_headers)
    assert (await reader_state(url, alice))["suppressed"] == "soft_bounce"
    response = await client.delete(f"/v1/suppressions/{quote(alice.upper())}", headers=admin_headers)
    assert response.status_code == 204, response.text
    state = await reader_state(url, alice)
    assert (state["suppressed"], state["soft_bounces"]) == (None, 0)
    again = await client.delete(f"/v1/suppressions/{quote(alice)}", headers=admin_headers)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"


async def test_an_erased_persons_suppression_is_lifted_by_giving_the_address(
    client: Client, settings: Settings
) -> None:
    url = settings.database_url or ""
    await _suppress(url, "gone@example.org", "erasure", 1, erased=True)
    writer = await key_headers(url, "subscribers:write")
    assert (await client.delete("/v1/suppressions/someone-else@example.org", headers=writer)).status_code == 404
    assert (await client.delete("/v1/suppressions/gone@example.org", headers=writer)).status_code == 204
    assert await value(url, "SELECT count(*) FROM suppressions") == 0


async def test_lifting_needs_subscribers_write_and_an_address(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    await _suppress(url, "one@example.org", "complaint", 1)
    reader = await key_headers(url, "subscribers:read", "bounces:write")
    assert (await client.delete("/v1/suppressions/one@example.org", headers=reader)).status_code == 403
    for bad in ("no-at-sign", quote("two words@example.org"), "x" * 330 + "@example.org"):
        response = await client.delete(f"/v1/suppressions/{bad}", headers=admin_headers)
        assert response.status_code == 422, bad
    assert await value(url, "SELECT count(*) FROM suppressions") == 1
