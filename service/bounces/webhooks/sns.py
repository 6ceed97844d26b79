"""Amazon SES bounce and complaint notifications, delivered by Amazon SNS.

Every SNS message is signed: RSA over a canonical string of its fields,
SHA1 for ``SignatureVersion`` 1 and SHA256 for 2.  We verify against the
certificate(s) in ``LETTERBOX_SNS_CERT_FILE`` and never fetch
``SigningCertURL`` (a fetched certificate would need its own chain of trust;
a pinned one does not).  Without that file the webhook is refused.

``SubscriptionConfirmation``: verified, then its SubscribeURL is logged for
the operator to open (we make no outbound requests).  ``Notification``: its
``Message`` is the SES notification JSON, read by the same reader as SES
notifications received by mail (``formats/ses_notification.py``); each bounced, delayed or
complained recipient is a finding.  Other SES notification types (deliveries)
are ignored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ...errors import BadRequest
from ...settings import SettingsError, WebhookSecrets
from ..finding import Finding
from ..formats import ses_notification
from .common import WebhookRefused, decode_json

log = structlog.get_logger(__name__)

# The fields each SNS message type signs, in the order the canonical string lists them.
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_OPTIONAL = {"Subject"}


def read(body: bytes, headers: Mapping[str, str], secrets: WebhookSecrets, now: float) -> list[Finding]:
    """Verify one SNS message and return the bounce and complaint events it carries."""
    if secrets.sns_cert_file is None:
        raise WebhookRefused("Amazon SES webhooks are not configured here (LETTERBOX_SNS_CERT_FILE is not set).")
    message = _verified(body, secrets.sns_cert_file)
    kind = message["Type"]
    if kind != "Notification":
        log.info(
            "sns_subscription_message", type=kind, topic=message.get("TopicArn"),
            subscribe_url=message.get("SubscribeURL"),
        )  # fmt: skip
        return []
    notification = _notification(message["Message"])
    if notification is None:
        log.info("sns_message_ignored", topic=message.get("TopicArn"), reason="not an SES notification")
        return []
    return ses_notification.findings(notification) or []


def canonical_string(message: Mapping[str, str]) -> bytes:
    """What SNS signs: ``name\\nvalue\\n`` for each signed field present, in order (Subject is optional)."""
    fields = _SIGNED[message["Type"]]
    return "".join(f"{name}\n{message[name]}\n" for name in fields if name in message).encode()


def _verified(body: bytes, cert_file: str) -> dict[str, str]:
    message = _sns_message(body)
    algorithm = _HASHES.get(message.get("SignatureVersion", ""))
    if algorithm is None:
        raise WebhookRefused("The SNS message has an unknown SignatureVersion.")
    try:
        signature = base64.b64decode(message.get("Signature", ""), validate=True)
    except binascii.Error as exc:
        raise WebhookRefused("The SNS message's Signature is not base64.") from exc
    try:
        keys = sns_certificates(cert_file)
    except ValueError as exc:
        log.error("sns_certificate_unusable", error=str(exc))
        raise WebhookRefused("The SNS signing certificate configured here cannot be read.") from exc
    signed = canonical_string(message)
    for key in keys:
        try:
            key.verify(signature, signed, padding.PKCS1v15(), algorithm())
            return message
        except InvalidSignature:
            continue
    raise WebhookRefused("The SNS message's signature does not verify.")


def _sns_message(body: bytes) -> dict[str, str]:
    """The SNS envelope; anything that is not one cannot be verified, hence 401 rather than 400."""
    try:
        message = decode_json(body, what="SNS message")
    except BadRequest as exc:
        raise WebhookRefused("The body is not an SNS message.") from exc
    if (
        not isinstance(message, dict)
        or message.get("Type") not in _SIGNED
        or not all(isinstance(v, str) for v in message.values())
        or any(name not in message for name in _SIGNED[message["Type"]] if name not in _OPTIONAL)
    ):
        raise WebhookRefused("The body is not an SNS message with the fields SNS signs.")
    return message


def _notification(text: str) -> dict[str, Any] | None:
    try:
        notification = decode_json(text.encode(), what="SES notification")
    except BadRequest:
        return None
    return notification if isinstance(notification, dict) else None


def check(secrets: WebhookSecrets) -> None:
    """At start: the certificate file, when set, must hold an RSA certificate."""
    if secrets.sns_cert_file is not None:
        try:
            sns_certificates(secrets.sns_cert_file)
        except ValueError as exc:
            raise SettingsError("LETTERBOX_SNS_CERT_FILE", str(exc)) from exc


def sns_certificates(path: str) -> list[rsa.RSAPublicKey]:
    """The RSA public keys of the certificates in ``path``; :class:`ValueError` when there are none.

    Read at each use, so a rotated certificate file takes effect without a restart.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror or exc}") from exc
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"{path!r} holds no PEM certificate") from exc
    keys = [c.public_key() for c in certificates]
    rsa_keys = [k for k in keys if isinstance(k, rsa.RSAPublicKey)]
    if not rsa_keys:
        raise ValueError(f"{path!r} holds no RSA certificate (SNS signs with RSA)")
    return rsa_keys
