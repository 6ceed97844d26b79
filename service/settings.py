"""The one settings object, read from ``LETTERBOX_*`` environment variables.

Every field is documented where it is declared; README's configuration table
is the same list.  Parsing is pure: generating the secret key file or starting
an embedded database happens at start-up, never at import.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec

PREFIX = "LETTERBOX_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class SettingsError(ValueError):
    """A configuration value is unusable; ``variable`` names the culprit."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


class WebhookSecrets(msgspec.Struct, frozen=True, kw_only=True):
    """How each provider's bounce webhook proves who sent it: field ``x`` is ``LETTERBOX_X``.

    A provider whose secret is unset is not configured: its webhook answers 401.  Each
    provider checks its own values at start (service/bounces/webhooks/).
    """

    sns_cert_file: str | None = None
    """PEM certificate(s) Amazon SNS signs with; unset refuses the ``ses`` webhook (SigningCertURL is never fetched)."""
    postmark_webhook_user: str | None = None
    """HTTP Basic user Postmark sends (set together with the password)."""
    postmark_webhook_password: str | None = None
    sendgrid_webhook_public_key: str | None = None
    """SendGrid's Signed Event Webhook verification key: base64 DER (as SendGrid shows it) or PEM."""
    mailgun_webhook_signing_key: str | None = None
    """Mailgun's HTTP webhook signing key."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Runtime configuration. Build it with :func:`load_settings`."""

    database_url: str | None = None
    """``postgresql://…``; unset means an embedded PostgreSQL under ``var_dir/postgres``."""
    smtp_url: str | None = None
    """``smtp://``, ``smtp+starttls://`` or ``smtps://user:pass@host:port``; unset means a Maildir outbox."""
    public_url: str = "http://127.0.0.1:8000"
    """Base URL used in links in mail; unset means ``http://HOST:PORT`` of the bind (see :func:`load_settings`)."""
    secret_keys: tuple[str, ...] = ()
    """The first key signs, all verify; empty means a key generated once into ``var_dir/secret``."""
    from_addr: str = "newsletter@localhost"
    """Default From address of editions and system mail; unset means ``newsletter@`` + the public URL's host."""
    bounce_domain: str = ""
    """Domain of VERP return paths; empty means the host of ``public_url``."""
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    bounce_smtp_port: int | None = None
    """When set, ``serve`` also receives bounce mail by SMTP on this port."""
    send_rate: float = 0.0
    """Messages per second per worker process; 0 is unlimited."""
    smtp_concurrency: int = 4
    """SMTP connections a worker keeps open and sends over in parallel."""
    smtp_messages_per_connection: int = 100
    """Mail transactions sent over one SMTP connection before it is closed and a new one opened."""
    dkim_selector: str | None = None
    dkim_key_file: str | None = None
    log_format: Literal["json", "console"] | None = None
    """``None`` picks ``console`` on a TTY and ``json`` otherwise."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    bootstrap_api_key: str | None = None
    """Accepted as an ``admin`` key: for the first start and for tests."""
    var_dir: str = "var"
    """Where the embedded database, the Maildir outbox and the generated secret live."""
    max_body_bytes: int = 10 * 1024 * 1024
    """Largest request body accepted (413 above it)."""
    confirm_max_age_seconds: int = 7 * 24 * 3600
    pending_purge_days: int = 30
    subscribe_limit_per_client: int = 30
    """Form sign-ups per client address per 10 minutes (a whole office behind one NAT fits)."""
    subscribe_limit_per_address: int = 5
    """Form sign-ups per e-mail address per hour (stops flooding one inbox with confirmations)."""
    trusted_proxies: str = "127.0.0.1"
    """Addresses whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips); ``*`` trusts all."""
    soft_bounce_limit: int = 3
    soft_bounce_window_days: int = 30
    send_max_attempts: int = 100
    """Tries per copy, a backstop: the retry window below normally ends retries first."""
    retry_base_seconds: float = 60.0
    """First back-off after a temporary failure; doubles each attempt."""
    retry_max_seconds: float = 3600.0
    retry_for_hours: float = 72.0
    """How long a copy that keeps failing temporarily is retried (a relay down for an afternoon loses nothing)."""
    edition_max_lateness_hours: float = 24.0
    """A scheduled edition found later than this after its ``send_at`` is cancelled, not sent."""
    webhooks: WebhookSecrets = msgspec.field(default_factory=WebhookSecrets)
    """The provider webhooks' secrets, a group of their own."""
    worker_batch_size: int = 200
    lease_seconds: int = 10
    """A live worker renews its leases every third of this; a dead worker's copies are free again after it."""
    db_pool_size: int = 10
    web_workers: int = 1
    """HTTP worker processes of ``serve`` (service/serving.py); :func:`load_settings` defaults it to the cores."""
    # -- observability and limits (issue 12) --
    metrics_port: int | None = None
    """``letterbox worker`` and ``letterbox bounce-receiver`` serve ``/metrics`` on this port; ``serve`` has its own."""
    bounce_smtp_max_connections: int = 100
    """Open connections the bounce receiver holds at once; the next one is answered 421 and closed."""
    bounce_smtp_idle_timeout_seconds: float = 30.0
    """The bounce receiver closes a connection that sends nothing for this long."""
    preview_timeout_seconds: float = 5.0
    """Longest a segment preview may run in PostgreSQL (``statement_timeout``); 0 is no limit."""
    fan_out_timeout_seconds: float = 30.0
    """Longest freezing an edition's recipients may run in PostgreSQL; 0 is no limit."""
    # -- the complaint guard (DESIGN.md "Reports, proofs, events, guard") --
    guard_min_sent: int = 500
    """Copies an edition must have sent before the guard judges its rates."""
    guard_complaint_rate: float = 0.003
    """Complaints per copy sent above which a sending edition pauses (Gmail's limit is 0.3 %)."""
    guard_hard_bounce_rate: float = 0.05
    """Hard bounces per copy sent above which a sending edition pauses (a stale list)."""
    # -- event webhooks (DESIGN.md "Reports, proofs, events, guard, view in browser") --
    event_allow_private: bool = False
    """Let event endpoints be plain http or on loopback, private and other non-public addresses."""
    event_retry_seconds: tuple[float, ...] = (5.0, 60.0, 300.0, 1200.0, 2400.0)
    """Waits between the tries of an event message (one try more than waits), then it fails."""
    # -- the operator console (DESIGN.md "Operator console") --
    console_idle_minutes: int = 30
    """A console session unused for this long is signed out."""
    oidc_issuer: str | None = None
    """OpenID Connect issuer URL (discovery at ``/.well-known/openid-configuration``); with the two below."""
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None

    @property
    def var_path(self) -> Path:
        """``var_dir`` as an absolute path."""
        return Path(self.var_dir).resolve()

    @property
    def effective_bounce_domain(self) -> str:
        """The VERP domain: configured, or the host of the public URL."""
        return self.bounce_domain or mail_domain(self.public_url)

    @property
    def one_click(self) -> bool:
        """Whether copies may offer RFC 8058 one-click unsubscribe, which needs an https link."""
        return self.public_url.startswith("https://")

    @property
    def signing_key(self) -> str:
        """The key that signs new tokens."""
        return self.secret_keys[0]


