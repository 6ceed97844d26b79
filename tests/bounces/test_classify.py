"""The rule tables of ``classify.py``, as tables: each row of each table, and the order in which
evidence is weighed (README.md, "How bounces are classified")."""

from __future__ import annotations

import pytest

from service.bounces.classify import PHRASES, PROVIDER_HINTS, REPLY_CODES, STATED, classify, phrase_of
from service.bounces.finding import Action, Finding

ADDR = "reader@example.org"


def verdict(
    diagnostic: str | None = None,
    *,
    status: str | None = None,
    action: Action | None = None,
    hint: str | None = None,
    reply_code: int | None = None,
) -> tuple[str, str | None] | None:
    """(kind, status) the classifier gives a finding, or None for no failure."""
    found = classify(
        Finding(ADDR, status=status, diagnostic=diagnostic, action=action, hint=hint, reply_code=reply_code)
    )
    return (found.kind, found.status) if found else None


# -- RFC 3463 classes and subjects -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("2.0.0", None),
        ("2.1.5", None),
        ("4.4.7", ("soft", "4.4.7")),
        ("4.2.2", ("soft", "4.2.2")),
        ("5.1.1", ("hard", "5.1.1")),
        ("5.1.2", ("hard", "5.1.2")),
        ("5.7.1", ("hard", "5.7.1")),
        ("5.2.2", ("soft", "5.2.2")),  # mailbox full: temporary by nature
        ("5.0.0", ("hard", "5.0.0")),
    ],
)
def test_status_classes_and_subjects(status: str, expected: tuple[str, str] | None) -> None:
    assert verdict(status=status, action="failed") == expected


def test_a_complaint_is_a_complaint() -> None:
    found = classify(Finding(ADDR, complaint=True, feedback_type="abuse", status="5.1.1"))
    assert found is not None and found.kind == "complaint"


def test_delivered_is_no_failure() -> None:
    assert verdict("250 2.0.0 OK", action="delivered") is None


# -- SMTP reply codes without an enhanced code --------------------------------------------------


@pytest.mark.parametrize(("code", "implied"), sorted(REPLY_CODES.items()))
def test_reply_code_table(code: int, implied: tuple[str, str]) -> None:
    kind, status = verdict(f"{code} Requested action not taken") or ("", None)
    assert status == f"{code // 100}.{implied[0]}"
    assert kind == ("soft" if code // 100 == 4 or implied[0] == "2.2" else "hard")


@pytest.mark.parametrize(("code", "kind"), [(459, "soft"), (421, "soft"), (559, "hard"), (552, "soft")])
def test_any_reply_code_gives_its_class(code: int, kind: str) -> None:
    assert (verdict(f"{code} whatever") or ("", None))[0] == kind


# -- the phrase table, one example per row ----------------------------------------------------

PHRASE_EXAMPLES: list[tuple[str, str, str]] = [
    # (words, status implied when nothing else speaks, kind)
    ("Mail loop detected", "5.4.6", "soft"),
    ("User unknown", "5.1.1", "hard"),
    ("no such user here", "5.1.1", "hard"),
    ("The email account that you tried to reach does not exist", "5.1.1", "hard"),
    ("Mailbox full", "4.2.2", "soft"),
    ("user is over quota", "4.2.2", "soft"),
    ("Quota exceeded", "4.2.2", "soft"),
    ("Message too large for this mailbox", "5.3.4", "hard"),
    ("User has moved; no forwarding address", "5.1.6", "hard"),
    ("This account has been disabled", "5.2.1", "hard"),
    ("Domain not found", "5.1.2", "hard"),
    ("Bad address syntax", "5.1.3", "hard"),
    ("Relay access denied", "5.7.1", "hard"),
    ("Client host has no PTR record (reverse DNS)", "5.7.25", "hard"),
    ("Rejected by DMARC", "5.7.26", "hard"),
    ("SPF check failed", "5.7.23", "hard"),
    ("Message blocked as spam by policy", "5.7.1", "hard"),
    ("Connection timed out", "4.4.7", "soft"),
    ("Connection refused by mx.example.org", "4.4.1", "soft"),
    ("Recipient address rejected", "5.1.1", "hard"),
    ("Your message was rejected", "5.7.1", "hard"),
]


@pytest.mark.parametrize(("words", "status", "kind"), PHRASE_EXAMPLES)
def test_phrase_table(words: str, status: str, kind: str) -> None:
    assert verdict(words) == (kind, status)


def test_every_phrase_row_has_an_example() -> None:
    covered = {phrase_of(words) for words, _, _ in PHRASE_EXAMPLES}
    assert set(PHRASES) <= covered


# -- what a notice says outright --------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("This is a permanent error; I've given up.", ("hard", "5.0.0")),
        ("The following addresses had PERMANENT fatal delivery errors", ("hard", "5.0.0")),
        ("Delivery to the following recipient failed permanently", ("hard", "5.0.0")),
        ("Delivery to the following recipient has been delayed", ("delayed", "4.0.0")),
        ("Your message will be retried for 2 more days", ("delayed", "4.0.0")),
        ("Temporary local problem, please try again later", ("soft", "4.0.0")),
        ("Greylisted, please retry later", ("soft", "4.0.0")),
    ],
)
def test_stated_table(words: str, expected: tuple[str, str]) -> None:
    assert verdict(words) == expected


