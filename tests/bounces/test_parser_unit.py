"""Focused tests of the bounce parser: VERP tokens, what is (not) a bounce, auto-replies,
several recipients, diagnostics and status inference, CRLF and LF."""

from __future__ import annotations

import pytest

from service.bounces.classify import classify, find_reply_code, find_status
from service.bounces.finding import Finding
from service.bounces.parse import ParsedEvent, ParsedReport, parse_report


def mail(text: str, *, crlf: bool = False) -> bytes:
    """A message written in a test as text with LF line ends."""
    raw = text.lstrip("\n").encode("utf-8")
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def dsn(*blocks: str, to: str = "bounce+tok123@bounces.example.org", text: str = "Delivery failed.") -> bytes:
    """A multipart/report DSN with the given per-recipient field blocks."""
    fields = "\n\n".join(block.strip("\n") for block in blocks)
    return mail(f"""
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

{text}

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

{fields}

--B
Content-Type: text/rfc822-headers

From: news@letterbox.example.org
To: someone@example.com
Subject: Monthly newsletter

--B--
""")


def only(report: ParsedReport) -> ParsedEvent:
    assert len(report.events) == 1, report.events
    return report.events[0]


# --- VERP tokens -------------------------------------------------------------------------


def test_verp_token_from_to_header() -> None:
    report = parse_report(dsn("Final-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1"))
    assert report.verp_tokens == ["tok123"]


def test_verp_tokens_from_envelope_headers_in_order_without_duplicates() -> None:
    raw = mail("""
Return-Path: <>
Delivered-To: bounce+Ab.C-d_9@bounces.example.org
X-Original-To: <Bounce+Ab.C-d_9@bounces.example.org>
Envelope-To: bounce+second.tok@bounces.example.org
Received: from mx.example.net by in.example.org for <bounce+third@bounces.example.org>; Mon, 1 Jan 2024
To: "Newsletter" <nobounce+not-ours@example.org>, someone@example.org
From: MAILER-DAEMON@mx.example.net
Subject: failure notice

<user@example.com>:
550 5.1.1 user unknown
""")
    assert parse_report(raw).verp_tokens == ["Ab.C-d_9", "second.tok", "third"]


def test_no_verp_tokens_when_none_addressed() -> None:
    raw = mail("From: a@example.com\nTo: b@example.com\nSubject: hi\n\nhello\n")
    assert parse_report(raw).verp_tokens == []


def test_complaint_takes_verp_token_from_the_returned_message() -> None:
    raw = mail("""
From: feedback@fbl.example.net
To: fbl@letterbox.example.org
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an abuse report.

--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: FBL/1.0
Version: 1

--F
Content-Type: message/rfc822

Return-Path: <bounce+sig.ned@bounces.letterbox.example.org>
From: news@letterbox.example.org
To: Reader@Example.com
Subject: News

Hello
--F--
""")
    report = parse_report(raw)
    assert report.verp_tokens == ["sig.ned"]
    event = only(report)
    assert (event.email, event.kind, event.feedback_type, event.status) == (
        "reader@example.com",
        "complaint",
        "abuse",
        None,
    )


# --- what is not a bounce ------------------------------------------------------------------


@pytest.mark.parametrize("action", ["delivered", "relayed", "expanded"])
def test_success_actions_are_not_bounces(action: str) -> None:
    report = parse_report(dsn(f"Final-Recipient: rfc822; ok@example.com\nAction: {action}\nStatus: 2.0.0"))
    assert report.events == []
    assert not report.auto_reply


def test_two_x_status_without_action_is_not_a_bounce() -> None:
    assert parse_report(dsn("Final-Recipient: rfc822; ok@example.com\nStatus: 2.1.5")).events == []


def kind_of(status: str) -> str | None:
    """The kind a report that declares only ``status`` (and says it failed) gets."""
    verdict = classify(Finding("x@example.com", status=status, action="failed"))
    return verdict.kind if verdict else None


def test_classify() -> None:
    assert kind_of("5.1.1") == "hard"
    assert kind_of("5.2.2") == "soft"  # mailbox full: the address exists
    assert kind_of("4.4.7") == "soft"
    assert kind_of("2.0.0") is None


def test_human_reply_is_not_a_bounce() -> None:
    raw = mail("From: reader@example.com\nTo: news@example.org\nSubject: Re: News\n\nThanks! Bob <bob@example.com>\n")
    assert parse_report(raw) == ParsedReport(events=[], verp_tokens=[], auto_reply=False)


