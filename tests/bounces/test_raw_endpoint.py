"""``POST /v1/bounces/raw``: real corpus mails, dry runs, unknown addresses, forged VERP tokens, and a
real edition sent by the worker whose VERP bounce comes back and is counted."""

from __future__ import annotations

import asyncio
import time

from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from service.tokens import Purpose, TokenSigner
from tests.bounces.sends import corpus_mail, fetch, key_headers, reader_state, sent_edition, value
from tests.conftest import replace_settings
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

Client = AsyncTestClient[Litestar]
RFC822 = {"Content-Type": "message/rfc822"}


async def _post_raw(
    client: Client, headers: dict[str, str], raw: bytes, *, dry_run: bool = False, status: int = 200
) -> list[dict[str, object]]:
    response = await client.post(
        "/v1/bounces/raw", content=raw, params={"dry_run": str(dry_run).lower()}, headers={**headers, **RFC822}
    )
    assert response.status_code == status, response.text
    return list(response.json()["events"]) if status == 200 else []


async def test_corpus_bounces_and_complaints_act_on_our_readers(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    hard, soft, complainer = await seed_readers(url, 3)
    events = await _post_raw(client, admin_headers, corpus_mail("lhost-postfix-01.eml", {"kijitora@example.org": hard}))
    assert events == [
        {"email": hard, "kind": "hard", "status": "5.1.1", "diagnostic": events[0]["diagnostic"], "matched": True}
    ]
    assert "No such user" in str(events[0]["diagnostic"])
    events = await _post_raw(client, admin_headers, corpus_mail("lhost-postfix-05.eml", {"kijitora@example.org": soft}))
    assert [(e["email"], e["kind"], e["status"], e["matched"]) for e in events] == [(soft, "soft", "4.1.1", True)]
    events = await _post_raw(client, admin_headers, corpus_mail("arf-12.eml", {"user@example.com": complainer}))
    assert [(e["email"], e["kind"], e["matched"]) for e in events] == [(complainer, "complaint", True)]
    assert (await reader_state(url, hard))["status"] == "bounced"
    assert (await reader_state(url, soft))["soft_bounces"] == 1
    assert (await reader_state(url, complainer))["status"] == "complained"
    sources = await fetch(url, "SELECT DISTINCT source FROM bounce_events")
    assert [r["source"] for r in sources] == ["api-raw"]


async def test_a_report_naming_several_recipients_acts_on_each(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    raw = corpus_mail("lhost-exim-02.eml", {"kijitora@example.jp": alice})
    events = await _post_raw(client, admin_headers, raw)
    assert [(e["email"], e["status"], e["matched"]) for e in events] == [
        (alice, "5.1.1", True),
        ("sabatora@example.jp", "5.2.1", False),
    ]


async def test_dry_run_says_what_would_match_and_changes_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    await sent_edition(url, [alice])
    raw = corpus_mail("lhost-postfix-01.eml", {"kijitora@example.org": alice})
    events = await _post_raw(client, admin_headers, raw, dry_run=True)
    assert [(e["email"], e["kind"], e["matched"]) for e in events] == [(alice, "hard", True)]
    assert (await reader_state(url, alice))["status"] == "active"
    assert await value(url, "SELECT count(*) FROM bounce_events") == 0
    assert await value(url, "SELECT count(*) FROM suppressions") == 0


async def test_unknown_addresses_change_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    await seed_readers(url, 2)
    for name in ("lhost-postfix-01.eml", "lhost-sendmail-02.eml", "arf-16.eml", "lhost-amazonses-01.eml"):
        events = await _post_raw(client, admin_headers, corpus_mail(name))
        assert events and not any(e["matched"] for e in events), name
    assert await value(url, "SELECT count(*) FROM bounce_events") == 0
    assert await value(url, "SELECT count(*) FROM suppressions") == 0
    assert await value(url, "SELECT count(*) FROM subscribers WHERE status <> 'active'") == 0


async def test_a_forged_verp_token_ties_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (delivery_id,) = await sent_edition(url, [alice])
    genuine = TokenSigner(settings.secret_keys).sign(Purpose.VERP, delivery_id)
    forgeries = [
        genuine[:-1] + ("A" if genuine[-1] != "A" else "B"),  # tampered signature
        TokenSigner(["someone-elses-secret-key-0123"]).sign(Purpose.VERP, delivery_id),  # another key
        TokenSigner(settings.secret_keys).sign(Purpose.PREFERENCES, delivery_id),  # another purpose
    ]
    for forged in forgeries:
        # The report names a stranger; only a genuine token could tie it to Alice's copy.
        raw = corpus_mail("lhost-postfix-01.eml", {"shironeko@mx.example.jp": f"bounce+{forged}@news.example.org"})
        events = await _post_raw(client, admin_headers, raw)
        assert [e["matched"] for e in events] == [False]
    assert (await reader_state(url, alice))["status"] == "active"
    raw = corpus_mail("lhost-postfix-01.eml", {"shironeko@mx.example.jp": f"bounce+{genuine}@news.example.org"})
    assert [e["matched"] for e in await _post_raw(client, admin_headers, raw)] == [True]
    assert (await reader_state(url, alice))["status"] == "bounced"


async def test_our_message_id_in_the_returned_headers_ties_the_copy(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    edition_id, (delivery_id,) = await sent_edition(url, [alice])
    message_id = await value(url, "SELECT message_id FROM deliveries WHERE id = $1", delivery_id)
    # A forwarding mailbox bounced: the report names an address we never mailed.
    raw = corpus_mail("lhost-exim-05.eml").replace(b"\nSubject:", f"\nMessage-ID: {message_id}\nSubject:".encode(), 2)
    events = await _post_raw(client, admin_headers, raw)
    # The copy our Message-ID names knows the address we sent to: it is reported, not the forward's.
    assert [(e["email"], e["matched"]) for e in events] == [(alice, True)]
    assert await value(url, "SELECT delivery_id FROM bounce_events") == delivery_id
    shown = (await client.get(f"/v1/editions/{edition_id}", headers=admin_headers)).json()
    assert shown["bounced"] == 1


async def test_a_real_edition_bounce_is_counted_against_the_edition(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    url = settings.database_url or ""
    emails = await seed_readers(url, 2)
    posted = await client.post(
        "/v1/editions",
        json={"subject": "December briefing", "html": "<p>Hello {{name}}</p>", "lists": ["news"]},
        headers={**admin_headers, "Idempotency-Key": "raw-bounce"},
    )
    assert posted.status_code == 202, posted.text
    edition_id = posted.json()["id"]
    async with running_worker(app):
        received = await smtp_sink.wait_for(2)
        await _wait_done(client, admin_headers, edition_id)
    copy = next(item for item in received if item.rcpt_tos == [emails[1]])
    raw = corpus_mail(
        "lhost-postfix-01.eml", {"shironeko@mx.example.jp": copy.mail_from, "kijitora@example.org": emails[1]}
    )
    events = await _post_raw(client, admin_headers, raw)
    assert [(e["email"], e["matched"]) for e in events] == [(emails[1], True)]
    shown = (await client.get(f"/v1/editions/{edition_id}", headers=admin_headers)).json()
    assert (shown["sent"], shown["bounced"], shown["complained"]) == (2, 1, 0)
    assert (await reader_state(url, emails[1]))["suppressed"] == "hard_bounce"
    assert (await reader_state(url, emails[0]))["status"] == "active"


async def _wait_done(client: Client, headers: dict[str, str], edition_id: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (await client.get(f"/v1/editions/{edition_id}", headers=headers)).json()["status"] == "done":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the edition was never done")


async def test_bad_bodies_are_4xx_and_change_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    raw = corpus_mail("lhost-postfix-01.eml", {"kijitora@example.org": alice})
    as_json = await client.post(
        "/v1/bounces/raw", content=raw, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert as_json.status_code == 415
    assert as_json.headers["content-type"] == "application/problem+json"
    for media_type in ("text/plain", "application/octet-stream"):
        dry = await client.post(
            "/v1/bounces/raw",
            content=raw,
            params={"dry_run": "1"},
            headers={**admin_headers, "Content-Type": media_type},
        )
        assert dry.status_code == 200 and dry.json()["events"][0]["matched"] is True
    empty = await client.post("/v1/bounces/raw", content=b"  \r\n", headers={**admin_headers, **RFC822})
    assert empty.status_code == 422
    bad_flag = await client.post(
        "/v1/bounces/raw", content=raw, params={"dry_run": "perhaps"}, headers={**admin_headers, **RFC822}
    )
    assert bad_flag.status_code == 422
    assert (await client.post("/v1/bounces/raw", content=raw, headers=RFC822)).status_code == 401
    reader_key = await key_headers(url, "subscribers:read")
    assert (await client.post("/v1/bounces/raw", content=raw, headers={**reader_key, **RFC822})).status_code == 403
    garbage = await _post_raw(client, admin_headers, b"\x00\xff not a mail at all \xfe" * 50)
    assert garbage == []
    assert await value(url, "SELECT count(*) FROM bounce_events") == 0
    assert (await reader_state(url, alice))["status"] == "active"


async def test_a_body_over_the_limit_is_413(settings: Settings, admin_headers: dict[str, str]) -> None:
    small = create_app(replace_settings(settings, max_body_bytes=4096))
    async with AsyncTestClient(small, base_url="https://news.example.org") as client:
        response = await client.post("/v1/bounces/raw", content=b"x" * 5000, headers={**admin_headers, **RFC822})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
