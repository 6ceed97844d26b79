"""Letterbox sending through a real Postfix (Debian's package) to real SMTP servers, end to end.

Postfix (tests/support/postfix.py) stands between Letterbox and the readers' mail
servers, as a relay does in production: it refuses some recipients itself at RCPT,
accepts others and then bounces them with a delivery status notification (DSN),
warns that mail is delayed and later gives up on it, and carries SMTPUTF8 mail.
Every DSN it writes reaches Letterbox's own bounce receiver by SMTP.  The contract
is DESIGN.md, "Mail" and "Delivery guarantees".
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.delivery.transport import SmtpTransport
from service.settings import Settings
from tests.bounces.sends import fetch, reader_state, value
from tests.conftest import replace_settings
from tests.delivery.relay import Relay
from tests.editions.test_posting import edition
from tests.subscribers.conftest import csrf_of, subscribe
from tests.support import postfix as private
from tests.support.postfix import BOUNCE_DOMAIN, REFUSED_DOMAIN, Postfix, private_postfix
from tests.support.seed import seed_readers, seed_taxonomy
from tests.support.worker import running_worker

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

# The session's private Postfix, and its view for one test that empties the queue afterwards.
postfix_server = private.postfix_server
postfix = private.postfix

Client = AsyncTestClient[Litestar]
# Long enough for Postfix to warn (after 3 s) and give up (after 30 s) on a deferred copy.
WITHIN = 90.0


@pytest.fixture
def settings(settings: Settings, postfix: Postfix) -> Settings:
    """The test settings, sending through Postfix and receiving its bounces on the bounce receiver."""
    return replace_settings(
        settings, smtp_url=postfix.smtp_url, bounce_domain=BOUNCE_DOMAIN, bounce_smtp_port=postfix.bounce_port
    )


async def add_readers(database_url: str, *emails: str) -> None:
    """Active readers with exactly these addresses, confirmed on the 'news' list."""
    conn = await asyncpg.connect(database_url)
    try:
        await seed_taxonomy(conn)
        await conn.execute(
            """
            WITH people AS (
                INSERT INTO subscribers (email, name, status, confirmed_at)
                SELECT e, 'Reader', 'active', now() FROM unnest($1::text[]) AS e
                RETURNING id
            )
            INSERT INTO subscriptions (list_id, subscriber_id, status)
            SELECT l.id, p.id, 'confirmed' FROM lists l, people p WHERE l.slug = 'news'
            """,
            list(emails),
        )
    finally:
        await conn.close()


async def post_edition(client: Client, headers: dict[str, str], key: str, **changes: Any) -> int:
    """Post an edition to the 'news' list; its id."""
    response = await client.post("/v1/editions", json=edition(**changes), headers={**headers, "Idempotency-Key": key})
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


async def until(what: str, check: Callable[[], Awaitable[bool]], postfix: Postfix, within: float = WITHIN) -> None:
    """Wait for ``check`` to hold, flushing Postfix's queue each second so deferred mail is retried on time.

    Fail saying what never happened, with Postfix's queue and the end of its log.
    """
    deadline = time.monotonic() + within
    flushed = 0.0
    while time.monotonic() < deadline:
        if await check():
            return
        if time.monotonic() - flushed >= 1:
            await asyncio.to_thread(postfix.flush)
            flushed = time.monotonic()
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} within {within:.0f} s\n{postfix.queued()}\n{postfix.log()[-4000:]}")


async def edition_done(client: Client, headers: dict[str, str], edition_id: int, postfix: Postfix) -> dict[str, Any]:
    """Wait for the edition to be done; its counts."""
    deadline = time.monotonic() + 30
    while True:
        shown: dict[str, Any] = (await client.get(f"/v1/editions/{edition_id}", headers=headers)).json()
        if shown["status"] == "done":
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"edition {edition_id} was not done within 30 s: {shown}\n{postfix.queued()}")
        await asyncio.sleep(0.1)


def arrived(postfix: Postfix, address: str) -> Callable[[], Awaitable[bool]]:
    """A check: has a message for ``address`` reached the readers' mail server?"""

    async def check() -> bool:
        return bool(postfix.sink.messages_for(address))

    return check


async def bounce_events(database_url: str, email: str) -> list[dict[str, Any]]:
    """The bounce events recorded for a reader, oldest first."""
    rows = await fetch(
        database_url,
        """
        SELECT b.delivery_id, b.kind, b.status, b.source FROM bounce_events b
        JOIN subscribers s ON s.id = b.subscriber_id WHERE lower(s.email) = lower($1) ORDER BY b.id
        """,
        email,
    )
    return [dict(r) for r in rows]


