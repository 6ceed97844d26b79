"""parse_report never raises: random bytes, damaged corpus messages, random MIME trees.

parse_report guards every step, so it cannot raise by construction; the fuzzing also
calls each format reader unguarded, because a reader that trips over a message would
silently lose its events.
"""

from __future__ import annotations

import email
import email.policy
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.bounces.formats import arf, autoreply, dsn, prose, ses_notification
from service.bounces.parse import ParsedReport, parse_report, verp_tokens

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bounce-corpus" / "eml"
# No example database and a fixed seed: the test leaves no files behind and CI runs the same
# examples every time (run with --hypothesis-seed=random locally to explore further).
FUZZ = settings(deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@cache
def corpus() -> tuple[bytes, ...]:
    return tuple(path.read_bytes() for path in sorted(CORPUS.glob("*.eml")))


def check(raw: bytes) -> None:
    report = parse_report(raw)
    assert isinstance(report, ParsedReport)
    for event in report.events:
        assert event.kind in ("hard", "soft", "complaint", "delayed", "unknown")
        assert event.diagnostic is None or len(event.diagnostic) <= 1000
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    verp_tokens(msg)
    for reader in (arf.read, ses_notification.read, dsn.read, autoreply.is_auto_reply, prose.read):
        reader(msg)


@settings(FUZZ, max_examples=500)
@given(st.binary(max_size=4000))
def test_random_bytes(raw: bytes) -> None:
    check(raw)


# One way to damage a message: (kind, position, length, filler), positions as fractions.
_DAMAGE = st.tuples(
    st.sampled_from(["truncate", "delete", "insert", "duplicate", "flip", "crlf", "lf", "nul"]),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=400),
    st.binary(min_size=1, max_size=40),
)


def damage(raw: bytes, kind: str, where: float, length: int, filler: bytes) -> bytes:
    at = int(where * len(raw))
    if kind == "truncate":
        return raw[:at]
    if kind == "delete":
        return raw[:at] + raw[at + length :]
    if kind == "insert":
        return raw[:at] + filler + raw[at:]
    if kind == "duplicate":
        return raw[:at] + raw[at : at + length] * 3 + raw[at:]
    if kind == "flip":
        return raw[:at] + bytes(b ^ 0xFF for b in raw[at : at + length]) + raw[at + length :]
    if kind == "crlf":
        return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if kind == "lf":
        return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    return raw.replace(b"\n", b"\n\x00", max(1, length // 10))


@settings(FUZZ, max_examples=400)
@given(st.integers(min_value=0, max_value=10_000), st.lists(_DAMAGE, min_size=1, max_size=4))
def test_damaged_corpus_messages(pick: int, damages: list[tuple[str, float, int, bytes]]) -> None:
    raw = corpus()[pick % len(corpus())]
    for kind, where, length, filler in damages:
        raw = damage(raw, kind, where, length, filler)
    check(raw)


_FIELD_NAMES = st.sampled_from(
    [
        "Final-Recipient", "Original-Recipient", "Action", "Status", "Diagnostic-Code", "Feedback-Type",
        "Original-Rcpt-To", "Removal-Recipient", "To", "From", "Subject", "X-Failed-Recipients",
        "Auto-Submitted", "Content-Transfer-Encoding", "X-Apple-Unsubscribe", "Delivered-To",
    ]
)  # fmt: skip
_FIELD_VALUES = st.one_of(
    st.sampled_from(
        [
            "rfc822; user@example.com", "failed", "delayed", "delivered", "5.1.1", "4.4.7", "2.0.0",
            "smtp; 550 5.1.1 <user@example.com>: User unknown", "abuse", "auto-replied", "base64",
            "bounce+tok.en@b.example.org", "quoted-printable", "true", "=?utf-8?b?w6k=?=", "<>", "",
        ]
    ),
    st.text(max_size=60),
)  # fmt: skip
_CONTENT_TYPES = st.sampled_from(
    [
        "text/plain", "text/html", "message/rfc822", "message/delivery-status", "message/feedback-report",
        "text/rfc822-headers", "message/global-delivery-status", "application/json", "multipart/mixed",
        "multipart/report; report-type=delivery-status", "multipart/report; report-type=feedback-report",
    ]
)  # fmt: skip
_BODY_LINES = st.one_of(
    st.sampled_from(
        [
            "<user@example.com>:", "  user@example.com", "550 5.1.1 user unknown", "Remote host said: 552 full",
            "This is a permanent error", "--- Below this line is a copy of the message.", "Received: by x",
            '{"notificationType":"Bounce","bounce":{"bouncedRecipients":[{"emailAddress":"a@b.co"}]}}',
            "THIS IS A WARNING MESSAGE ONLY", "(expanded from <a@b.example>)", "",
        ]
    ),
    st.text(max_size=80),
)  # fmt: skip


def _leaf(content_type: str, fields: list[tuple[str, str]], lines: list[str]) -> str:
    headers = "".join(f"{name}: {value}\n" for name, value in fields)
    return f"Content-Type: {content_type}\n{headers}\n" + "\n".join(lines) + "\n"


_LEAVES = st.builds(
    _leaf,
    _CONTENT_TYPES,
    st.lists(st.tuples(_FIELD_NAMES, _FIELD_VALUES), max_size=6),
    st.lists(_BODY_LINES, max_size=10),
)


def _multipart(boundary: str, subtype: str, parts: list[str]) -> str:
    body = "".join(f"--{boundary}\n{part}\n" for part in parts)
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n{body}--{boundary}--\n'


_TREES = st.recursive(
    _LEAVES,
    lambda children: st.builds(
        _multipart,
        st.sampled_from(["B", "b1", "==x==", "B"]),  # a repeated boundary nests ambiguously on purpose
        st.sampled_from(["mixed", "report", "alternative"]),
        st.lists(children, min_size=0, max_size=4),
    ),
    max_leaves=12,
)


@settings(FUZZ, max_examples=300)
@given(st.lists(st.tuples(_FIELD_NAMES, _FIELD_VALUES), max_size=8), _TREES, st.booleans())
def test_random_mime_structures(top: list[tuple[str, str]], tree: str, crlf: bool) -> None:
    text = "".join(f"{name}: {value}\n" for name, value in top) + "MIME-Version: 1.0\n" + tree
    raw = text.encode("utf-8", "surrogatepass")
    check(raw.replace(b"\n", b"\r\n") if crlf else raw)
