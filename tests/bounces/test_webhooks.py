"""Provider webhooks end to end, each with a signature made here with ``cryptography``: Amazon SES via
SNS (SignatureVersion 1 and 2), Postmark (Basic), SendGrid (ECDSA) and Mailgun (HMAC). A request that
fails verification, or for a provider not configured, is a 401 that writes nothing."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.bounces.webhooks import check_webhook_secrets
from service.bounces.webhooks.sns import canonical_string
from service.settings import Settings, SettingsError, WebhookSecrets, load_settings
from tests.bounces.sends import fetch, reader_state, sent_edition, value
from tests.support.clock import FakeClock
from tests.support.seed import seed_readers

Client = AsyncTestClient[Litestar]
MAILGUN_KEY = "key-mailgun-signing-0123456789"


class Sns:
    """An SNS topic of our own: an RSA key and its self-signed certificate."""

    def __init__(self, folder: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-west-1.amazonaws.com")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_file = folder / "sns.pem"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def message(self, kind: str, message: str, *, version: str = "2", **extra: str) -> bytes:
        """A signed SNS message of type ``kind``."""
        body = {
            "Type": kind,
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-bounces",
            "Message": message,
            "Timestamp": "2024-11-05T12:00:00.000Z",
            "SignatureVersion": version,
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem",
            **extra,
        }
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS version 1 is SHA1
        signature = self.key.sign(canonical_string(body), padding.PKCS1v15(), algorithm)
        body["Signature"] = base64.b64encode(signature).decode()
        return json.dumps(body).encode()


def ses_bounce(bounce_type: str, *recipients: str, status: str = "5.1.1", feedback_id: str = "fb-1") -> str:
    """An SES bounce notification."""
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": "General",
                "feedbackId": feedback_id,
                "bouncedRecipients": [
                    {
                        "emailAddress": r,
                        "action": "failed",
                        "status": status,
                        "diagnosticCode": f"smtp; {'550' if status[0] == '5' else '451'} {status} unknown",
                    }
                    for r in recipients
                ],
            },
            "mail": {"messageId": "0100018f-1"},
        }
    )


def ses_complaint(recipient: str) -> str:
    """An SES complaint notification."""
    return json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": recipient}], "complaintFeedbackType": "abuse"},
        }
    )


def load_webhook_secrets(env: dict[str, str]) -> WebhookSecrets:
    """The webhook secrets as ``serve`` takes them from the environment: loaded, then checked."""
    secrets = load_settings(env).webhooks
    check_webhook_secrets(secrets)
    return secrets


@pytest.fixture
def secrets(tmp_path: Path) -> tuple[WebhookSecrets, Sns, ec.EllipticCurvePrivateKey]:
    """Every provider configured, as if from the environment (the app below is built with them)."""
    sns = Sns(tmp_path)
    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    public_der = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    loaded = load_webhook_secrets(
        {
            "LETTERBOX_SNS_CERT_FILE": str(sns.cert_file),
            "LETTERBOX_POSTMARK_WEBHOOK_USER": "postmark",
            "LETTERBOX_POSTMARK_WEBHOOK_PASSWORD": "hook-password",
            "LETTERBOX_SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(public_der).decode(),
            "LETTERBOX_MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        }
    )
    return loaded, sns, sendgrid_key


@pytest.fixture
def app(settings: Settings, clock: FakeClock, request: pytest.FixtureRequest) -> Litestar:
    """The app, with every provider configured when the test asks for ``secrets``."""
    if "secrets" in request.fixturenames:
        loaded: WebhookSecrets = request.getfixturevalue("secrets")[0]
        settings = msgspec.structs.replace(settings, webhooks=loaded)
    return create_app(settings, clock=clock)


async def _nothing_written(url: str) -> None:
    assert await value(url, "SELECT count(*) FROM bounce_events") == 0
    assert await value(url, "SELECT count(*) FROM suppressions") == 0


# -- Amazon SES via SNS --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
async def test_ses_bounces_and_complaints(client: Client, settings: Settings, secrets: Any, version: str) -> None:
    url = settings.database_url or ""
    alice, bob, carol = await seed_readers(url, 3)
    sns: Sns = secrets[1]
    response = await client.post(
        "/v1/webhooks/ses",
        content=sns.message(
            "Notification", ses_bounce("Permanent", alice.upper(), "stranger@example.net"), version=version
        ),
        headers={"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"},
    )
    assert response.status_code == 200, response.text
    assert [(e["email"], e["kind"], e["status"], e["matched"]) for e in response.json()["events"]] == [
        (alice, "hard", "5.1.1", True),
        ("stranger@example.net", "hard", "5.1.1", False),
    ]
    transient = ses_bounce("Transient", bob, status="4.4.7", feedback_id="fb-2")
    soft = sns.message("Notification", transient, version=version, Subject="Amazon SES Bounce")
    assert (await client.post("/v1/webhooks/ses", content=soft)).json()["events"][0]["kind"] == "soft"
    complaint = sns.message("Notification", ses_complaint(carol), version=version)
    assert (await client.post("/v1/webhooks/ses", content=complaint)).json()["events"][0]["matched"] is True
    assert (await reader_state(url, alice))["suppressed"] == "hard_bounce"
    assert (await reader_state(url, bob))["soft_bounces"] == 1
    assert (await reader_state(url, carol))["status"] == "complained"
    assert await value(url, "SELECT array_agg(DISTINCT source) FROM bounce_events") == ["webhook-ses"]


async def test_ses_subscription_confirmation_is_verified_and_acknowledged(
    client: Client, settings: Settings, secrets: Any
) -> None:
    sns: Sns = secrets[1]
    confirmation = sns.message(
        "SubscriptionConfirmation",
        "You have chosen to subscribe to the topic.",
        Token="2336412f37fb687f5d51e6e2425f004aed",
        SubscribeURL="https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f",
    )
    response = await client.post("/v1/webhooks/ses", content=confirmation)
    assert response.status_code == 200
    assert response.json() == {"events": []}
    forged = confirmation.replace(b"ConfirmSubscription", b"ConfirmSubscriptiom")
    assert (await client.post("/v1/webhooks/ses", content=forged)).status_code == 401


async def test_ses_refuses_what_it_cannot_verify(client: Client, settings: Settings, secrets: Any) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    sns: Sns = secrets[1]
    genuine = json.loads(sns.message("Notification", ses_bounce("Permanent", alice)))
    tampered = {**genuine, "Message": ses_bounce("Permanent", alice, "bob@example.org")}
    bodies = [
        json.dumps(tampered).encode(),
        json.dumps({**genuine, "SignatureVersion": "3"}).encode(),
        json.dumps({**genuine, "Signature": "not base64!"}).encode(),
        json.dumps({k: v for k, v in genuine.items() if k != "TopicArn"}).encode(),
        b"{not json",
        b"[]",
    ]
    for body in bodies:
        response = await client.post("/v1/webhooks/ses", content=body)
        assert response.status_code == 401, body
        assert response.headers["content-type"] == "application/problem+json"
    await _nothing_written(url)


async def test_ses_with_a_certificate_other_than_the_signer_is_refused(
    client: Client, app: Litestar, settings: Settings, secrets: Any, tmp_path: Path
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    impostor_dir = tmp_path / "impostor"
    impostor_dir.mkdir()
    impostor = Sns(impostor_dir)
    response = await client.post(
        "/v1/webhooks/ses", content=impostor.message("Notification", ses_bounce("Permanent", alice))
    )
    assert response.status_code == 401
    await _nothing_written(url)


# -- Postmark ------------------------------------------------------------------------------------


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_postmark_bounces_and_spam_complaints(client: Client, settings: Settings, secrets: Any) -> None:
    url = settings.database_url or ""
    alice, bob, carol = await seed_readers(url, 3)
    auth = _basic("postmark", "hook-password")
    records = [
        {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "Email": alice,
         "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
         "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist."},
        {"RecordType": "Bounce", "Type": "SoftBounce", "TypeCode": 4096, "Email": bob,
         "Description": "Mailbox full", "Details": "452 4.2.2 Over quota"},
        {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 100001, "Email": carol},
        {"RecordType": "Bounce", "Type": "AutoResponder", "TypeCode": 64, "Email": alice},
        {"RecordType": "Delivery", "Email": alice},
    ]  # fmt: skip
    answers = []
    for record in records:
        response = await client.post("/v1/webhooks/postmark", json=record, headers=auth)
        assert response.status_code == 200, response.text
        answers.append([(e["kind"], e["status"], e["matched"]) for e in response.json()["events"]])
    assert answers == [[("hard", "5.1.1", True)], [("soft", "4.2.2", True)], [("complaint", None, True)], [], []]
    assert (await reader_state(url, alice))["status"] == "bounced"
    assert (await reader_state(url, bob))["soft_bounces"] == 1
    assert (await reader_state(url, carol))["status"] == "complained"


async def test_postmark_wrong_credentials_are_refused(client: Client, settings: Settings, secrets: Any) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    record = {"RecordType": "Bounce", "Type": "HardBounce", "Email": alice}
    for headers in ({}, _basic("postmark", "wrong"), _basic("other", "hook-password"), {"Authorization": "Basic %%%"}):
        response = await client.post("/v1/webhooks/postmark", json=record, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    await _nothing_written(url)


# -- SendGrid ------------------------------------------------------------------------------------


def _sendgrid(key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str = "1730808000") -> dict[str, str]:
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


async def test_sendgrid_event_batch(client: Client, settings: Settings, secrets: Any) -> None:
    url = settings.database_url or ""
    alice, bob, carol, dave = await seed_readers(url, 4)
    batch = [
        {"email": alice, "event": "bounce", "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 User unknown"},
        {"email": bob, "event": "bounce", "type": "blocked", "status": "4.7.1", "reason": "Greylisted"},
        {"email": carol, "event": "spamreport"},
        {"email": dave, "event": "dropped", "reason": "Bounced Address"},
        {"email": alice, "event": "delivered"},
        {"email": alice, "event": "open"},
    ]
    body = json.dumps(batch).encode()
    response = await client.post("/v1/webhooks/sendgrid", content=body, headers=_sendgrid(secrets[2], body))
    assert response.status_code == 200, response.text
    assert [(e["email"], e["kind"], e["status"], e["matched"]) for e in response.json()["events"]] == [
        (alice, "hard", "5.1.1", True),
        (bob, "soft", "4.7.1", True),
        (carol, "complaint", None, True),
        (dave, "hard", "5.0.0", True),
    ]
    assert (await reader_state(url, carol))["status"] == "complained"
    assert (await reader_state(url, dave))["suppressed"] == "hard_bounce"


async def test_sendgrid_bad_signatures_are_refused(client: Client, settings: Settings, secrets: Any) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    body = json.dumps([{"email": alice, "event": "bounce", "type": "bounce"}]).encode()
    good = _sendgrid(secrets[2], body)
    other_key = ec.generate_private_key(ec.SECP256R1())
    attempts = [
        {"Content-Type": "application/json"},
        _sendgrid(other_key, body),
        {**good, "X-Twilio-Email-Event-Webhook-Timestamp": "1730808001"},
        {**good, "X-Twilio-Email-Event-Webhook-Signature": "bm90IGEgc2lnbmF0dXJl"},
    ]
    for headers in attempts:
        assert (await client.post("/v1/webhooks/sendgrid", content=body, headers=headers)).status_code == 401
    tampered = body.replace(b"bounce", b"bounce ", 1)
    assert (await client.post("/v1/webhooks/sendgrid", content=tampered, headers=good)).status_code == 401
    await _nothing_written(url)


async def test_sendgrid_verified_but_malformed_is_400(client: Client, settings: Settings, secrets: Any) -> None:
    body = b'{"email": "a@example.org"}'
    response = await client.post("/v1/webhooks/sendgrid", content=body, headers=_sendgrid(secrets[2], body))
    assert response.status_code == 400
    await _nothing_written(settings.database_url or "")


# -- Mailgun -------------------------------------------------------------------------------------


def _mailgun(event_data: dict[str, Any], *, timestamp: int, key: str = MAILGUN_KEY) -> dict[str, Any]:
    token = "c47468e81de0818af77f3e14a728602a29"
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
        "event-data": event_data,
    }


async def test_mailgun_failures_and_complaints(
    client: Client, settings: Settings, secrets: Any, clock: FakeClock
) -> None:
    url = settings.database_url or ""
    alice, bob, carol = await seed_readers(url, 3)
    now = int(clock())
    events: list[dict[str, Any]] = [
        {"event": "failed", "severity": "permanent", "recipient": alice, "reason": "bounce",
         "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist", "description": ""}},
        {"event": "failed", "severity": "temporary", "recipient": bob,
         "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"}},
        {"event": "complained", "recipient": carol},
        {"event": "delivered", "recipient": alice},
    ]  # fmt: skip
    kinds = []
    for data in events:
        response = await client.post("/v1/webhooks/mailgun", json=_mailgun(data, timestamp=now - 30))
        assert response.status_code == 200, response.text
        kinds += [(e["kind"], e["status"], e["matched"]) for e in response.json()["events"]]
    # A temporary failure is one Mailgun will retry: a delay, recorded, never a bounce.
    assert kinds == [("hard", "5.1.1", True), ("delayed", "4.2.2", True), ("complaint", None, True)]
    assert (await reader_state(url, bob))["soft_bounces"] == 0
    assert (await reader_state(url, alice))["status"] == "bounced"
    assert (await reader_state(url, carol))["status"] == "complained"


async def test_mailgun_bad_or_stale_signatures_are_refused(
    client: Client, settings: Settings, secrets: Any, clock: FakeClock
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    data = {"event": "failed", "severity": "permanent", "recipient": alice}
    now = int(clock())
    wrong_key = _mailgun(data, timestamp=now, key="key-someone-else")
    stale = _mailgun(data, timestamp=now - 301)
    future = _mailgun(data, timestamp=now + 301)
    swapped = _mailgun(data, timestamp=now)
    swapped["signature"]["token"] = "another-token"
    unsigned = {"event-data": data}
    for body in (wrong_key, stale, future, swapped, unsigned):
        assert (await client.post("/v1/webhooks/mailgun", json=body)).status_code == 401
    assert (await client.post("/v1/webhooks/mailgun", content=b"not json")).status_code == 401
    await _nothing_written(url)
    clock.advance(290)
    assert (await client.post("/v1/webhooks/mailgun", json=_mailgun(data, timestamp=now))).status_code == 200


# -- All providers -------------------------------------------------------------------------------


async def test_unconfigured_providers_are_refused_and_unknown_ones_are_404(client: Client, settings: Settings) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    for provider in ("ses", "postmark", "sendgrid", "mailgun"):
        response = await client.post(f"/v1/webhooks/{provider}", json={"email": alice})
        assert response.status_code == 401, provider
        assert "not configured" in response.json()["detail"]
    assert (await client.post("/v1/webhooks/sparkpost", json={})).status_code == 404
    await _nothing_written(url)


async def test_webhooks_need_no_api_key_but_tie_edition_copies(
    client: Client, admin_headers: dict[str, str], settings: Settings, secrets: Any
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    edition_id, _ = await sent_edition(url, [alice])
    record = {"RecordType": "Bounce", "Type": "HardBounce", "Email": alice, "Details": "550 5.1.1 unknown"}
    response = await client.post("/v1/webhooks/postmark", json=record, headers=_basic("postmark", "hook-password"))
    assert response.status_code == 200
    shown = (await client.get(f"/v1/editions/{edition_id}", headers=admin_headers)).json()
    assert shown["bounced"] == 1


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"LETTERBOX_SNS_CERT_FILE": "/nonexistent/sns.pem"}, "LETTERBOX_SNS_CERT_FILE"),
        ({"LETTERBOX_POSTMARK_WEBHOOK_USER": "postmark"}, "LETTERBOX_POSTMARK_WEBHOOK_PASSWORD"),
        ({"LETTERBOX_POSTMARK_WEBHOOK_USER": "a:b", "LETTERBOX_POSTMARK_WEBHOOK_PASSWORD": "x"},
         "LETTERBOX_POSTMARK_WEBHOOK_USER"),
        ({"LETTERBOX_SENDGRID_WEBHOOK_PUBLIC_KEY": "bm90IGEga2V5"}, "LETTERBOX_SENDGRID_WEBHOOK_PUBLIC_KEY"),
    ],
)  # fmt: skip
def test_bad_webhook_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_webhook_secrets(env)
    assert raised.value.variable == variable


def test_a_file_without_a_certificate_is_refused(tmp_path: Path) -> None:
    not_a_cert = tmp_path / "sns.pem"
    not_a_cert.write_text("hello")
    with pytest.raises(SettingsError, match="LETTERBOX_SNS_CERT_FILE"):
        load_webhook_secrets({"LETTERBOX_SNS_CERT_FILE": str(not_a_cert)})
    assert load_webhook_secrets({}) == WebhookSecrets()


async def test_our_message_id_quoted_by_a_provider_ties_the_exact_copy(
    client: Client, settings: Settings, secrets: Any, clock: FakeClock
) -> None:
    url = settings.database_url or ""
    alice, bob, carol = await seed_readers(url, 3)
    _, (old_alice, old_bob, old_carol) = await sent_edition(url, [alice, bob, carol], sent_days_ago=3)
    await sent_edition(url, [alice, bob, carol])  # newer copies: a guess by address would pick these
    message_ids = {r["id"]: r["message_id"] for r in await fetch(url, "SELECT id, message_id FROM deliveries")}
    sns: Sns = secrets[1]
    notification = json.loads(ses_bounce("Permanent", alice))
    notification["mail"]["commonHeaders"] = {"messageId": message_ids[old_alice]}
    assert (
        await client.post("/v1/webhooks/ses", content=sns.message("Notification", json.dumps(notification)))
    ).json()["events"][0]["matched"]
    # Mailgun quotes Message-IDs without angle brackets.
    data = {
        "event": "failed",
        "severity": "permanent",
        "recipient": bob,
        "message": {"headers": {"message-id": message_ids[old_bob].strip("<>")}},
    }
    assert (await client.post("/v1/webhooks/mailgun", json=_mailgun(data, timestamp=int(clock())))).status_code == 200
    # A batch quoting Carol's copy in an unrelated event must not tie Alice's bounce to it.
    batch = [
        {"email": carol, "event": "delivered", "smtp-id": message_ids[old_carol]},
        {"email": "stranger@example.net", "event": "bounce", "type": "bounce"},
    ]
    body = json.dumps(batch).encode()
    response = await client.post("/v1/webhooks/sendgrid", content=body, headers=_sendgrid(secrets[2], body))
    assert [e["matched"] for e in response.json()["events"]] == [False]
    tied = await fetch(url, "SELECT delivery_id FROM bounce_events ORDER BY id")
    assert [r["delivery_id"] for r in tied] == [old_alice, old_bob]
    assert (await reader_state(url, carol))["status"] == "active"


# -- Replays and labels --------------------------------------------------------------------------


async def test_a_genuine_event_replayed_changes_nothing(
    client: Client, settings: Settings, secrets: Any, clock: FakeClock
) -> None:
    """Each provider's event id is acted on once: three deliveries of one soft bounce (the limit
    is three) count one, whatever the provider."""
    url = settings.database_url or ""
    readers = await seed_readers(url, 4)
    mailgun = _mailgun(
        {"event": "failed", "severity": "permanent", "recipient": readers[0], "id": "mg-event-1",
         "reason": "old", "delivery-status": {"code": 452, "enhanced-code": "4.2.2", "message": "Mailbox full"}},
        timestamp=int(clock()) - 10,
    )  # fmt: skip
    postmark = {"RecordType": "Bounce", "ID": 4242, "Type": "SoftBounce", "Email": readers[1],
                "Description": "Mailbox full", "Details": "452 4.2.2 Over quota"}  # fmt: skip
    sendgrid = json.dumps([{"email": readers[2], "event": "bounce", "type": "blocked", "status": "4.7.1",
                            "reason": "Greylisted", "sg_event_id": "sg-1"}]).encode()  # fmt: skip
    ses = secrets[1].message("Notification", ses_bounce("Transient", readers[3], status="4.4.7"))
    for _ in range(3):
        requests = [
            client.post("/v1/webhooks/mailgun", json=mailgun),
            client.post("/v1/webhooks/postmark", json=postmark, headers=_basic("postmark", "hook-password")),
            client.post("/v1/webhooks/sendgrid", content=sendgrid, headers=_sendgrid(secrets[2], sendgrid)),
            client.post("/v1/webhooks/ses", content=ses),
        ]
        for request in requests:
            response = await request
            assert response.status_code == 200, response.text
            assert [(e["kind"], e["matched"]) for e in response.json()["events"]] == [("soft", True)]
    for reader in readers:
        state = await reader_state(url, reader)
        assert (state["status"], state["soft_bounces"], state["suppressed"]) == ("active", 1, None), reader
    assert await value(url, "SELECT count(*) FROM bounce_events") == 4


async def test_a_provider_label_is_a_hint_the_status_code_decides(
    client: Client, settings: Settings, secrets: Any
) -> None:
    url = settings.database_url or ""
    alice, bob = await seed_readers(url, 2)
    sns: Sns = secrets[1]
    transient_but_5xx = sns.message("Notification", ses_bounce("Transient", alice, status="5.1.1", feedback_id="a"))
    response = await client.post("/v1/webhooks/ses", content=transient_but_5xx)
    assert [(e["kind"], e["status"]) for e in response.json()["events"]] == [("hard", "5.1.1")]
    delayed = {"email": bob, "event": "deferred", "response": "451 4.7.1 Try again later", "sg_event_id": "sg-9"}
    body = json.dumps([delayed]).encode()
    response = await client.post("/v1/webhooks/sendgrid", content=body, headers=_sendgrid(secrets[2], body))
    assert [(e["kind"], e["matched"]) for e in response.json()["events"]] == [("delayed", True)]
    assert (await reader_state(url, alice))["suppressed"] == "hard_bounce"
    assert (await reader_state(url, bob))["soft_bounces"] == 0