async def deliveries(database_url: str, email: str) -> list[dict[str, Any]]:
    """A reader's copies: id, status and the last SMTP reply, in edition order."""
    rows = await fetch(
        database_url,
        """
        SELECT d.id, d.status, d.last_reply FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
        WHERE lower(s.email) = lower($1) ORDER BY d.edition_id
        """,
        email,
    )
    return [dict(r) for r in rows]


def events_at_least(database_url: str, email: str, count: int) -> Callable[[], Awaitable[bool]]:
    """A check: have at least ``count`` bounce events been recorded for ``email``?"""

    async def check() -> bool:
        return len(await bounce_events(database_url, email)) >= count

    return check


def only_message(postfix: Postfix, address: str) -> EmailMessage:
    """The one message the readers' mail server received for ``address``.

    Parsed as RFC 6532 mail (headers in UTF-8), as an SMTPUTF8 message is: the email package
    would read raw bytes in headers as undecodable.
    """
    (received,) = postfix.sink.messages_for(address)
    assert received.rcpt_tos == [address]
    msg = message_from_string(received.content.decode("utf-8"), policy=policy.SMTPUTF8)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_a_recipient_postfix_refuses_at_rcpt_fails_and_is_suppressed(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, postfix: Postfix
) -> None:
    url = settings.database_url or ""
    refused, fine = f"nobody@{REFUSED_DOMAIN}", "rcpt.fine@example.org"
    await add_readers(url, refused, fine)
    edition_id = await post_edition(client, admin_headers, "rcpt")
    async with running_worker(app):
        shown = await edition_done(client, admin_headers, edition_id, postfix)
        await until("the accepted copy did not arrive", arrived(postfix, fine), postfix)
    assert (shown["sent"], shown["failed"], shown["bounced"]) == (1, 1, 1)
    (copy,) = await deliveries(url, refused)
    assert copy["status"] == "failed" and copy["last_reply"].startswith("550 5.1.1")
    assert [e["kind"] for e in await bounce_events(url, refused)] == ["hard"]
    state = await reader_state(url, refused)
    assert (state["status"], state["suppressed"]) == ("bounced", "hard_bounce")
    assert postfix.sink.messages_for(refused) == []
    assert only_message(postfix, fine)["Subject"] == "November briefing"


async def test_mail_postfix_accepted_then_bounced_comes_back_as_a_dsn_and_suppresses(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, postfix: Postfix
) -> None:
    url = settings.database_url or ""
    gone, fine = "gone.reader@example.org", "dsn.fine@example.org"
    await add_readers(url, gone, fine)
    postfix.sink.script(gone, "550 5.1.1 <gone.reader@example.org>: no such mailbox")
    edition_id = await post_edition(client, admin_headers, "dsn")
    async with running_worker(app):
        shown = await edition_done(client, admin_headers, edition_id, postfix)
        await until("the DSN was not recorded", events_at_least(url, gone, 1), postfix)
    # Postfix took both copies; the bounce came afterwards, by mail, to the VERP address of the copy.
    assert shown["sent"] == 2 and shown["failed"] == 0
    (copy,) = await deliveries(url, gone)
    (event,) = await bounce_events(url, gone)
    assert event == {"delivery_id": copy["id"], "kind": "hard", "status": "5.1.1", "source": "smtp-receiver"}
    state = await reader_state(url, gone)
    assert (state["status"], state["suppressed"]) == ("bounced", "hard_bounce")
    assert (await client.get(f"/v1/editions/{edition_id}", headers=admin_headers)).json()["bounced"] == 1
    assert postfix.sink.messages_for(gone) == []
    assert only_message(postfix, fine)["Subject"] == "November briefing"


async def test_a_full_mailbox_is_a_soft_bounce(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, postfix: Postfix
) -> None:
    url = settings.database_url or ""
    full = "full.reader@example.org"
    await add_readers(url, full)
    postfix.sink.script(full, "552 5.2.2 <full.reader@example.org>: mailbox full")
    edition_id = await post_edition(client, admin_headers, "full")
    async with running_worker(app):
        await edition_done(client, admin_headers, edition_id, postfix)
        await until("the DSN was not recorded", events_at_least(url, full, 1), postfix)
    (copy,) = await deliveries(url, full)
    assert await bounce_events(url, full) == [
        {"delivery_id": copy["id"], "kind": "soft", "status": "5.2.2", "source": "smtp-receiver"}
    ]
    assert await reader_state(url, full) == {
        "status": "active", "soft_bounces": 1, "suppressed": None, "lists": ["confirmed"],
    }  # fmt: skip