def test_read_receipt_is_not_a_bounce() -> None:
    raw = mail("""
From: reader@example.com
To: bounce+tok@bounces.example.org
Subject: Read: News
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="M"

--M
Content-Type: text/plain

Your message to reader@example.com was read on Monday.

--M
Content-Type: message/disposition-notification

Final-Recipient: rfc822; reader@example.com
Disposition: manual-action/MDN-sent-manually; displayed

--M--
""")
    assert parse_report(raw).events == []


@pytest.mark.parametrize("raw", [b"", b"\x00\xff\xfe", b"not a mail at all", b"From: x\n\n\n", b"\r\n\r\n"])
def test_junk_gives_an_empty_report(raw: bytes) -> None:
    assert parse_report(raw) == ParsedReport(events=[], verp_tokens=[], auto_reply=False)


# --- auto-replies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        ("Auto-Submitted: auto-replied\n", "Re: News"),
        ("X-Autoreply: yes\n", "News"),
        ("Precedence: auto_reply\n", "News"),
        ("", "Out of Office: News"),
        ("", "Automatic reply: News"),
        ("", "Abwesenheitsnotiz: News"),
    ],
)
def test_auto_replies(headers: str, subject: str) -> None:
    raw = mail(f"From: reader@example.com\nTo: bounce+t@b.example.org\nSubject: {subject}\n{headers}\nI am away.\n")
    report = parse_report(raw)
    assert report.auto_reply
    assert report.events == []
    assert report.verp_tokens == ["t"]


def test_bounce_with_auto_submitted_is_still_a_bounce() -> None:
    raw = mail("""
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: bounce+t@b.example.org
Subject: Delivery Status Notification (Failure)
Auto-Submitted: auto-replied

Delivery to the following recipient failed permanently:

     gone@example.com

Technical details of permanent failure:
The email account that you tried to reach does not exist.
""")
    report = parse_report(raw)
    assert not report.auto_reply
    event = only(report)
    assert (event.email, event.kind, event.status) == ("gone@example.com", "hard", "5.1.1")


# --- several recipients --------------------------------------------------------------------


def test_dsn_with_failed_delayed_and_delivered_recipients() -> None:
    report = parse_report(
        dsn(
            "Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
            "Final-Recipient: rfc822; slow@example.net\nAction: delayed\nStatus: 4.4.1\n"
            "Diagnostic-Code: smtp; connect to mx.example.net: Connection timed out",
            "Final-Recipient: rfc822; fine@example.org\nAction: delivered\nStatus: 2.0.0",
        )
    )
    assert [(e.email, e.kind, e.status, e.reply_code) for e in report.events] == [
        ("gone@example.com", "hard", "5.1.1", 550),
        ("slow@example.net", "delayed", "4.4.1", None),
    ]


def test_dsn_blocks_without_blank_lines_between_recipients() -> None:
    report = parse_report(
        dsn(
            "Final-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.2.2\n"
            "Final-Recipient: rfc822; b@example.com\nAction: failed\nStatus: 5.1.1"
        )
    )
    assert [(e.email, e.kind) for e in report.events] == [("a@example.com", "soft"), ("b@example.com", "hard")]


def test_dsn_prefers_original_recipient() -> None:
    report = parse_report(
        dsn("Original-Recipient: rfc822;Info@Example.com\nFinal-Recipient: rfc822; john@example.com\nAction: failed")
    )
    event = only(report)
    assert (event.email, event.status) == ("info@example.com", "5.0.0")


def test_qmail_with_two_recipients() -> None:
    raw = mail("""
From: MAILER-DAEMON@mx.example.jp
To: bounce+t@b.example.org
Subject: failure notice

Hi. This is the qmail-send program at mx.example.jp.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<full@example.jp>:
Remote host said: 552 5.2.2 <full@example.jp>: Mailbox full
Giving up on 192.0.2.25.

<nobody@example.jp>:
Remote host said: 550 5.1.1 <nobody@example.jp>: User unknown
Giving up on 192.0.2.25.

--- Below this line is a copy of the message.

Return-Path: <bounce+t@b.example.org>
From: news@letterbox.example.org
To: someone-else@example.jp
""")
    report = parse_report(raw)
    assert [(e.email, e.kind, e.status, e.reply_code) for e in report.events] == [
        ("full@example.jp", "soft", "5.2.2", 552),
        ("nobody@example.jp", "hard", "5.1.1", 550),
    ]


