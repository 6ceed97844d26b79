"""The logs hold no reader's address and no secret, whatever the service did.

One real ``letterbox serve`` (API and worker in one process, JSON logs at
debug level, as production runs them but chattier) goes through the flows that
touch addresses and tokens: the public form with double opt-in, preferences,
the API (with a key made by the CLI, and with a wrong one), suppressions, an
edition delivered through SMTP with one refusal, a one-click unsubscribe, a
raw bounce addressed to a VERP token, and an erasure.  Everything the process
wrote to stderr (structlog and the standard-library loggers: uvicorn, asyncpg,
aiosmtplib), plus the CLI's stderr, is then searched for every full address
and every token and key that went by.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.runtime import runtime_of
from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY, SECRET
from tests.support.processes import Served, settings_env
from tests.support.seed import seed_readers
from tests.support.serve_logging import logging_as_served
from tests.support.smtp import Received, SmtpSink, free_port

# Real processes: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

FORM_READER = "hygiene.formreader@example.org"
API_READER = "hygiene.apireader@example.net"
# Seeded, confirmed on "news": the first gets the edition and a bounce, the second is refused by SMTP,
# the third is suppressed and lifted through the API.
SEEDED = ("hygiene.seeded1@example.org", "hygiene.seeded2@example.org", "hygiene.seeded3@example.org")
WRONG_KEY = "lbk_deadbeef_ThisIsNotAValidSecretButStillASecret0123456789"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_LINK = re.compile(r"https://news\.example\.org/(confirm|unsubscribe|preferences)/([A-Za-z0-9._-]+)")
_FORM = {"content-type": "application/x-www-form-urlencoded"}


def _csrf(page: str) -> str:
    found = _CSRF.search(page)
    assert found, page[:2000]
    return html.unescape(found[1])


def _links(text: str) -> dict[str, str]:
    """The token of each kind of personal link in a text (the first of each kind)."""
    found: dict[str, str] = {}
    for kind, token in _LINK.findall(text):
        found.setdefault(kind, token)
    return found


def _text_of(message: Received) -> str:
    parsed: EmailMessage = message.parsed()
    body = parsed.get_body(("plain",))
    assert body is not None
    return str(body.get_content()) + "\n" + str(parsed["List-Unsubscribe"] or "")


async def _mail(sink: SmtpSink, address: str, subject: str | None = None, within: float = 20) -> Received:
    """The first mail to ``address`` (with ``subject``, when given), waiting for it to arrive."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for message in sink.messages_for(address):
            if subject is None or message.parsed()["Subject"] == subject:
                return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"no mail for {address} within {within:.0f} s")


def _create_api_key(settings: Settings) -> tuple[str, str]:
    """A key made by ``letterbox api-key create``: (the key, what the command wrote to stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "api-key", "create", "--name", "hygiene", "--scope",
         "subscribers:read", "subscribers:write", "editions:read", "editions:write", "bounces:write"],
        env=settings_env(settings, log_level="debug"), capture_output=True, text=True, timeout=60, check=True,
    )
    return done.stdout.strip().splitlines()[0], done.stderr


def _dsn_for(verp: str, recipient: str) -> bytes:
    """A delivery status notification, as a receiving MTA sends it back to our VERP address."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {verp}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b0"\r\n\r\n'
        "--b0\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message to <{recipient}> could not be delivered.\r\n"
        "--b0\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\r\n\r\n"
        "--b0--\r\n"
    ).encode()


