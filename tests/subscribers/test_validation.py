"""Address validation: the fast path for plain addresses agrees with email-validator everywhere."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.errors import InvalidValue
from service.subscribers.validation import normalise_email

# A long generated run (hypothesis): outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

_LOCAL = st.text(alphabet="aZ09._-+!#'\"()ü ", min_size=0, max_size=70)
_LABEL = st.text(alphabet="abxnZ09-_ü", min_size=0, max_size=66)
_TLD = st.sampled_from(["org", "uk", "test", "local", "c1", "y", "ORG", "xn--p1ai", "123", "localhost", "a-b"])


def _reference(text: str) -> str | None:
    try:
        valid = validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return f"{valid.local_part}@{valid.ascii_domain}"


def _ours(text: str) -> str | None:
    try:
        return normalise_email(text)
    except InvalidValue:
        return None


@settings(max_examples=3000, deadline=None)
@given(local=_LOCAL, labels=st.lists(_LABEL, min_size=0, max_size=4), tld=_TLD)
@example(local="reader", labels=["example"], tld="org")
@example(local="Ann.Smith", labels=["EXAMPLE"], tld="ORG")
@example(local="a", labels=["x--y"], tld="org")
@example(local="a", labels=["xn--bcher-kva"], tld="example")
@example(local="a", labels=["xn--zz"], tld="org")
@example(local="a", labels=["ab--cd"], tld="org")
@example(local="a" * 65, labels=["example"], tld="org")
@example(local="a", labels=["b" * 63] * 4, tld="org")
@example(local="a", labels=["home"], tld="arpa")
def test_normalised_addresses_match_email_validator(local: str, labels: list[str], tld: str) -> None:
    address = f"{local}@{'.'.join([*labels, tld])}"
    assert _ours(address) == _reference(address)
