"""The one token signer: itsdangerous, one salt per purpose, key rotation.

Tokens are signed with the first of ``LETTERBOX_SECRET_KEYS`` and verified
against all of them, so a key can be retired gradually.  A token signed for
one purpose (say, unsubscribe) never verifies for another (say, confirm).

Payloads are a few integers (ids) in base 36 joined by ``-``: short enough for
a VERP or ``mailto:`` local part, which may not exceed 64 characters, and URL-safe.
State that is more than ids (an OpenID Connect sign-in in progress) is signed
as base64url JSON (:meth:`TokenSigner.sign_value`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TypeVar

import msgspec
from itsdangerous import BadSignature, Signer, TimestampSigner

Field = int | None
T = TypeVar("T")


class Purpose(StrEnum):
    """What a token is for; the value is its salt."""

    CONFIRM = "letterbox.confirm"
    UNSUBSCRIBE = "letterbox.unsubscribe"
    PREFERENCES = "letterbox.preferences"
    VERP = "letterbox.verp"
    SYSTEM_MAIL = "letterbox.system-mail"
    """The return path of a system mail (a confirmation): names the mail, so its bounce is seen."""
    CSRF = "letterbox.csrf"
    VIEW = "letterbox.view"
    """A reader's own copy of an edition as a web page: names the reader and the edition."""
    PROOF_UNSUBSCRIBE = "letterbox.proof-unsubscribe"
    """The unsubscribe link of a proof: it shows the page and changes nothing, so it names no one."""
    CONSOLE_SESSION = "letterbox.console-session"
    """The operator console's session cookie: names the session row."""
    CONSOLE_CSRF = "letterbox.console-csrf"
    """The console forms' hidden field: bound to the session, or to the sign-in page's own cookie."""
    CONSOLE_OIDC = "letterbox.console-oidc"
    """An OpenID Connect sign-in in progress (state, nonce, PKCE verifier): a cookie for ten minutes."""


# Tokens that carry a timestamp and may expire; the others are links in mail that must keep working.
_TIMED = {Purpose.CONFIRM, Purpose.CSRF, Purpose.CONSOLE_OIDC}


class TokenInvalid(Exception):
    """Forged, tampered, for another purpose, or signed with a key no longer configured."""


class TokenExpired(TokenInvalid):
    """Genuine but older than the allowed age."""


def _base36(number: int) -> str:
    if number < 0:
        raise ValueError("token fields are non-negative ids")
    digits = ""
    while True:
        number, remainder = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[remainder] + digits
        if number == 0:
            return digits


class TokenSigner:
    """Signs and verifies tokens for each :class:`Purpose`.

    ``now`` is injectable so tests can move time instead of sleeping.
    """

    def __init__(self, keys: Sequence[str], *, now: Callable[[], float] = time.time) -> None:
        if not keys:
            raise ValueError("at least one secret key is needed")
        # itsdangerous takes keys oldest to newest and signs with the last.
        ordered = list(reversed(keys))
        self._now = now
        clock = now

        class ClockedSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        # One signer per purpose, built once: a worker signs three tokens per copy it sends.
        self._signers: dict[Purpose, Signer] = {
            purpose: (ClockedSigner if purpose in _TIMED else Signer)(ordered, salt=purpose.value)
            for purpose in Purpose
        }
        self._last_timed: dict[Purpose, tuple[str, int, str]] = {}
        """Per timed purpose, the last payload signed, its second and its token."""

    def sign(self, purpose: Purpose, *fields: Field) -> str:
        """A URL-safe token carrying ``fields`` (ids; ``None`` allowed)."""
        payload = "-".join("" if f is None else _base36(int(f)) for f in fields)
        if purpose not in _TIMED:
            return self._signers[purpose].sign(payload).decode()
        # A timed token's timestamp counts whole seconds, so the same payload signed again within
        # the same second is the same token: the subscription form's hidden field, on every page.
        second = int(self._now())
        last = self._last_timed.get(purpose)
        if last is not None and last[0] == payload and last[1] == second:
            return last[2]
        token = self._signers[purpose].sign(payload).decode()
        self._last_timed[purpose] = (payload, second, token)
        return token

    def verify(self, purpose: Purpose, token: str, *, max_age: int | None = None) -> tuple[Field, ...]:
        """The fields, or :class:`TokenExpired` / :class:`TokenInvalid`."""
        text = self._unsign(purpose, token, max_age)
        try:
            return tuple(None if part == "" else int(part, 36) for part in text.split("-")) if text else ()
        except ValueError as exc:
            raise TokenInvalid("malformed token") from exc

    def sign_value(self, purpose: Purpose, value: object) -> str:
        """A URL-safe token carrying ``value`` (anything msgspec encodes), for state that is more than ids."""
        payload = base64.urlsafe_b64encode(msgspec.json.encode(value)).rstrip(b"=").decode("ascii")
        return self._signers[purpose].sign(payload).decode()

    def verify_value(self, purpose: Purpose, token: str, into: type[T], *, max_age: int | None = None) -> T:
        """The value :meth:`sign_value` signed, as ``into``; :class:`TokenExpired` / :class:`TokenInvalid` otherwise."""
        text = self._unsign(purpose, token, max_age)
        try:
            return msgspec.json.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), type=into)
        except (ValueError, msgspec.ValidationError) as exc:  # binascii.Error is a ValueError
            raise TokenInvalid("malformed token") from exc

    def _unsign(self, purpose: Purpose, token: str, max_age: int | None) -> str:
        """The payload of a genuine token for ``purpose`` (its age checked against our clock when timed)."""
        signer = self._signers[purpose]
        try:
            if isinstance(signer, TimestampSigner):
                raw, signed_at = signer.unsign(token, return_timestamp=True)
                # Age is checked here, against our clock, not itsdangerous's time.time().
                if max_age is not None and self._now() - signed_at.timestamp() > max_age:
                    raise TokenExpired("token expired")
            else:
                raw = signer.unsign(token)
            return raw.decode("ascii")
        except BadSignature as exc:
            raise TokenInvalid("bad signature") from exc
        except UnicodeError as exc:
            raise TokenInvalid("malformed token") from exc