def test_every_stated_row_has_an_example() -> None:
    assert len(STATED) == 3  # permanent, delayed, temporary: each has rows above


# -- provider labels, a hint only -----------------------------------------------------------------


@pytest.mark.parametrize(("label", "means"), sorted(PROVIDER_HINTS.items()))
def test_provider_hint_table(label: str, means: int | str | None) -> None:
    expected = {5: "hard", 4: "soft", "delayed": "delayed", None: "unknown"}[means]
    assert (verdict("", hint=label) or ("", None))[0] == expected


def test_a_provider_label_never_outranks_a_code() -> None:
    assert verdict("smtp; 550 5.1.1 user unknown", hint="ses:transient") == ("hard", "5.1.1")
    assert verdict(status="5.1.1", hint="postmark:softbounce") == ("hard", "5.1.1")
    assert verdict("452 4.2.2 over quota", hint="api:hard") == ("soft", "4.2.2")


# -- precedence -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finding", "expected"),
    [
        # A 4.x.x given up after days of retries did fail: soft, not ignored, not delayed.
        (Finding(ADDR, status="4.4.7", action="failed", diagnostic="Connection timed out"), ("soft", "4.4.7")),
        # A generic 5.0.0 whose words say the mailbox is full is soft.
        (Finding(ADDR, status="5.0.0", action="failed", diagnostic="Mailbox is full"), ("soft", "5.2.2")),
        (Finding(ADDR, diagnostic="550 5.7.1 Recipient over quota"), ("soft", "5.7.1")),
        # ...but a code that names the address itself outranks the words.
        (Finding(ADDR, status="5.1.1", diagnostic="user unknown or mailbox full"), ("hard", "5.1.1")),
        # A declared Action: delayed is a warning, whatever its status.
        (Finding(ADDR, status="4.4.1", action="delayed"), ("delayed", "4.4.1")),
        # A warning that shows a 5xx refusal for this recipient is that refusal.
        (Finding(ADDR, action="delayed", diagnostic="550 User unknown"), ("hard", "5.1.1")),
        # Permanent wording outranks temporary wording and the reason's nature.
        (Finding(ADDR, diagnostic="permanent error: connection timed out, try again later"), ("hard", "5.4.7")),
        # The reporter's account outranks a transient reason.
        (Finding(ADDR, action="failed", diagnostic="Connection timed out"), ("hard", "5.4.7")),
        # A code in the text outranks the notice's wording.
        (Finding(ADDR, diagnostic="permanent error: 451 4.4.1 no answer"), ("soft", "4.4.1")),
    ],
)
def test_precedence(finding: Finding, expected: tuple[str, str]) -> None:
    found = classify(finding)
    assert found is not None and (found.kind, found.status) == expected


def test_nothing_matches_is_unknown_and_not_a_bounce() -> None:
    assert verdict("See the attached log.") == ("unknown", None)
    assert verdict(None) == ("unknown", None)