async def test_no_address_or_token_reaches_the_logs(settings: Settings, smtp_sink: SmtpSink) -> None:
    await seed_readers(settings.database_url or "", 3, prefix="hygiene.seeded")
    key, cli_log = _create_api_key(settings)
    # A refusal whose reply quotes the address, as real servers' replies do.
    smtp_sink.script(SEEDED[1], f"550 5.1.1 <{SEEDED[1]}>: Recipient address rejected: User unknown")
    server = Served(settings, port=free_port(), bootstrap_api_key=BOOTSTRAP_KEY, log_level="debug")
    secrets: dict[str, str] = {"bootstrap key": BOOTSTRAP_KEY, "secret key": SECRET, "API key": key,
                               "API key secret": key.split("_", 2)[2], "wrong API key": WRONG_KEY}
    try:
        server.wait_ready()
        public = httpx.AsyncClient(base_url=server.base_url, timeout=20)
        api = httpx.AsyncClient(base_url=server.base_url, timeout=20, headers={"Authorization": f"Bearer {key}"})
        admin = httpx.AsyncClient(base_url=server.base_url, timeout=20,
                                  headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"})
        async with public, api, admin:
            # The public form, double opt-in, preferences.
            form = await public.get("/subscribe")
            secrets["subscribe CSRF token"] = _csrf(form.text)
            posted = await public.post("/subscribe", data={
                "csrf": _csrf(form.text), "email": FORM_READER, "name": "Form Reader", "lists": ["news"],
            })
            assert posted.status_code == 200, posted.text
            confirm = _links(_text_of(await _mail(smtp_sink, FORM_READER)))["confirm"]
            secrets["confirm token (form)"] = confirm
            assert (await public.get(f"/confirm/{confirm}")).status_code == 200
            confirmed = await public.post(f"/confirm/{confirm}")
            assert confirmed.status_code == 200, confirmed.text
            preferences = _links(confirmed.text)["preferences"]
            secrets["preferences token"] = preferences
            page = await public.get(f"/preferences/{preferences}")
            secrets["preferences CSRF token"] = _csrf(page.text)
            saved = await public.post(f"/preferences/{preferences}", data={
                "csrf": _csrf(page.text), "name": "Form Reader Renamed", "lists": ["news"],
            })
            assert saved.status_code == 200, saved.text

            # The API: a subscription request, a search by address, one reader, a change, an export.
            assert (await api.post("/v1/subscriptions", json={"email": API_READER, "lists": ["news"]})).status_code == 202
            api_confirm = _links(_text_of(await _mail(smtp_sink, API_READER)))["confirm"]
            secrets["confirm token (API)"] = api_confirm
            assert (await public.post(f"/confirm/{api_confirm}")).status_code == 200
            found = await api.get("/v1/subscribers", params={"q": API_READER})
            assert found.status_code == 200 and len(found.json()["items"]) == 1, found.text
            api_reader_id = found.json()["items"][0]["id"]
            assert (await api.get(f"/v1/subscribers/{api_reader_id}")).status_code == 200
            assert (await api.patch(f"/v1/subscribers/{api_reader_id}", json={"name": "API Reader"})).status_code == 200
            assert (await api.get(f"/v1/subscribers/{api_reader_id}/export")).status_code == 200
            refused = await public.get("/v1/subscribers", headers={"Authorization": f"Bearer {WRONG_KEY}"})
            assert refused.status_code == 401

            # Suppressions: one made by a reported bounce, listed, and lifted by address.
            assert (await api.post("/v1/bounces", json={"email": SEEDED[2], "kind": "hard"})).status_code == 200
            assert (await admin.get("/v1/suppressions")).status_code == 200
            lifted = await admin.delete(f"/v1/suppressions/{SEEDED[2]}")
            assert lifted.status_code == 204, lifted.text

            # An edition through the worker and SMTP: delivered, refused once, unsubscribed, bounced.
            edition = await api.post(
                "/v1/editions",
                json={"subject": "Hygiene briefing", "html": "<p>Hello {{name}}</p><p>{{preferences_url}}</p>",
                      "lists": ["news"]},
                headers={"Idempotency-Key": "hygiene-1"},
            )
            assert edition.status_code == 202, edition.text
            copies = {address: await _mail(smtp_sink, address, "Hygiene briefing")
                      for address in (FORM_READER, API_READER, SEEDED[0])}
            for address, copy in copies.items():
                links = _links(_text_of(copy))
                secrets[f"unsubscribe token ({address})"] = links["unsubscribe"]
                secrets[f"preferences token ({address})"] = links["preferences"]
                secrets[f"VERP token ({address})"] = copy.mail_from.split("@")[0].removeprefix("bounce+")
            one_click = await public.post(f"/unsubscribe/{secrets[f'unsubscribe token ({FORM_READER})']}",
                                          content=b"List-Unsubscribe=One-Click", headers=_FORM)
            assert one_click.status_code == 200
            bounced = await api.post("/v1/bounces/raw", content=_dsn_for(copies[SEEDED[0]].mail_from, SEEDED[0]),
                                     headers={"content-type": "message/rfc822"})
            assert bounced.status_code == 200 and bounced.json()["events"], bounced.text
            await _until_sent_or_failed(settings, edition.json()["id"])

            # Erasure.
            assert (await api.delete(f"/v1/subscribers/{api_reader_id}")).status_code == 204
    finally:
        server.stop()

    log = server.log() + cli_log
    _assert_the_log_is_real(server.log())
    addresses = [FORM_READER, API_READER, *SEEDED]
    leaks = [f"address {a}" for a in addresses if a.lower() in log.lower()]
    leaks += [f"address local part {a.split('@')[0]}" for a in addresses if a.split("@")[0].lower() in log.lower()]
    for name, secret in secrets.items():
        # The signature is the secret part of a signed token; the payload alone (an id) is not.
        parts = [secret, secret.rsplit(".", 1)[-1]] if "token" in name else [secret]
        leaks += [f"{name} {part!r}" for part in parts if len(part) >= 16 and part in log]
    assert not leaks, "found in the logs: " + "; ".join(leaks) + "\n\n" + _lines_with(log, addresses, secrets)


async def _until_sent_or_failed(settings: Settings, edition_id: int, within: float = 30) -> None:
    """Wait until no copy of the edition is queued or being sent."""
    deadline = time.monotonic() + within
    conn = await asyncpg.connect(settings.database_url)
    try:
        while time.monotonic() < deadline:
            left = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE edition_id = $1 AND status IN ('queued', 'sending')", edition_id
            )
            if left == 0:
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    pytest.fail(f"edition {edition_id} still had copies to send after {within:.0f} s")


