"""Rate limits of the public form: fixed windows counted in PostgreSQL, shared by every replica.

Two limits apply to ``POST /subscribe``: one per client address (a script
hammering the form) and one per e-mail address (someone flooding one inbox
with confirmation mails).  The generous per-client figure allows for a whole
office behind one NAT address signing up during a training session.
Addresses are not stored in clear in bucket names: a keyed hash is enough to
count and says nothing to someone reading the table.
"""

from __future__ import annotations

import hashlib
import hmac
import math

import msgspec

from ..db.pool import Executor
from ..db.queries import Queries
from ..settings import Settings


class Limit(msgspec.Struct, frozen=True):
    """At most ``hits`` per ``window_seconds`` per bucket."""

    name: str
    hits: int
    window_seconds: int


def per_client(settings: Settings) -> Limit:
    """Sign-ups per client address per 10 minutes (``LETTERBOX_SUBSCRIBE_LIMIT_PER_CLIENT``)."""
    return Limit("subscribe-client", settings.subscribe_limit_per_client, 600)


def per_address(settings: Settings) -> Limit:
    """Sign-ups per e-mail address per hour (``LETTERBOX_SUBSCRIBE_LIMIT_PER_ADDRESS``)."""
    return Limit("subscribe-address", settings.subscribe_limit_per_address, 3600)


def email_bucket(settings: Settings, email: str) -> str:
    """The per-address bucket name: a keyed hash of the lower-cased address."""
    digest = hmac.new(settings.signing_key.encode(), email.lower().encode(), hashlib.sha256).hexdigest()
    return f"subscribe-address:{digest[:32]}"


def client_bucket(client: str) -> str:
    """The per-client bucket name."""
    return f"subscribe-client:{client[:100]}"


def window_start(limit: Limit, now: float) -> float:
    """The start of the fixed window ``now`` falls in (Unix time)."""
    return float(math.floor(now / limit.window_seconds) * limit.window_seconds)


def retry_after(limit: Limit, hits: int | None, now: float) -> int | None:
    """None when ``hits`` in this window (None: not counted) are allowed, else the seconds until it ends."""
    if hits is None or hits <= limit.hits:
        return None
    return max(1, math.ceil(window_start(limit, now) + limit.window_seconds - now))


async def hit(db: Executor, q: Queries, limit: Limit, bucket: str, now: float) -> int | None:
    """Count one attempt; return None when allowed, else the seconds until the window ends (Retry-After)."""
    hits: int = await db.fetchval(q["rate-limit-hit"], bucket, window_start(limit, now))
    return retry_after(limit, hits, now)