def mail_domain(url: str) -> str:
    """The domain mail names for a public URL: its host, or ``localhost`` for an IP address or none."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host or "localhost"
    return "localhost"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), as ``os.process_cpu_count()`` counts them from 3.13."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity outside Linux
        return os.cpu_count() or 1


def _url_host(bind: str) -> str:
    """How links name the bind address: a wildcard bind is reached as localhost, IPv6 in brackets."""
    if bind in {"", "0.0.0.0", "::"}:  # noqa: S104 - we read the bind address, not choose it
        return "localhost"
    return f"[{bind}]" if ":" in bind else bind


_SCHEMES_DB = {"postgres", "postgresql"}
_SCHEMES_SMTP = {"smtp", "smtp+starttls", "smtps"}


def _url(variable: str, value: str, schemes: set[str]) -> str:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError as exc:
        raise SettingsError(variable, f"bad port in {value!r}") from exc
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(f"{s}://" for s in schemes))
        raise SettingsError(variable, f"expected a URL starting with one of {allowed}, got {value!r}")
    if parts.scheme in _SCHEMES_SMTP and not parts.hostname:
        raise SettingsError(variable, f"no host in {value!r}")
    return value


def _int(variable: str, value: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise SettingsError(variable, f"expected a whole number, got {value!r}") from exc
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise SettingsError(variable, f"must be {bound}, got {number}")
    return number


def _float(variable: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError as exc:
        raise SettingsError(variable, f"expected a number, got {value!r}") from exc
    if number < 0 or number != number:
        raise SettingsError(variable, f"must be zero or more, got {value!r}")
    return number


def _choice(variable: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SettingsError(variable, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


# Integer settings that are plain numbers with a lower bound; name → minimum.
_INTS = {
    "smtp_concurrency": 1,
    "smtp_messages_per_connection": 1,
    "max_body_bytes": 1024,
    "confirm_max_age_seconds": 60,
    "pending_purge_days": 1,
    "subscribe_limit_per_client": 1,
    "subscribe_limit_per_address": 1,
    "soft_bounce_limit": 1,
    "soft_bounce_window_days": 1,
    "send_max_attempts": 1,
    "worker_batch_size": 1,
    "lease_seconds": 5,
    "db_pool_size": 2,
    "web_workers": 1,
}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: ``os.environ``); raise :class:`SettingsError` on a bad value."""
    source = os.environ if env is None else env

    def get(name: str) -> str | None:
        value = source.get(PREFIX + name.upper())
        return value.strip() if value is not None and value.strip() != "" else None

    values: dict[str, object] = {}
    if (v := get("database_url")) is not None:
        values["database_url"] = _url("LETTERBOX_DATABASE_URL", v, _SCHEMES_DB)
    if (v := get("smtp_url")) is not None:
        values["smtp_url"] = _url("LETTERBOX_SMTP_URL", v, _SCHEMES_SMTP)
    if (v := get("public_url")) is not None:
        parts = urlsplit(v)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SettingsError("LETTERBOX_PUBLIC_URL", f"expected an http(s) URL with a host, got {v!r}")
        values["public_url"] = v.rstrip("/")
    if (v := get("secret_keys")) is not None:
        keys = tuple(k.strip() for k in v.split(",") if k.strip())
        if any(len(k) < 16 for k in keys):
            raise SettingsError("LETTERBOX_SECRET_KEYS", "each key must be at least 16 characters long")
        values["secret_keys"] = keys
    if (v := get("from")) is not None:
        if "\r" in v or "\n" in v or "@" not in v:
            raise SettingsError("LETTERBOX_FROM", f"expected an e-mail address, got {v!r}")
        values["from_addr"] = v
    if (v := get("bounce_domain")) is not None:
        values["bounce_domain"] = v
    if (v := get("host")) is not None:
        values["host"] = v
    if (v := get("port")) is not None:
        values["port"] = _int("LETTERBOX_PORT", v, minimum=0, maximum=65535)
    if (v := get("bounce_smtp_port")) is not None:
        values["bounce_smtp_port"] = _int("LETTERBOX_BOUNCE_SMTP_PORT", v, minimum=0, maximum=65535)
    if (v := get("send_rate")) is not None:
        values["send_rate"] = _float("LETTERBOX_SEND_RATE", v)
    for name in ("retry_base_seconds", "retry_max_seconds", "retry_for_hours"):
        if (v := get(name)) is not None:
            values[name] = _float(PREFIX + name.upper(), v)
    if (v := get("edition_max_lateness_hours")) is not None:
        values["edition_max_lateness_hours"] = _float("LETTERBOX_EDITION_MAX_LATENESS_HOURS", v)
    plain = ("dkim_selector", "dkim_key_file", "bootstrap_api_key", "var_dir", "trusted_proxies")
    for name in plain:
        if (v := get(name)) is not None:
            values[name] = v
    if ("dkim_selector" in values) != ("dkim_key_file" in values):
        raise SettingsError(
            "LETTERBOX_DKIM_KEY_FILE", "set LETTERBOX_DKIM_SELECTOR and LETTERBOX_DKIM_KEY_FILE together"
        )
    if (v := get("log_format")) is not None:
        values["log_format"] = _choice("LETTERBOX_LOG_FORMAT", v, ("json", "console"))
    if (v := get("log_level")) is not None:
        values["log_level"] = _choice("LETTERBOX_LOG_LEVEL", v.lower(), ("debug", "info", "warning", "error"))
    for name, minimum in _INTS.items():
        if (v := get(name)) is not None:
            values[name] = _int(PREFIX + name.upper(), v, minimum=minimum)
    values.update(_limits(get))
    values.update(_events(get))
    values.update(_console(get))
    # Checked further (certificates and keys parse) by each provider at start: service/bounces/webhooks/.
    secrets = {f.name: v for f in msgspec.structs.fields(WebhookSecrets) if (v := get(f.name)) is not None}
    if secrets:
        values["webhooks"] = secrets
    values.setdefault("web_workers", available_cores())
    # Derived defaults (DESIGN.md "Configuration"): links follow the bind, mail names follow the links.
    if "public_url" not in values:
        bind = str(values.get("host", DEFAULT_HOST))
        values["public_url"] = f"http://{_url_host(bind)}:{values.get('port', DEFAULT_PORT)}"
    if "from_addr" not in values:
        values["from_addr"] = f"newsletter@{mail_domain(str(values['public_url']))}"
    return msgspec.convert(values, Settings)


