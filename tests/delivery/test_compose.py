"""The edition composer: rendered copies parse cleanly, are personal where they should be and only there."""

from __future__ import annotations

import email
import socket
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import compat32, default
from email.utils import parsedate_to_datetime
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller

from service.mail.compose import (
    EditionMail,
    HeaderInjectionError,
    Personalisation,
    compose_simple,
    format_date,
    prepare,
)

HTML = (
    "<html><body><h1>Hello {{name}}!</h1>\n"
    "<p>Dear {{ name }}, this week: caf\u00e9 news. Keep {{unknown}} and {{ name_x }} as they are.</p>\n"
    '<p><a href="{{unsubscribe_url}}">Unsubscribe</a> | <a href="{{preferences_url}}">Preferences</a></p>\n'
    "</body></html>\n"
)
TEXT = ("Hello {{name}}!\n\nUnsubscribe: {{unsubscribe_url}}\n"
        "Preferences: {{ preferences_url }}\nKeep {{unknown}}.\n")
DATE = "Tue, 25 Nov 2025 07:46:00 +0000"
NASTY = "<script>alert(1)</script> O'Brien & Sons"


def edition(**changes: Any) -> EditionMail:
    fields: dict[str, Any] = {
        "subject": "The weekly letter", "html": HTML, "text": TEXT,
        "from_addr": "Weekly News <news@example.org>", "reply_to": "editor@example.org",
        "list_id": "weekly.lists.example.org", "list_name": "Weekly News",
    }
    return EditionMail(**(fields | changes))


def person(**changes: Any) -> Personalisation:
    fields: dict[str, Any] = {
        "to_email": "alice@example.net", "to_name": "Alice Liddell",
        "unsubscribe_url": "https://lists.example.org/unsubscribe/tok-alice",
        "unsubscribe_mailto": "mailto:unsubscribe+tok-alice@bounce.example.org",
        "preferences_url": "https://lists.example.org/preferences/tok-alice?a=1&b=2",
        "message_id": "<ed42.alice@example.org>",
    }
    return Personalisation(**(fields | changes))