async def test_delay_warnings_are_recorded_but_only_the_expiry_counts(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, postfix: Postfix
) -> None:
    url = settings.database_url or ""
    slow, fine = "slow.reader@example.org", "delay.fine@example.org"
    await add_readers(url, slow, fine)
    # The reader's server answers "try later" to every attempt, until Postfix gives up.
    postfix.sink.script(slow, *["451 4.2.0 <slow.reader@example.org>: mailbox busy, try again later"] * 500)
    # Two editions: two copies Postfix keeps retrying, two delay warnings, then two expiries.
    first = await post_edition(client, admin_headers, "delay-1")
    second = await post_edition(client, admin_headers, "delay-2", subject="December briefing")
    async with running_worker(app):
        for edition_id in (first, second):
            assert (await edition_done(client, admin_headers, edition_id, postfix))["sent"] == 2
        await until("two delay warnings were not recorded", events_at_least(url, slow, 2), postfix)
        # Postfix is still retrying: a warning is recorded, never a bounce, and suppresses nobody.
        warnings = await bounce_events(url, slow)
        assert all(e["kind"] not in ("hard", "soft", "complaint") for e in warnings), warnings
        assert [e["status"][:2] for e in warnings] == ["4.", "4."]
        assert await reader_state(url, slow) == {
            "status": "active", "soft_bounces": 0, "suppressed": None, "lists": ["confirmed"],
        }  # fmt: skip
        for edition_id in (first, second):
            assert (await client.get(f"/v1/editions/{edition_id}", headers=admin_headers)).json()["bounced"] == 0
        await until("the two expiries were not recorded", events_at_least(url, slow, 4), postfix)
    # Postfix gave up: each copy bounced once, softly (a 4.x.x status); the warnings still count nothing.
    copies = [c["id"] for c in await deliveries(url, slow)]
    events = await bounce_events(url, slow)
    assert len(events) == 4, events
    counted = [(e["delivery_id"], e["kind"], e["status"][:2]) for e in events if e["kind"] in ("hard", "soft")]
    assert sorted(counted) == [(copies[0], "soft", "4."), (copies[1], "soft", "4.")]
    assert await reader_state(url, slow) == {
        "status": "active", "soft_bounces": 2, "suppressed": None, "lists": ["confirmed"],
    }  # fmt: skip
    assert postfix.sink.messages_for(slow) == []
    assert len(postfix.sink.messages_for(fine)) == 2


async def test_a_non_ascii_local_part_travels_with_smtputf8_and_arrives_intact(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, postfix: Postfix
) -> None:
    url = settings.database_url or ""
    international, fine = "üser@example.test", "utf8.fine@example.org"
    await add_readers(url, international, fine)
    edition_id = await post_edition(client, admin_headers, "utf8", html="<p>Grüße, {{name}}</p>")
    async with running_worker(app):
        shown = await edition_done(client, admin_headers, edition_id, postfix)
        await until("the international copy did not arrive", arrived(postfix, international), postfix)
    assert shown["sent"] == 2 and shown["failed"] == 0
    msg = only_message(postfix, international)
    assert msg["To"].addresses[0].addr_spec == international
    # Postfix notes in its Received header that Letterbox handed the copy over with SMTPUTF8.
    assert "with UTF8SMTP" in " ".join(str(h) for h in msg.get_all("Received", [])), msg.get_all("Received")
    html = msg.get_body(("html",))
    assert html is not None and "Grüße, Reader" in html.get_content()
    assert (await deliveries(url, international))[0]["status"] == "sent"


