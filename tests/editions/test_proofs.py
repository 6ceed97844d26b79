"""POST /v1/editions/proof through the real SMTP sink: composed as edition copies, marked, DKIM-signed,
writing nothing; its unsubscribe link shows the page and changes nothing; refusals, limits, bad input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
import dkim
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.auth import generate_key
from service.settings import Settings
from tests.conftest import replace_settings
from tests.support.dkim import dkim_key
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink, free_port

Client = AsyncTestClient[Litestar]
HTML = ('<html lang="en"><body><h1>Draft</h1><p>Dear {{name}},</p>'
        '<p><a href="{{unsubscribe_url}}">Unsubscribe</a> <a href="{{preferences_url}}">Preferences</a></p>'
        "</body></html>")
TABLES = ("editions", "deliveries", "system_mails", "consents", "edition_unsubscribes", "bounce_events")


def proof(**changes: Any) -> dict[str, Any]:
    """A valid proof body with some fields changed."""
    body: dict[str, Any] = {"subject": "Draft briefing", "html": HTML, "to": ["editor@example.org"], "name": "Ann"}
    body.update(changes)
    return body


async def _rows(settings: Settings) -> dict[str, int]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in (*TABLES, "rate_limits")}  # noqa: S608
    finally:
        await conn.close()


async def test_a_proof_is_an_edition_copy_marked_as_proof_and_writes_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    before = await _rows(settings)
    response = await client.post("/v1/editions/proof", headers=admin_headers,
                                 json=proof(to=["editor@example.org", "Chief@Example.org"],
                                            reply_to="desk@example.org"))
    assert response.status_code == 202, response.text
    assert response.json() == {"sent_to": ["editor@example.org", "Chief@example.org"]}
    received = await smtp_sink.wait_for(2)
    assert sorted(r.rcpt_tos[0] for r in received) == ["Chief@example.org", "editor@example.org"]
    for item in received:
        msg = item.parsed()
        assert msg["X-Letterbox-Proof"] == "yes"
        assert msg["From"] == "Partnership News <news@example.org>"
        assert msg["Reply-To"] == "desk@example.org"
        assert msg["Subject"] == "Draft briefing"
        assert msg["List-Id"] == "<letterbox.news.example.org>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert str(msg["List-Unsubscribe"]).startswith("<https://news.example.org/unsubscribe/")
        html_part = msg.get_body(("html",))
        text_part = msg.get_body(("plain",))
        assert html_part is not None and text_part is not None
        assert "Dear Ann," in html_part.get_content()
        assert "Dear Ann," in text_part.get_content()
        # Bounces of a proof go back to its sender: there is no copy to count them against.
        assert item.mail_from == "news@example.org"
    after = await _rows(settings)
    assert {t: after[t] for t in TABLES} == {t: before[t] for t in TABLES}, "a proof records nothing"
    assert after["rate_limits"] == before["rate_limits"] + 1, "only the key's proof counter"


async def test_a_proofs_unsubscribe_link_shows_the_page_and_changes_nothing(
    client: Client, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    await seed_readers(settings.database_url or "", 1)  # someone who could wrongly be unsubscribed
    response = await client.post("/v1/editions/proof", headers=admin_headers, json=proof())
    assert response.status_code == 202, response.text
    (received,) = await smtp_sink.wait_for(1)
    link = str(received.parsed()["List-Unsubscribe"]).split(",")[0].strip("<> ")
    path = link.removeprefix("https://news.example.org")
    before = await _rows(settings)

    shown = await client.get(path)
    assert shown.status_code == 200
    assert "proof copy" in shown.text and "<form" in shown.text
    assert shown.headers["referrer-policy"] == "no-referrer"
    one_click = await client.post(path, content=b"List-Unsubscribe=One-Click",
                                  headers={"content-type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 200
    assert "nothing was changed" in one_click.text
    assert await _rows(settings) == before
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM subscriptions WHERE status = 'confirmed'") == 1
    finally:
        await conn.close()


async def test_proofs_are_dkim_signed_when_a_key_is_set(
    admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    key_file, dns = dkim_key(tmp_path)
    signing = replace_settings(settings, dkim_selector="lb1", dkim_key_file=str(key_file))
    async with AsyncTestClient(create_app(signing)) as client:
        response = await client.post("/v1/editions/proof", headers=admin_headers, json=proof())
    assert response.status_code == 202, response.text
    (received,) = await smtp_sink.wait_for(1)

    assert dkim.verify(received.content, dnsfunc=dns), "the signature verifies"
    signed = re.search(r"h=([^;]+)", str(received.parsed()["DKIM-Signature"]).replace("\r\n", "").replace(" ", ""))
    assert signed is not None
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(signed[1].lower().split(":"))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"to": []}, "to"),
        ({"to": [f"r{i}@example.org" for i in range(11)]}, "to"),
        ({"to": ["editor@example.org", "not an address"]}, "to[1]"),
        ({"to": ["editor@example.org\r\nBcc: x@example.org"]}, "to[0]"),
        ({"subject": "Two\nlines"}, "subject"),
        ({"from": "nobody"}, "from"),
        ({"name": "Ann\r\nBcc: x@example.org"}, "name"),
        ({"html": ""}, "html"),
        ({"lists": ["news"]}, "lists"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_sends_nothing(
    client: Client, admin_headers: dict[str, str], smtp_sink: SmtpSink, changes: dict[str, Any], named: str
) -> None:
    response = await client.post("/v1/editions/proof", headers=admin_headers, json=proof(**changes))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert named in response.json()["detail"]
    assert smtp_sink.received == []


async def test_a_refusing_relay_is_a_502_naming_its_reply(
    client: Client, admin_headers: dict[str, str], smtp_sink: SmtpSink
) -> None:
    smtp_sink.script("gone@example.org", "550 5.1.1 No such user here")
    response = await client.post("/v1/editions/proof", headers=admin_headers,
                                 json=proof(to=["editor@example.org", "gone@example.org"]))
    assert response.status_code == 502, response.text
    body = response.json()
    assert "550 5.1.1 No such user here" in body["detail"] and "gone@example.org" in body["detail"]
    assert body["sent_to"] == ["editor@example.org"]


async def test_an_unreachable_relay_is_a_503(admin_headers: dict[str, str], settings: Settings) -> None:
    nowhere = replace_settings(settings, smtp_url=f"smtp://127.0.0.1:{free_port()}")
    async with AsyncTestClient(create_app(nowhere)) as client:
        response = await client.post("/v1/editions/proof", headers=admin_headers, json=proof())
    assert response.status_code == 503, response.text
    assert "could not be reached" in response.json()["detail"]
    assert response.headers["retry-after"]


async def test_proofs_are_rate_limited_per_key(
    client: Client, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    key = generate_key()
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("INSERT INTO api_keys (name, prefix, secret_hash, scopes) VALUES ('t', $1, $2, $3)",
                           key.prefix, key.secret_hash, ["editions:write"])
    finally:
        await conn.close()
    other = {"Authorization": f"Bearer {key.token}"}
    for _ in range(30):
        assert (await client.post("/v1/editions/proof", headers=admin_headers, json=proof())).status_code == 202
    refused = await client.post("/v1/editions/proof", headers=admin_headers, json=proof())
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["retry-after"]) <= 600
    # Another key has its own allowance.
    assert (await client.post("/v1/editions/proof", headers=other, json=proof())).status_code == 202
    assert len(smtp_sink.received) == 31
