"""Tokens: purpose-bound, tamper-evident, expiring where they should, rotatable keys."""

from __future__ import annotations

import msgspec
import pytest

from service.tokens import Purpose, TokenExpired, TokenInvalid, TokenSigner
from tests.support.clock import FakeClock

NEW, OLD, RETIRED = "new-key-0123456789abcdef", "old-key-0123456789abcdef", "retired-key-0123456789ab"


def test_round_trip_for_every_purpose() -> None:
    signer = TokenSigner([NEW])
    for purpose in Purpose:
        assert signer.verify(purpose, signer.sign(purpose, 12, None, 7)) == (12, None, 7)


def test_tampered_tokens_are_refused() -> None:
    signer = TokenSigner([NEW])
    token = signer.sign(Purpose.UNSUBSCRIBE, 41, 2, 3)
    payload, _, signature = token.partition(".")
    for forged in (f"42-2-3.{signature}", token[:-1] + ("A" if token[-1] != "A" else "B"), payload, "", "....", "é"):
        with pytest.raises(TokenInvalid):
            signer.verify(Purpose.UNSUBSCRIBE, forged)


def test_a_token_for_one_purpose_is_refused_for_another() -> None:
    signer = TokenSigner([NEW])
    token = signer.sign(Purpose.UNSUBSCRIBE, 1, 1, 1)
    for other in (Purpose.CONFIRM, Purpose.PREFERENCES, Purpose.VERP, Purpose.CSRF):
        with pytest.raises(TokenInvalid):
            signer.verify(other, token)


def test_confirm_tokens_expire_by_the_injected_clock() -> None:
    clock = FakeClock()
    signer = TokenSigner([NEW], now=clock)
    token = signer.sign(Purpose.CONFIRM, 5)
    clock.advance(7 * 24 * 3600 - 1)
    assert signer.verify(Purpose.CONFIRM, token, max_age=7 * 24 * 3600) == (5,)
    clock.advance(2)
    with pytest.raises(TokenExpired):
        signer.verify(Purpose.CONFIRM, token, max_age=7 * 24 * 3600)


def test_unsubscribe_tokens_never_expire() -> None:
    clock = FakeClock()
    signer = TokenSigner([NEW], now=clock)
    token = signer.sign(Purpose.UNSUBSCRIBE, 5, None, None)
    clock.advance(10 * 365 * 24 * 3600)
    assert signer.verify(Purpose.UNSUBSCRIBE, token) == (5, None, None)


def test_key_rotation_first_signs_all_verify_retired_fail() -> None:
    before = TokenSigner([OLD, RETIRED])
    old_token, retired_token = before.sign(Purpose.UNSUBSCRIBE, 9, 1, 1), TokenSigner([RETIRED]).sign(Purpose.VERP, 3)
    after = TokenSigner([NEW, OLD])
    assert after.verify(Purpose.UNSUBSCRIBE, old_token) == (9, 1, 1)
    fresh = after.sign(Purpose.UNSUBSCRIBE, 9, 1, 1)
    assert TokenSigner([NEW]).verify(Purpose.UNSUBSCRIBE, fresh) == (9, 1, 1), "the first key signs"
    with pytest.raises(TokenInvalid):
        after.verify(Purpose.VERP, retired_token)


def test_verp_and_mailto_tokens_fit_in_a_local_part() -> None:
    signer = TokenSigner([NEW])
    big = 10**12
    assert len("bounce+" + signer.sign(Purpose.VERP, big)) <= 64
    assert len("unsubscribe+" + signer.sign(Purpose.UNSUBSCRIBE, big, 10**6, big)) <= 64


def test_a_timed_token_signed_again_within_its_second_is_the_token_a_fresh_signer_makes() -> None:
    clock = FakeClock(1_000_000.2)
    signer = TokenSigner([NEW], now=clock)
    first = signer.sign(Purpose.CSRF, 1, 0)
    clock.advance(0.7)  # same second
    assert signer.sign(Purpose.CSRF, 1, 0) == first == TokenSigner([NEW], now=clock).sign(Purpose.CSRF, 1, 0)
    assert signer.sign(Purpose.CSRF, 2, 5) != first, "another payload is signed, not taken from the last"
    clock.advance(0.2)  # the next second: a new timestamp, so a new token that ages from now
    later = signer.sign(Purpose.CSRF, 1, 0)
    assert later != first and later == TokenSigner([NEW], now=clock).sign(Purpose.CSRF, 1, 0)
    clock.advance(9.5)
    with pytest.raises(TokenExpired):
        signer.verify(Purpose.CSRF, first, max_age=10)
    assert signer.verify(Purpose.CSRF, later, max_age=10) == (1, 0)


class _State(msgspec.Struct, frozen=True):
    state: str
    next: str | None


def test_a_signed_value_comes_back_as_it_was_and_only_for_its_purpose() -> None:
    clock = FakeClock()
    signer = TokenSigner([NEW], now=clock)
    value = _State(state="ab+/=é", next="/console/editions?x=1")
    token = signer.sign_value(Purpose.CONSOLE_OIDC, value)
    assert all(c.isalnum() or c in "-_." for c in token), "safe in a cookie and a URL"
    assert signer.verify_value(Purpose.CONSOLE_OIDC, token, _State, max_age=600) == value
    assert TokenSigner([NEW, OLD], now=clock).verify_value(Purpose.CONSOLE_OIDC, token, _State) == value
    payload, _, rest = token.partition(".")
    signed, _, signature = token.rpartition(".")
    # The signature's first character, not its last: the last base64 character of 20 bytes carries
    # padding bits, and changing only those leaves the same signature.
    other_signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    for forged in (f"{signed}.{other_signature}", f"{payload[:-2]}xx.{rest}", "", "a.b.c"):
        with pytest.raises(TokenInvalid):
            signer.verify_value(Purpose.CONSOLE_OIDC, forged, _State)
    with pytest.raises(TokenInvalid):
        signer.verify_value(Purpose.CSRF, token, _State)
    with pytest.raises(TokenInvalid):  # genuine, but not a value of this shape
        signer.verify_value(Purpose.CSRF, signer.sign(Purpose.CSRF, 5), _State)
    clock.advance(601)
    with pytest.raises(TokenExpired):
        signer.verify_value(Purpose.CONSOLE_OIDC, token, _State, max_age=600)