async def test_hostile_and_international_addresses_never_stop_an_edition(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, postfix: Postfix
) -> None:
    url = settings.database_url or ""
    crowd = await seed_readers(url, 25, prefix="crowd")
    first = await post_edition(client, admin_headers, "crowd-1")
    async with running_worker(app):
        # While the edition goes out, addresses arrive through every door: the form…
        for email in ("üser@example.com", "leser@bücher.example"):
            assert (await subscribe(client, email, lists=("news",))).status_code == 200
        form = await client.get("/subscribe")
        invalid_bytes = await client.post(
            "/subscribe",
            content=f"csrf={csrf_of(form.text)}&email=a%FF%40example.org&name=&agency=&role=&website=&lists=news",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        # …the API…
        api = await client.post(
            "/v1/subscriptions", json={"email": "api.reader@xn--bcher-kva.example", "lists": ["news"]},
            headers=admin_headers,
        )  # fmt: skip
        injected = await client.post(
            "/v1/subscriptions", json={"email": "x@example.org\r\nBcc: victim@example.org", "lists": ["news"]},
            headers=admin_headers,
        )  # fmt: skip
        # …and the import, of readers who consented elsewhere.
        rows = [
            {"email": "ünïcode@example.net", "lists": ["news"]},
            {"email": "imported@bücher.example", "lists": ["news"]},
            {"email": "y@example.org\nBcc: victim@example.org", "lists": ["news"]},
        ]
        imported = await client.post(
            "/v1/subscribers/import", content="".join(json.dumps(r) + "\n" for r in rows).encode(),
            headers={**admin_headers, "content-type": "application/x-ndjson"},
        )  # fmt: skip
        shown = await edition_done(client, admin_headers, first, postfix)
        assert shown["sent"] == 25 and shown["failed"] == 0
        assert all(postfix.sink.messages_for(email) for email in crowd)
        # The confirmation mails reach the international addresses, domains in their ASCII form.
        for address in ("üser@example.com", "leser@xn--bcher-kva.example", "api.reader@xn--bcher-kva.example"):
            await until(f"no confirmation mail reached {address}", arrived(postfix, address), postfix)
            assert only_message(postfix, address)["To"].addresses[0].addr_spec == address
        # A second edition reaches the imported readers too: the send loop is alive.
        second = await post_edition(client, admin_headers, "crowd-2", subject="December briefing")
        assert (await edition_done(client, admin_headers, second, postfix))["sent"] == 27
        for address in ("ünïcode@example.net", "imported@xn--bcher-kva.example"):
            await until(f"the second edition did not reach {address}", arrived(postfix, address), postfix)
            assert only_message(postfix, address)["Subject"] == "December briefing"
    assert api.status_code == 202, api.text
    assert injected.status_code == 422, injected.text
    assert imported.status_code == 200, imported.text
    result = imported.json()
    assert (result["created"], [i["line"] for i in result["invalid"]]) == (2, [3])
    assert invalid_bytes.status_code == 400, invalid_bytes.text
    stored = {r["email"] for r in await fetch(url, "SELECT email FROM subscribers WHERE email NOT LIKE 'crowd%'")}
    assert stored == {
        "üser@example.com", "leser@xn--bcher-kva.example", "api.reader@xn--bcher-kva.example",
        "ünïcode@example.net", "imported@xn--bcher-kva.example",
    }  # fmt: skip
    assert await value(url, "SELECT count(*) FROM system_mails WHERE status <> 'sent'") == 0


async def test_copies_go_pipelined_and_chunked_through_postfix_refusals_included(postfix: Postfix) -> None:
    """Postfix offers PIPELINING and CHUNKING: MAIL, RCPT and BDAT with the message leave in one
    write, a recipient it refuses inside the pipeline is a 550 for that copy alone, and one
    connection carries them all."""
    relay = Relay(int(postfix.smtp_url.rsplit(":", 1)[1]))
    listening = await relay.serve()
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1)
    message = b"From: news@example.org\r\nSubject: pipelined\r\n\r\n.hello\r\n"
    try:
        outcomes = [await transport.send("news@example.org", address, message)
                    for address in ("one.pipe@example.org", f"nobody@{REFUSED_DOMAIN}", "two.pipe@example.org")]
    finally:
        await transport.close()
        listening.close()
    assert [(o.accepted, o.permanent, o.code) for o in outcomes] == [(True, False, None), (False, True, 550),
                                                                      (True, False, None)], outcomes
    assert outcomes[1].reply.startswith("550 5.1.1")
    unanswered = relay.written_before_reply(b"MAIL FROM:")
    assert unanswered.endswith(b"RCPT TO:<one.pipe@example.org>\r\nBDAT %d LAST\r\n%s" % (len(message), message)), \
        "sent before Postfix answered MAIL"
    assert relay.written.count(b"EHLO") == 1
    for address in ("one.pipe@example.org", "two.pipe@example.org"):
        await until(f"the copy for {address} did not arrive", arrived(postfix, address), postfix)
        assert postfix.sink.messages_for(address)[0].content.endswith(b"\r\n.hello\r\n")


def test_a_stopped_postfix_leaves_no_process_behind(postfix_server: Postfix) -> None:
    with private_postfix(postfix_server.sink, bounce_port=postfix_server.bounce_port) as other:
        assert other.processes(), "the master and its resident helpers carry this instance's MAIL_CONFIG"
    assert other.processes() == []