def _limits(get: Callable[[str], str | None]) -> dict[str, object]:
    """Observability and limits: the metrics port, the receiver's caps, statement timeouts, the guard."""
    values: dict[str, object] = {}
    if (v := get("metrics_port")) is not None:
        values["metrics_port"] = _int("LETTERBOX_METRICS_PORT", v, minimum=0, maximum=65535)
    if (v := get("bounce_smtp_max_connections")) is not None:
        values["bounce_smtp_max_connections"] = _int("LETTERBOX_BOUNCE_SMTP_MAX_CONNECTIONS", v, minimum=1)
    for name in ("bounce_smtp_idle_timeout_seconds", "preview_timeout_seconds", "fan_out_timeout_seconds"):
        if (v := get(name)) is not None:
            values[name] = _float(PREFIX + name.upper(), v)
    if values.get("bounce_smtp_idle_timeout_seconds") == 0:
        raise SettingsError("LETTERBOX_BOUNCE_SMTP_IDLE_TIMEOUT_SECONDS", "must be more than zero")
    if (v := get("trusted_proxies")) is not None:
        _check_proxies(v)
    if (v := get("guard_min_sent")) is not None:
        values["guard_min_sent"] = _int("LETTERBOX_GUARD_MIN_SENT", v, minimum=1)
    for name in ("guard_complaint_rate", "guard_hard_bounce_rate"):
        if (v := get(name)) is not None:
            rate = _float(PREFIX + name.upper(), v)
            if rate > 1:
                raise SettingsError(PREFIX + name.upper(), f"is a fraction of copies sent (0.003 = 0.3 %), got {v!r}")
            values[name] = rate
    return values


