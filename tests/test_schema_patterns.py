"""openapi.yaml's patterns never refuse what the code accepts; the code may refuse more.

The document states the checks made in code as patterns (service/schemas.py and the packages'
schemas.py). A pattern stricter than the code would make a generated client refuse a value the
server takes, so each test feeds the code values near its edges (white space it strips, control
characters, brackets, special-use domains) and asserts that whatever the code accepts, the
pattern matches. Python's regular expressions, as schemathesis and the server use them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, get_args

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.editions.composition import compose_posted
from service.editions.proofs import ProofIn, compose_proofs
from service.editions.schemas import EditionIn, From, ReplyTo
from service.errors import InvalidValue, LetterboxError
from service.events.addresses import AddressRefused, check_url
from service.events.schemas import EndpointUrl
from service.links import Links
from service.schemas import HEADER_NAME, IDEMPOTENCY_KEY, ONE_LINE, PERSON_NAME, SPECIAL_USE
from service.settings import Settings
from service.subscribers.validation import clean_name, normalise_email
from service.tokens import TokenSigner

SETTINGS = Settings(database_url="postgresql://patterns/", secret_keys=("patterns-not-a-secret",),
                    public_url="https://news.example.org", from_addr="News <news@example.org>")
LINKS = Links(SETTINGS, TokenSigner(SETTINGS.secret_keys))
# White space the code strips (control characters among it), and characters near the rules' edges.
BLANKS = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2028\u2029\u3000"
EDGY = BLANKS + "\x00\x01\x7f\x9f@<>[]()\\,;:\"'.%/?#ÄΩ😀"
# JSON cannot carry a lone surrogate (msgspec refuses one), so no request holds one.
characters = st.characters(exclude_categories=["Cs"])
blank = st.text(st.sampled_from(BLANKS), max_size=3)
edgy_text = st.text(st.one_of(st.sampled_from(EDGY), characters), max_size=30)


def _padded(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(blank, inner, blank).map("".join)


def _pattern(annotated: object, *path: str | int) -> str:
    """The pattern a Meta(extra_json_schema=...) annotation states, found by ``path`` in its schema."""
    meta = get_args(annotated)[1]
    assert isinstance(meta, msgspec.Meta)
    found: Any = meta.extra_json_schema
    for key in path:
        found = found[key]
    assert isinstance(found, str)
    return found


def _accepts(check: Callable[..., object], *args: object) -> bool:
    try:
        check(*args)
    except (InvalidValue, LetterboxError, AddressRefused):
        return False
    return True


@settings(max_examples=400)
@given(_padded(edgy_text))
def test_person_name(raw: str) -> None:
    if _accepts(clean_name, raw):
        assert re.search(PERSON_NAME, raw), raw


@settings(max_examples=400)
@given(_padded(st.one_of(st.emails(), edgy_text, st.emails().map(lambda a: a.rsplit(".", 1)[0] + ".TeSt")))
       .filter(lambda raw: len(raw) <= 320))
def test_email_outside_special_use_domains(raw: str) -> None:
    if _accepts(normalise_email, raw):
        assert not re.search(SPECIAL_USE, raw), raw


def _edition(**fields: object) -> EditionIn:
    return msgspec.structs.replace(EditionIn(subject="Hello", html="<p>Hi</p>"), **fields)


mailboxes = _padded(st.one_of(
    st.emails(),
    st.tuples(edgy_text, st.emails()).map(lambda t: f"{t[0]} <{t[1]}>"),
    st.tuples(edgy_text, edgy_text, edgy_text).map(lambda t: f"{t[0]}<{t[1]}@{t[2]}>"),
    edgy_text,
))


@settings(max_examples=400)
@given(mailboxes)
def test_from_and_reply_to(raw: str) -> None:
    if _accepts(compose_posted, _edition(), raw, SETTINGS):
        assert re.search(_pattern(From, "anyOf", 1, "pattern"), raw), raw
    if _accepts(compose_posted, _edition(reply_to=raw), SETTINGS.from_addr, SETTINGS):
        assert re.search(_pattern(ReplyTo, "anyOf", 1, "pattern"), raw), raw


@settings(max_examples=300)
@given(_padded(edgy_text))
def test_subject_and_proof_name(raw: str) -> None:
    if raw and _accepts(compose_posted, _edition(subject=raw), SETTINGS.from_addr, SETTINGS):
        assert re.search(ONE_LINE, raw), raw
    proof = ProofIn(subject="Hello", html="<p>Hi</p>", to=["reader@example.org"], name=raw)
    if _accepts(compose_proofs, proof, SETTINGS, LINKS):
        assert re.search(HEADER_NAME, raw), raw


hosts = st.one_of(
    st.text(st.one_of(st.sampled_from(EDGY), characters), max_size=12),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.tuples(st.ip_addresses(v=6), edgy_text).map(lambda t: f"[{t[0]}%{t[1]}]"),
    st.tuples(st.from_regex(r"v[0-9a-f]{1,3}\.[a-z:]{1,5}", fullmatch=True), edgy_text).map(lambda t: f"[{t[0]}]{t[1]}"),
)


@settings(max_examples=400)
@given(st.sampled_from(["http", "https", "HTTPS", "hTtP"]), hosts, st.sampled_from(["", ":80", ":99999", ":x"]),
       st.one_of(st.just(""), edgy_text.map(lambda path: "/" + path)))
def test_event_endpoint_url(scheme: str, host: str, port: str, path: str) -> None:
    url = f"{scheme}://{host}{port}{path}"
    if _accepts(lambda u: check_url(u, allow_private=True), url):
        assert re.search(_pattern(EndpointUrl, "allOf", 0, "pattern"), url), url


@settings(max_examples=300)
@given(st.one_of(_padded(edgy_text), st.text(characters, min_size=190, max_size=210)))
@example(" k ")
@example("Ä-ključ")
def test_idempotency_key(key: str) -> None:
    # service/editions/posting.py: present, not blank, at most 200 characters, printable.
    if key.strip() and len(key) <= 200 and key.isprintable():
        assert re.search(IDEMPOTENCY_KEY["schema_extra"]["pattern"], key), key
