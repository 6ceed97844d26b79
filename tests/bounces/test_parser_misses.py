"""Hand-written reports, one or more for each class of miss seen on real bounces (issue 13).

They are written from the formats' documentation (RFC 3464, RFC 3463) and the shapes MTAs
are known to use, not copied from any corpus: the held-back corpora measure whether the
rules generalize.
"""

from __future__ import annotations

from service.bounces.parse import Ours, ParsedEvent, ParsedReport, parse_report


def mail(text: str) -> bytes:
    """A message written in a test as text with LF line ends."""
    return text.lstrip("\n").encode("utf-8")


def found(report: ParsedReport) -> list[tuple[str, str]]:
    """(address, kind) of every event."""
    return [(event.email, event.kind) for event in report.events]


def only(report: ParsedReport) -> ParsedEvent:
    assert len(report.events) == 1, report.events
    return report.events[0]


# --- prose that says plainly the failure is permanent ----------------------------------------


def test_permanent_error_outranks_a_warning_subject() -> None:
    raw = mail("""
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>
To: bounce+tok@bounces.example.org
Subject: Warning: undeliverable mail

Your message could not be delivered. This is a permanent error.

unknown user: <reader@example.org>
""")
    assert found(parse_report(raw)) == [("reader@example.org", "hard")]


def test_permanent_fatal_errors_outrank_temporary_wording() -> None:
    raw = mail("""
From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>
To: bounce+tok@bounces.example.org
Subject: Returned mail: see transcript for details

The original message was received at Mon, 1 Jun 2026 10:00:00 +0200

   ----- The following addresses had PERMANENT fatal delivery errors -----
<reader@example.org>
    (reason: mailbox temporarily disabled, please try again later)
""")
    assert found(parse_report(raw)) == [("reader@example.org", "hard")]


def test_no_such_user_here_without_any_code_is_hard() -> None:
    raw = mail("""
From: MAILER-DAEMON@mail.example.net
To: bounce+tok@bounces.example.org
Subject: failure notice

Hi. This is the mail transport at mail.example.net.
I could not deliver your message to the following address; will not retry.

<reader@example.org>:
no such user here
""")
    event = only(parse_report(raw))
    assert (event.email, event.kind, event.status) == ("reader@example.org", "hard", "5.1.1")


def test_unknown_user_in_a_delay_flavoured_notice_is_still_a_bounce_of_that_user() -> None:
    raw = mail("""
From: postmaster@mx.example.net
To: bounce+tok@bounces.example.org
Subject: Delivery Status Notification (Failure)

Delivery to the following recipient failed permanently:

     reader@example.org

Technical details of permanent failure:
The email account that you tried to reach does not exist: unknown user.
""")
    assert found(parse_report(raw)) == [("reader@example.org", "hard")]


# --- addresses with junk around them -----------------------------------------------------


def test_leading_quote_is_not_part_of_the_address() -> None:
    raw = mail("""
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: bounce+tok@bounces.example.org
Subject: Mail delivery failed: returning message to sender

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  'reader@Example.UK'
    SMTP error from remote mail server after RCPT TO:<reader@example.uk>:
    550 5.1.1 User unknown
""")
    assert found(parse_report(raw)) == [("reader@example.uk", "hard")]


def test_smtp_equals_prefix_is_stripped() -> None:
    raw = mail("""
From: MAILER-DAEMON@gw.example.net
To: bounce+tok@bounces.example.org
Subject: Undeliverable message

Message delivery failed for the following recipient:
Recipient: smtp=reader@example.com
Reason: 550 5.1.1 mailbox unavailable
""")
    assert found(parse_report(raw)) == [("reader@example.com", "hard")]


def test_the_lists_own_addresses_are_never_the_recipient() -> None:
    raw = mail("""
From: staff-owner@lists.example.org
To: bounce+tok@bounces.example.org
List-Post: <mailto:staff@lists.example.org>
Subject: Undeliverable: Monthly newsletter

Your message to staff@lists.example.org was forwarded to the list's members.
Delivery failed for the following member:

    member@example.net
    550 5.1.1 user unknown

Questions? Write to staff-request@lists.example.org
""")
    assert found(parse_report(raw)) == [("member@example.net", "hard")]


def test_our_own_addresses_are_never_the_recipient() -> None:
    raw = mail("""
From: MAILER-DAEMON@mx.example.net
To: bounce+tok@bounces.example.org
Subject: Undelivered Mail Returned to Sender

I'm sorry to have to inform you that your message could not be delivered.

<news@letterbox.example.org>: 550 5.7.1 sender rejected
""")
    ours = Ours(addresses=frozenset({"news@letterbox.example.org"}), domains=frozenset({"bounces.example.org"}))
    assert parse_report(raw, ours).events == []


# --- reports with several recipients, and recipients found nowhere obvious ----------------


def test_every_recipient_of_an_exchange_style_report() -> None:
    raw = mail("""
From: postmaster@outlook.example.com
To: bounce+tok@bounces.example.org
Subject: Undeliverable: Monthly newsletter

Delivery has failed to these recipients or groups:

reader.one@example.org
The e-mail address you entered couldn't be found.

reader.two@example.net
The recipient's mailbox is full and can't accept messages now.

Diagnostic information for administrators:

Generating server: outlook.example.com

reader.one@example.org
Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'

reader.two@example.net
Remote Server returned '552 5.2.2 mailbox full'
""")
    assert sorted(found(parse_report(raw))) == [("reader.one@example.org", "hard"), ("reader.two@example.net", "soft")]


