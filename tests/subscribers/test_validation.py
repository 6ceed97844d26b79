"""Address validation: the fast path for plain addresses agrees with email-validator everywhere."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.errors import InvalidValue
from service.subscribers import validation
from service.subscribers.validation import normalise_email

_LOCAL = st.text(alphabet="aZ09._-+!#'\"()ü ", min_size=0, max_size=70)
_LABEL = st.text(alphabet="abxnZ09-_ü", min_size=0, max_size=66)
_TLD = st.sampled_from(["org", "uk", "test", "local", "c1", "y", "ORG", "xn--p1ai", "123", "localhost", "a-b"])
# Pieces of hostile and international addresses: other scripts, look-alike dots and at-signs,
# spaces of every kind, control characters, bytes replaced when they were not UTF-8, IP literals,
# quoting, special-use names, and empty parts (nothing before or after the '@').
_PIECES = st.sampled_from([
    "a", "Z", "0", ".", "..", "-", "--", "_", "+", "@", "@@", '"', "\\", " ", "\t", "\n", "\x00", "\x7f", "\u00a0",
    "\u2028", "\u200b", "\ufeff", "\ufffd", "ü", "Ü", "ß", "é", "е", "ПРИМЕР", "例え", "ｅ", "。", "．", "＠", "🙂",
    "xn--", "xn--p1ai", "xn--bcher-kva", "[1.2.3.4]", "[IPv6:::1]", "(c)", "localhost", "example", "org", "ORG",
    "invalid", "arpa", "home.arpa", "test", "onion", "local", "a" * 63, "b" * 64, "c" * 200, "İ", "K", "ﬀ",
])
_HOSTILE = st.lists(_PIECES, max_size=12).map("".join)


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


@pytest.mark.slow  # a long generated run (hypothesis): outside the fast loop (`pytest -m 'not slow'`)
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


@pytest.mark.slow  # a long generated run, as above
@settings(max_examples=4000, deadline=None)
@given(local=_HOSTILE, domain=_HOSTILE, at=st.sampled_from(["@", "", "@@", "＠"]), around=st.sampled_from(["", " ", "\t\n"]))
@example(local="a", domain="", at="@", around="")
@example(local="", domain="example.org", at="@", around="")
@example(local="a", domain="example.org", at="", around="")
@example(local="a@b", domain="example.org", at="@", around="")
@example(local="Ann", domain="Example.ORG", at="@", around=" ")
@example(local="a", domain="bücher.example", at="@", around="")
@example(local="ü", domain="example.org", at="@", around="")
@example(local="a", domain="例え.テスト", at="@", around="")
@example(local="a", domain="example.org.", at="@", around="")
@example(local="a", domain="example。org", at="@", around="")
@example(local="a", domain="[1.2.3.4]", at="@", around="")
@example(local="a", domain="x.home.arpa", at="@", around="")
@example(local="a", domain="ex\ufffdample.org", at="@", around="")
@example(local="a" * 64, domain="b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 57 + ".org", at="@",
         around="")
def test_hostile_and_international_addresses_match_email_validator(local: str, domain: str, at: str,
                                                                   around: str) -> None:
    address = f"{around}{local}{at}{domain}{around}"
    assert _ours(address) == _reference(address)


@pytest.mark.parametrize(("address", "normal"), [
    ("reader.1@council1.example.org", "reader.1@council1.example.org"),
    (" Ann.Smith+news@EXAMPLE.Org ", "Ann.Smith+news@example.org"),
    ("o'brien@sub-domain.example.co.uk", "o'brien@sub-domain.example.co.uk"),
])
def test_plain_addresses_do_not_need_the_full_validator(monkeypatch: pytest.MonkeyPatch, address: str,
                                                        normal: str) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the full validator was asked about a plain address")

    monkeypatch.setattr(validation, "validate_email", refuse)
    assert normalise_email(address) == normal


@pytest.mark.parametrize("control", [chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\u2028", "\u2029"])
def test_no_accepted_address_holds_a_control_character(control: str) -> None:
    # The importer sends each batch's addresses as one text, a line each (importer._Batch.columns).
    for address in (f"a{control}b@example.org", f"a@exa{control}mple.org", f'"a{control}b"@example.org',
                    f"a@example.org{control}x", f"ü{control}@bücher.example"):
        assert _ours(address) is None, repr(address)