def _assert_the_log_is_real(log: str) -> None:
    """The log is JSON, one event per line, and recorded the flows (so an empty log cannot pass)."""
    events = []
    for line in log.splitlines():
        try:
            events.append(json.loads(line)["event"])
        except (ValueError, KeyError) as exc:
            raise AssertionError(f"not a JSON log line: {line!r}") from exc
    for expected in ("request", "subscribe_requested", "subscription_confirmed", "unsubscribed", "bounce_event",
                     "suppression_lifted", "subscriber_erased", "worker_started"):
        assert expected in events, (expected, sorted(set(events)))


def _lines_with(log: str, addresses: list[str], secrets: dict[str, str]) -> str:
    needles = [a.lower() for a in addresses] + [s.lower() for s in secrets.values() if len(s) >= 16]
    return "\n".join(line for line in log.splitlines() if any(n in line.lower() for n in needles))[:5000]


@pytest.fixture
def json_logs() -> Iterator[None]:
    """This process logs as ``letterbox serve`` does (JSON to stderr, debug); the previous set-up comes back after."""
    with logging_as_served("debug"):
        yield


async def test_exceptions_and_library_loggers_are_scrubbed_too(
    json_logs: None, client: AsyncTestClient[Litestar], app: Litestar, admin_headers: dict[str, str],
    settings: Settings, capfd: pytest.CaptureFixture[str],
) -> None:
    (address,) = await seed_readers(settings.database_url or "", 1, prefix="hygiene.crash")
    reader_id = (await client.get("/v1/subscribers", headers=admin_headers)).json()["items"][0]["id"]
    # A fault nobody planned for, whose PostgreSQL error quotes the reader's row in its DETAIL line.
    runtime_of(app.state).db.q._queries["subscriber-get"] = (
        "INSERT INTO lists (slug, name) SELECT email, name FROM subscribers WHERE id = $1 RETURNING *"
    )
    crashed = await client.get(f"/v1/subscribers/{reader_id}", headers=admin_headers)
    assert crashed.status_code == 500
    token_url = "https://news.example.org/unsubscribe/1-2-3.SignatureThatMustNotBeLogged0"
    # Library loggers say such things too: an SMTP library quoting a recipient, a server a failed URL.
    logging.getLogger("aiosmtplib").warning("RCPT TO:<%s> refused: 550 5.1.1 <%s>", address, address)
    try:
        raise RuntimeError(f"while fetching {token_url} for {address}")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    log = capfd.readouterr().err
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert {"unhandled_error", "Exception in ASGI application"} <= {line["event"] for line in lines}, log
    assert any(line.get("logger") == "aiosmtplib" for line in lines), log
    assert "Failing row contains" not in log and "DETAIL:  (withheld" in log, log
    for leak in (address, address.split("@")[0], "SignatureThatMustNotBeLogged0", BOOTSTRAP_KEY):
        assert leak not in log, (leak, log)