def test_exim_uses_x_failed_recipients_and_indented_reasons() -> None:
    raw = mail("""
From: Mail Delivery System <Mailer-Daemon@mail.example.org>
To: bounce+t@b.example.org
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: one@example.com, two@example.com

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  one@example.com
    SMTP error from remote mail server after RCPT TO:<one@example.com>:
    host mx.example.com [192.0.2.1]: 550 5.1.1 <one@example.com>: User unknown
  two@example.com
    SMTP error from remote mail server after end of data:
    host mx.example.com [192.0.2.1]: 552 Message size exceeds fixed limit

------ This is a copy of the message, including all the headers. ------
""")
    report = parse_report(raw)
    assert [(e.email, e.status, e.reply_code) for e in report.events] == [
        ("one@example.com", "5.1.1", 550),
        ("two@example.com", "5.3.4", 552),
    ]
    assert report.events[1].diagnostic == "host mx.example.com [192.0.2.1]: 552 Message size exceeds fixed limit"


def test_exchange_summary_to_line_is_not_a_recipient() -> None:
    raw = mail("""
From: postmaster@example.co.jp
To: bounce+t@b.example.org
Subject: Undeliverable: News

Your message

  To:      list@example.co.jp
  Subject: News

did not reach the following recipient(s):

member@example.co.jp on Thu, 29 Apr 2010 00:00:00 -0000
    The recipient name is not recognized
""")
    event = only(parse_report(raw))
    assert (event.email, event.status) == ("member@example.co.jp", "5.1.1")


def test_postfix_expanded_alias_is_reported_as_the_address_we_sent_to() -> None:
    raw = mail("""
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: bounce+t@b.example.org
Subject: Undelivered Mail Returned to Sender

This is the mail system at host mx.example.org.

<real.box@example.net> (expanded from <subscriber@example.org>): host
    mx.example.net[192.0.2.9] said: 550 5.2.1 <real.box@example.net>: mailbox
    disabled (in reply to RCPT TO command)
""")
    event = only(parse_report(raw))
    assert (event.email, event.status, event.reply_code) == ("subscriber@example.org", "5.2.1", 550)


# --- diagnostics and status inference --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "status", "reply_code"),
    [
        ("550 5.1.1 <x@y.example>: user unknown", "5.1.1", 550),
        ("550-5.7.26 Unauthenticated email is not accepted", "5.7.26", 550),
        ("Remote host said: 550 Unknown user x@y.example. (#5.5.0)", "5.5.0", 550),
        ("550 No such user here", "5.1.1", 550),
        ("452 Mailbox full", "4.2.2", 452),
        ("552 Requested mail action aborted: exceeded storage allocation (over quota)", "5.2.2", 552),
        ("554 Message too large", "5.3.4", 554),
        ("550 Message rejected as spam", "5.7.1", 550),
        ("421 Too many connections, try again later", "4.3.2", 421),
    ],
)
def test_codes_from_diagnostic_text(text: str, status: str, reply_code: int) -> None:
    assert find_reply_code(text) == reply_code
    verdict = classify(Finding("x@example.com", diagnostic=text))
    assert verdict is not None and verdict.status == status


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Host or domain name not found. Name service error", "5.1.2"),
        ("The mailbox is full", "4.2.2"),
        ("Message temporarily deferred, try again later", "4.0.0"),
        ("Connection timed out", "4.4.7"),
        ("Something odd happened", None),
    ],
)
def test_status_inferred_without_any_code(text: str, status: str | None) -> None:
    verdict = classify(Finding("x@example.com", diagnostic=text))
    assert verdict is not None and verdict.status == status


def test_the_reporters_account_outranks_transient_wording() -> None:
    failed = classify(Finding("x@example.com", diagnostic="Connection timed out", action="failed"))
    delayed = classify(Finding("x@example.com", diagnostic="user unknown", action="delayed"))
    assert failed is not None and (failed.kind, failed.status) == ("hard", "5.4.7")
    assert delayed is not None and (delayed.kind, delayed.status) == ("delayed", "4.1.1")


def test_ip_addresses_and_versions_are_not_codes() -> None:
    text = "host mx.example.com [192.0.2.153] (Exim 4.72) said: Apple Mail (2.1878.6)"
    assert find_status(text) is None
    assert find_reply_code(text) is None