def test_x400_final_recipient_falls_back_to_the_returned_messages_recipient() -> None:
    raw = mail("""
From: Mail Delivery System <MAILER-DAEMON@gw.example.net>
To: bounce+tok@bounces.example.org
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: x400; gw.example.net

Final-Recipient: x400; c=de;a= ;p=example;o=mail;s=leser;g=anna;
Action: failed
Status: 5.1.1

--B
Content-Type: message/rfc822

From: news@letterbox.example.org
To: anna.leser@example.de
Subject: Monthly newsletter

Hello
--B--
""")
    assert found(parse_report(raw)) == [("anna.leser@example.de", "hard")]


def test_x400_recipient_with_its_rfc822_form() -> None:
    raw = mail("""
From: MAILER-DAEMON@gw.example.net
To: bounce+tok@bounces.example.org
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: message/delivery-status

Reporting-MTA: x400; gw.example.net

Final-Recipient: X400; /RFC-822=anna.leser(a)example.de/ADMD= /C=DE/
Action: failed
Status: 5.1.1
--B--
""")
    assert found(parse_report(raw)) == [("anna.leser@example.de", "hard")]


def test_original_recipient_only_in_the_text() -> None:
    raw = mail("""
From: MAILER-DAEMON@mx.example.net
To: bounce+tok@bounces.example.org
Subject: Returned mail

The message could not be delivered. Status report follows.

Original-Recipient: rfc822;reader@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown
""")
    assert found(parse_report(raw)) == [("reader@example.org", "hard")]


def test_address_only_in_the_quoted_original() -> None:
    raw = mail("""
From: Mail Administrator <postmaster@mail.example.net>
To: bounce+tok@bounces.example.org
Subject: Undeliverable mail
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: text/plain

Your message was not delivered: the recipient's mailbox does not exist.

--B
Content-Type: message/rfc822

From: news@letterbox.example.org
To: Reader <reader@example.org>
Subject: Monthly newsletter

Hello
--B--
""")
    assert found(parse_report(raw)) == [("reader@example.org", "hard")]


# --- status codes against the words ---------------------------------------------------


def test_a_4xx_reported_as_final_after_days_of_retries_is_soft_not_ignored() -> None:
    raw = mail("""
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: bounce+tok@bounces.example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered for 5 days. Giving up.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; reader@example.org
Action: failed
Status: 4.4.7
Diagnostic-Code: smtp; 451 4.4.1 mx.example.org: Connection timed out
--B--
""")
    event = only(parse_report(raw))
    assert (event.email, event.kind) == ("reader@example.org", "soft")


def test_a_generic_5_0_0_whose_words_say_mailbox_full_is_soft() -> None:
    raw = mail("""
From: MAILER-DAEMON@mx.example.net
To: bounce+tok@bounces.example.org
Subject: failure notice

Sorry, I could not deliver your message to the following address.

<reader@example.org>:
5.0.0 The user's mailbox is full and cannot take more mail
""")
    event = only(parse_report(raw))
    assert (event.kind, event.status) == ("soft", "5.2.2")


def test_a_5xx_status_whose_words_say_over_quota_is_soft() -> None:
    raw = mail("""
From: MAILER-DAEMON@mx.example.net
To: bounce+tok@bounces.example.org
Subject: Delivery failure

<reader@example.org>:
550 5.7.1 Recipient is over quota
""")
    assert found(parse_report(raw)) == [("reader@example.org", "soft")]


def test_a_5xx_dsn_status_is_hard_even_under_a_soft_provider_label() -> None:
    raw = mail("""
From: no-reply@sns.amazonaws.com
To: bounce+tok@bounces.example.org
Subject: AWS Notification Message
Content-Type: text/plain

{"notificationType":"Bounce","bounce":{"bounceType":"Transient","bounceSubType":"General",
"bouncedRecipients":[{"emailAddress":"reader@example.org","status":"5.1.1",
"diagnosticCode":"smtp; 550 5.1.1 user unknown"}]},"mail":{"messageId":"m-1"}}
""")
    assert found(parse_report(raw)) == [("reader@example.org", "hard")]


def test_a_report_nothing_explains_is_unknown_not_soft() -> None:
    raw = mail("""
From: MAILER-DAEMON@mx.example.net
To: bounce+tok@bounces.example.org
Subject: Mail system notice

About your message to <reader@example.org>: see the attached log.
""")
    event = only(parse_report(raw))
    assert (event.email, event.kind, event.status) == ("reader@example.org", "unknown", None)


def test_a_dsn_declaring_5xx_stays_hard_whatever_temporary_reply_it_quotes() -> None:
    raw = mail("""
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: bounce+tok@bounces.example.org
Subject: Undeliverable
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; reader@example.org
Action: failed
Status: 5.4.7
Diagnostic-Code: smtp; 451 4.4.1 mx.example.org: no answer, giving up
--B--
""")
    event = only(parse_report(raw))
    assert (event.kind, event.status) == ("hard", "5.4.7")
