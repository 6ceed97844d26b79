"""The secrets that let each provider's webhook prove who sent it, from ``LETTERBOX_*`` variables.

A provider whose secret is not set is not configured: its webhook answers 401
and changes nothing.  Values are checked when they are loaded (a certificate
that does not parse stops the service at start, not at the first bounce).
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from ..settings import Settings, SettingsError


class WebhookSecrets(msgspec.Struct, frozen=True, kw_only=True):
    """How each provider webhook is verified; every field is optional."""

    sns_cert_file: str | None = None
    """PEM file with the certificate(s) Amazon SNS signs with (several allowed, for rotation).
    Unset: the ``ses`` webhook is refused; SigningCertURL is never fetched."""
    postmark_webhook_user: str | None = None
    """HTTP Basic user Postmark sends (set together with the password)."""
    postmark_webhook_password: str | None = None
    sendgrid_webhook_public_key: str | None = None
    """SendGrid's Signed Event Webhook verification key: base64 DER (as SendGrid shows it) or PEM."""
    mailgun_webhook_signing_key: str | None = None
    """Mailgun's HTTP webhook signing key."""


def load_webhook_secrets(settings: Settings) -> WebhookSecrets:
    """Take and check the webhook secrets from the settings; raise :class:`SettingsError` naming a bad variable."""
    secrets = WebhookSecrets(
        sns_cert_file=settings.sns_cert_file,
        postmark_webhook_user=settings.postmark_webhook_user,
        postmark_webhook_password=settings.postmark_webhook_password,
        sendgrid_webhook_public_key=settings.sendgrid_webhook_public_key,
        mailgun_webhook_signing_key=settings.mailgun_webhook_signing_key,
    )
    if secrets.sns_cert_file is not None:
        try:
            sns_certificates(secrets.sns_cert_file)
        except ValueError as exc:
            raise SettingsError("LETTERBOX_SNS_CERT_FILE", str(exc)) from exc
    if (secrets.postmark_webhook_user is None) != (secrets.postmark_webhook_password is None):
        raise SettingsError(
            "LETTERBOX_POSTMARK_WEBHOOK_PASSWORD",
            "set LETTERBOX_POSTMARK_WEBHOOK_USER and LETTERBOX_POSTMARK_WEBHOOK_PASSWORD together",
        )
    if secrets.postmark_webhook_user is not None and ":" in secrets.postmark_webhook_user:
        raise SettingsError("LETTERBOX_POSTMARK_WEBHOOK_USER", "HTTP Basic user names cannot contain ':'")
    if secrets.sendgrid_webhook_public_key is not None:
        try:
            sendgrid_public_key(secrets.sendgrid_webhook_public_key)
        except ValueError as exc:
            raise SettingsError("LETTERBOX_SENDGRID_WEBHOOK_PUBLIC_KEY", str(exc)) from exc
    return secrets


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


@lru_cache(maxsize=4)
def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's P-256 verification key from base64 DER or PEM; :class:`ValueError` otherwise."""
    try:
        if "-----BEGIN" in text:
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ValueError("expected a base64 DER or PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("expected an ECDSA P-256 public key")
    return key