def render(mail: EditionMail | None = None, p: Personalisation | None = None) -> bytes:
    return prepare(mail or edition(), message_id_domain="example.org").render(p or person(), date=DATE)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text, html = msg.iter_parts()
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def test_every_header_is_there_and_right() -> None:
    msg = parse(render())
    assert msg["From"] == "Weekly News <news@example.org>"
    assert msg["To"] == "Alice Liddell <alice@example.net>"
    assert msg["Subject"] == "The weekly letter"
    assert msg["Date"] == DATE
    assert msg["Message-ID"] == "<ed42.alice@example.org>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Reply-To"] == "editor@example.org"
    assert msg["List-Id"] == "Weekly News <weekly.lists.example.org>"
    assert msg["List-Unsubscribe"] == ("<https://lists.example.org/unsubscribe/tok-alice>, "
                                       "<mailto:unsubscribe+tok-alice@bounce.example.org>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.defects == []


def test_reply_to_and_list_name_are_optional() -> None:
    msg = parse(render(edition(reply_to=None, list_name="")))
    assert "Reply-To" not in msg
    assert msg["List-Id"] == "<weekly.lists.example.org>"


def test_body_is_multipart_alternative_text_then_html_in_quoted_printable() -> None:
    msg = parse(render())
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.defects == []


def test_bodies_decode_to_the_personalised_text_and_html() -> None:
    text, html = bodies(parse(render()))
    assert text == (TEXT.replace("{{name}}", "Alice Liddell")
                    .replace("{{unsubscribe_url}}", "https://lists.example.org/unsubscribe/tok-alice")
                    .replace("{{ preferences_url }}", "https://lists.example.org/preferences/tok-alice?a=1&b=2"))
    assert html == (HTML.replace("{{name}}", "Alice Liddell").replace("{{ name }}", "Alice Liddell")
                    .replace("{{unsubscribe_url}}", "https://lists.example.org/unsubscribe/tok-alice")
                    .replace("{{preferences_url}}", "https://lists.example.org/preferences/tok-alice?a=1&amp;b=2"))
    assert "Keep {{unknown}} and {{ name_x }} as they are." in html


def test_name_is_escaped_in_html_raw_in_text_and_intact_in_to() -> None:
    msg = parse(render(p=person(to_name=NASTY)))
    text, html = bodies(msg)
    assert "Hello <script>alert(1)</script> O'Brien & Sons!" in text
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt; O&#x27;Brien &amp; Sons!" in html
    assert "<script>" not in html
    assert msg["To"].addresses[0].display_name == NASTY
    assert msg["To"].addresses[0].addr_spec == "alice@example.net"


@pytest.mark.parametrize("name", ["Zo\u00eb", "\u65e5\u672c \u592a\u90ce", "\u65e5\u672c" * 40,
                                  "Zo\u00eb " * 30])
def test_non_ascii_names_and_subjects_are_rfc2047_encoded(name: str) -> None:
    subject = f"Gr\u00fc\u00dfe aus \u65e5\u672c \u2014 {name}"
    raw = render(edition(subject=subject), person(to_name=name))
    assert raw.isascii()  # 7-bit clean: safe for any transport
    assert all(len(line) <= 76 for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n") if b"=?" in line)
    msg = parse(raw)
    assert msg["Subject"] == subject
    assert bodies(msg)[0].startswith(f"Hello {name}!")
    # RFC 2047 decoding drops the white space between adjacent encoded words; the modern parser
    # of Python 3.11 keeps it inside display names (CPython gh-128110), so it checks only short
    # names, which fit in one encoded word.
    to = email.message_from_bytes(raw, policy=compat32)["To"]
    assert str(make_header(decode_header(to))) == f"{name} <alice@example.net>"
    if len(name.encode()) <= 39:
        assert msg["To"].addresses[0].display_name == name


def test_long_ascii_subject_folds_and_round_trips() -> None:
    subject = " ".join(f"word{i}" for i in range(60))
    msg = parse(render(edition(subject=subject)))
    assert msg["Subject"] == subject


def test_subject_placeholders_are_not_filled() -> None:
    assert parse(render(edition(subject="Hi {{name}}")))["Subject"] == "Hi {{name}}"


def test_line_endings_are_crlf_only() -> None:
    raw = render(edition(html=HTML.replace("\n", "\r\n"), text="a\rb\nc\r\n{{name}}\n"))
    assert b"\r\n" in raw
    assert raw.replace(b"\r\n", b"").count(b"\n") == 0
    assert raw.replace(b"\r\n", b"").count(b"\r") == 0
    assert bodies(parse(raw))[0] == "a\nb\nc\nAlice Liddell\n"


def test_lines_stay_short_with_huge_lines_and_long_values() -> None:
    url = "https://lists.example.org/unsubscribe/" + "t" * 300 + "?x=1"
    html = ("<p>" + "x = y, caf\u00e9 " * 3000 + "{{name}}" * 5 + "{{unsubscribe_url}}</p>") * 2
    p = person(to_name="\u00e9" * 200 + NASTY, unsubscribe_url=url, preferences_url=url)
    raw = render(edition(html=html, text=None), p)
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    text, decoded_html = bodies(parse(raw))
    escaped_name = "\u00e9" * 200 + "&lt;script&gt;alert(1)&lt;/script&gt; O&#x27;Brien &amp; Sons"
    assert decoded_html == html.replace("{{name}}", escaped_name).replace("{{unsubscribe_url}}", url)
    assert url in text


def test_text_is_derived_from_html_when_missing() -> None:
    text, _ = bodies(parse(render(edition(text=None))))
    assert "Hello Alice Liddell!" in text
    assert "Dear Alice Liddell, this week: caf\u00e9 news." in text
    assert "(https://lists.example.org/unsubscribe/tok-alice)" in text
    assert "(https://lists.example.org/preferences/tok-alice?a=1&b=2)" in text  # raw, not &amp;
    assert "<p>" not in text
    assert "<a " not in text


def test_two_copies_differ_only_in_the_personal_values() -> None:
    prepared = prepare(edition(), message_id_domain="example.org")
    alice = prepared.render(person(), date=DATE)
    bob_values = {"alice@example.net": "bob@example.net", "Alice Liddell": "Bob Builder",
                  "tok-alice": "tok-bob12", "ed42.alice": "ed42.bob12"}
    fields = Personalisation.__struct_fields__
    bob = person(**{field: _swap(getattr(person(), field), bob_values) for field in fields})
    bob_raw = prepared.render(bob, date=DATE)
    assert alice != bob_raw
    assert _swap(alice.decode(), bob_values) == bob_raw.decode()
    assert prepared.render(person(), date=DATE) == alice  # nothing random per copy


def _swap(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("field", ["subject", "from_addr", "reply_to", "list_id", "list_name"])
@pytest.mark.parametrize("bad", ["\r\nBcc: victim@example.com", "\nX-Evil: 1", "\r", "tab\there", "nul\x00"])
def test_control_characters_in_edition_headers_are_refused(field: str, bad: str) -> None:
    value = {"subject": "Hi", "from_addr": "news@example.org", "reply_to": "r@example.org",
             "list_id": "a.example.org", "list_name": "News"}[field]
    with pytest.raises(HeaderInjectionError):
        prepare(edition(**{field: value + bad}), message_id_domain="example.org")


@pytest.mark.parametrize("value", ["a@example.org, b@example.org", "not an address", "<>", ""])
def test_from_must_be_exactly_one_address(value: str) -> None:
    with pytest.raises(HeaderInjectionError):
        prepare(edition(from_addr=value), message_id_domain="example.org")


@pytest.mark.parametrize(("field", "value"), [
    ("to_name", "Eve\r\nBcc: victim@example.com"), ("to_name", "Eve\n"),
    ("to_email", "eve@example.com\r\nBcc: victim@example.com"), ("to_email", "eve@example.com, x@y.org"),
    ("unsubscribe_url", "https://x.org/u\r\nX-Evil: 1"), ("unsubscribe_url", "https://x.org/u>, <https://evil"),
    ("unsubscribe_url", "http://x.org/u"), ("unsubscribe_mailto", "mailto:u@x.org\n"),
    ("message_id", "<a@b>\r\nBcc: victim@example.com"), ("message_id", "no-brackets@example.org"),
])
def test_bad_personal_values_are_refused(field: str, value: str) -> None:
    prepared = prepare(edition(), message_id_domain="example.org")
    with pytest.raises(HeaderInjectionError):
        prepared.render(person(**{field: value}))


def test_header_injection_error_is_a_value_error() -> None:
    assert issubclass(HeaderInjectionError, ValueError)


def test_message_id_is_made_up_when_empty() -> None:
    prepared = prepare(edition(), message_id_domain="mail.example.org")
    first, second = (parse(prepared.render(person(message_id="")))["Message-ID"] for _ in range(2))
    assert first.endswith("@mail.example.org>")
    assert first != second


def test_format_date_is_rfc5322() -> None:
    assert format_date(0) == "Thu, 01 Jan 1970 00:00:00 +0000"
    assert format_date(1764056760.9) == "Tue, 25 Nov 2025 07:46:00 +0000"
    assert parsedate_to_datetime(format_date()).tzinfo is not None
    now = parse(prepare(edition(), message_id_domain="x.org").render(person()))["Date"]
    assert parsedate_to_datetime(now).tzinfo is not None


def test_compose_simple_builds_a_clean_system_mail() -> None:
    raw = compose_simple(from_addr="Letterbox <noreply@example.org>", to_email="zoe@example.net",
                         subject="Confirm your subscription to Zo\u00eb's list", text="Click: https://x.org/c/1\n",
                         html="<p><a href='https://x.org/c/1'>Confirm</a></p>",
                         headers={"Auto-Submitted": "auto-generated"}, message_id_domain="example.org")
    assert raw.isascii()
    assert raw.replace(b"\r\n", b"").count(b"\n") == 0
    msg = parse(raw)
    assert msg["Subject"] == "Confirm your subscription to Zo\u00eb's list"
    assert msg["To"] == "zoe@example.net"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].endswith("@example.org>")
    assert [part.get_content_type() for part in msg.iter_parts()] == ["text/plain", "text/html"]
    assert bodies(msg)[0] == "Click: https://x.org/c/1\n"


@pytest.mark.parametrize("changes", [
    {"subject": "Hi\r\nBcc: victim@example.com"}, {"to_email": "a@b.org\nBcc: c@d.org"},
    {"from_addr": "a@b.org\r\n"}, {"headers": {"X-Note": "a\r\nBcc: c@d.org"}},
    {"headers": {"Bad:Name": "1"}},
])
def test_compose_simple_refuses_injection(changes: dict[str, Any]) -> None:
    args: dict[str, Any] = {"from_addr": "noreply@example.org", "to_email": "zoe@example.net",
                            "subject": "Hi", "text": "Hello", "message_id_domain": "example.org"}
    with pytest.raises(HeaderInjectionError):
        compose_simple(**(args | changes))


class _Sink:
    """aiosmtpd handler that keeps what it received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_rendered_copy_arrives_byte_identical_over_smtp() -> None:
    raw = render(edition(text=None), person(to_name="Zo\u00eb " + NASTY))
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        await aiosmtplib.send(raw, sender="bounce+tok@bounce.example.org", recipients=["alice@example.net"],
                              hostname="127.0.0.1", port=controller.port, start_tls=False, timeout=10)
    finally:
        controller.stop()
    assert sink.received == [("bounce+tok@bounce.example.org", ["alice@example.net"], raw)]


def test_a_trial_on_http_gets_http_and_mailto_links_without_one_click() -> None:
    trial = person(unsubscribe_url="http://127.0.0.1:8000/unsubscribe/tok", message_id="")
    raw = prepare(edition(), message_id_domain="localhost", one_click=False).render(trial, date=DATE)
    msg = parse(raw)
    assert msg["List-Unsubscribe"].replace("\r\n ", " ") == (
        "<http://127.0.0.1:8000/unsubscribe/tok>, <mailto:unsubscribe+tok-alice@bounce.example.org>"
    )
    assert msg["List-Unsubscribe-Post"] is None  # RFC 8058 one-click needs an https URI
    assert msg["Message-ID"].endswith("@localhost>")  # a single-label domain is a valid Message-ID domain
    # With one-click on offer (the default), an http link is refused rather than sent.
    with pytest.raises(HeaderInjectionError, match="https"):
        prepare(edition(), message_id_domain="localhost").render(trial)


def test_international_addresses_are_sent_as_the_wire_wants_them() -> None:
    raw = render(p=person(to_email="reader@bücher.example", to_name="Jürgen"))
    assert b"\r\nTo: =?utf-8?b?SsO8cmdlbg==?= <reader@xn--bcher-kva.example>\r\n" in raw
    utf8 = render(p=person(to_email="üser@example.com", to_name=""))
    assert "\r\nTo: üser@example.com\r\n".encode() in utf8  # RFC 6532: the address itself, in UTF-8


def test_system_mails_use_the_same_address_builder() -> None:
    raw = compose_simple(from_addr="News <news@bücher.example>", to_email="üser@bücher.example",
                         subject="Confirm", text="Hello", message_id_domain="xn--bcher-kva.example")
    assert "\r\nTo: üser@xn--bcher-kva.example\r\n".encode() in raw
    assert b"=?utf-8?" not in raw.split(b"\r\nSubject:")[0], "no encoded words inside an address"
    assert raw.startswith(b"From: News <news@xn--bcher-kva.example>\r\n")
    parsed = email.message_from_bytes(raw, policy=default)
    assert parsed["To"] == "üser@xn--bcher-kva.example"
    assert parsed.get_content().strip() == "Hello"