def test_diagnostic_is_trimmed_to_1000_characters() -> None:
    long_reason = "x" * 5000
    report = parse_report(
        dsn(f"Final-Recipient: rfc822; a@example.com\nAction: failed\nDiagnostic-Code: smtp; 550 5.1.1 {long_reason}")
    )
    event = only(report)
    assert event.diagnostic is not None and len(event.diagnostic) == 1000
    assert event.diagnostic.startswith("550 5.1.1 xxx")


def test_ses_notification_by_mail() -> None:
    raw = mail("""
From: no-reply@sns.amazonaws.com
To: bounce+t@b.example.org
Subject: AWS Notification Message
Content-Type: text/plain; charset=UTF-8

{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"Gone@Example.com","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]}}
""")
    event = only(parse_report(raw))
    assert (event.email, event.kind, event.status, event.reply_code) == ("gone@example.com", "hard", "5.1.1", 550)


def test_redacted_complaint_still_gives_one_event() -> None:
    raw = mail("""
From: fbl@isp.example
To: fbl@letterbox.example.org
Subject: abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: message/feedback-report

Feedback-Type: opt-out
Version: 1

--F--
""")
    event = only(parse_report(raw))
    assert (event.email, event.kind, event.feedback_type) == ("", "complaint", "opt-out")


# --- line endings and encodings ------------------------------------------------------------


def test_crlf_and_lf_give_the_same_report() -> None:
    block = (
        "Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown"
    )
    lf = dsn(block)
    crlf = lf.replace(b"\n", b"\r\n")
    assert parse_report(crlf) == parse_report(lf)
    assert only(parse_report(crlf)).email == "gone@example.com"


def test_prose_bounce_with_crlf() -> None:
    text = """
From: MAILER-DAEMON@y.example.co.jp
To: bounce+t@b.example.org
Subject: Failure Notice

Sorry, we were unable to deliver your message to the following address.

<kijitora@example.org>:
Remote host said: 550 5.1.1 <kijitora@example.org>... User Unknown [RCPT_TO]
"""
    assert parse_report(mail(text, crlf=True)) == parse_report(mail(text))
    assert only(parse_report(mail(text, crlf=True))).status == "5.1.1"


def test_eight_bit_and_encoded_headers_do_not_matter() -> None:
    raw = (
        b"From: =?utf-8?q?Mail_Syst=C3=A8me?= <MAILER-DAEMON@mx.example.fr>\n"
        b"To: bounce+t@b.example.org\n"
        b"Subject: Non remis \xe9\xe9 \xff\n\n"
        b"<absent@example.fr>: 550 5.1.1 utilisateur inconnu \xe9\n"
    )
    event = only(parse_report(raw))
    assert (event.email, event.status, event.reply_code) == ("absent@example.fr", "5.1.1", 550)


# --- notices seen in the wild beyond the corpus -----------------------------------------------


def test_html_only_outlook_notice() -> None:
    raw = mail("""
From: Microsoft Outlook <postmaster@contoso.onmicrosoft.com>
To: bounce+t@b.example.org
Subject: Undeliverable: News
Content-Type: text/html; charset=utf-8

<html><body><p><b>Your message to <a href="mailto:jane.doe@contoso.com">jane.doe@contoso.com</a>
couldn't be delivered.</b></p><p>jane.doe wasn't found at contoso.com.</p>
<p>Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found'</p></body></html>
""")
    event = only(parse_report(raw))
    assert (event.email, event.kind, event.status, event.reply_code) == ("jane.doe@contoso.com", "hard", "5.1.10", 550)


def test_postfix_delay_warning_is_a_delay_not_a_bounce() -> None:
    report = parse_report(
        dsn(
            "Final-Recipient: rfc822; slow@example.net\nAction: delayed\nStatus: 4.4.1\n"
            "Diagnostic-Code: X-Postfix; connect to mx.example.net[192.0.2.1]:25: Connection timed out",
            text="THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE.",
        )
    )
    event = only(report)
    assert (event.kind, event.status, event.diagnostic) == (
        "delayed",
        "4.4.1",
        "connect to mx.example.net[192.0.2.1]:25: Connection timed out",
    )


def test_out_of_office_told_only_in_the_body() -> None:
    raw = mail(
        "From: jane@example.com\nTo: news@example.org\nSubject: Re: News\n\nI am out of the office until Monday.\n"
    )
    report = parse_report(raw)
    assert report.auto_reply and report.events == []