def _check_proxies(value: str) -> None:
    """Refuse what uvicorn would silently take as a literal host name: each item is ``*``, an IP or a network."""
    for item in (part.strip() for part in value.split(",")):
        if item == "*":
            continue
        try:
            if "/" in item:
                ipaddress.ip_network(item)  # strict, as uvicorn parses it: host bits set is an error
            else:
                ipaddress.ip_address(item)
        except ValueError as exc:
            raise SettingsError(
                "LETTERBOX_TRUSTED_PROXIES", f"expected IP addresses or networks (10.0.0.0/8), got {item!r}"
            ) from exc


def _events(get: Callable[[str], str | None]) -> dict[str, object]:
    """Event webhooks: private endpoints allowed or not, and the waits between tries."""
    values: dict[str, object] = {}
    if (v := get("event_allow_private")) is not None:
        if v.lower() not in {"true", "false", "1", "0", "yes", "no"}:
            raise SettingsError("LETTERBOX_EVENT_ALLOW_PRIVATE", f"expected true or false, got {v!r}")
        values["event_allow_private"] = v.lower() in {"true", "1", "yes"}
    if (v := get("event_retry_seconds")) is not None:
        waits = tuple(_float("LETTERBOX_EVENT_RETRY_SECONDS", part.strip()) for part in v.split(","))
        if any(wait > 7 * 24 * 3600 for wait in waits):
            raise SettingsError("LETTERBOX_EVENT_RETRY_SECONDS", f"each wait is at most a week (604800 s), got {v!r}")
        values["event_retry_seconds"] = waits
    return values


def _console(get: Callable[[str], str | None]) -> dict[str, object]:
    """The operator console: the idle timeout, and OpenID Connect (all three variables or none)."""
    values: dict[str, object] = {}
    if (v := get("console_idle_minutes")) is not None:
        values["console_idle_minutes"] = _int("LETTERBOX_CONSOLE_IDLE_MINUTES", v, minimum=1, maximum=24 * 60)
    oidc = {name: get(name) for name in ("oidc_issuer", "oidc_client_id", "oidc_client_secret")}
    given = {name: value for name, value in oidc.items() if value is not None}
    if given and len(given) < len(oidc):
        missing = ", ".join(PREFIX + name.upper() for name in oidc if name not in given)
        raise SettingsError(missing.split(", ")[0], f"OpenID Connect needs {missing} as well")
    if (issuer := given.get("oidc_issuer")) is not None:
        parts = urlsplit(issuer)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SettingsError("LETTERBOX_OIDC_ISSUER", f"expected an http(s) URL, got {issuer!r}")
    values.update(given)
    return values
