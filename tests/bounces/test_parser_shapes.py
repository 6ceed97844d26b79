"""Hand-written notices in the shapes the common MTAs and providers write them (Sendmail, qmail,
Exim, Postfix, Exchange, Gmail, Yahoo, AOL, Lotus Notes, GroupWise) and in other languages, each
with the address and kind a person reading it would give. Written from the formats, not copied
from any corpus."""

from __future__ import annotations

import pytest

from service.bounces.parse import parse_report

cases: dict[str, tuple[bytes, list[tuple[str, str]]]] = {}
H = "From: {frm}\nTo: bounce+tok@bounces.example.org\nSubject: {subj}\n\n"


def add(name: str, frm: str, subj: str, body: str, expect: list[tuple[str, str]]) -> None:
    """One notice: its sender, subject and text, and the (address, kind) it reports."""
    cases[name] = ((H.format(frm=frm, subj=subj) + body).encode(), expect)


add("yahoo", "MAILER-DAEMON@yahoo.com", "Failure Notice",
"Message from  yahoo.com.\nUnable to deliver message to the following address(es).\n\n<reader@yahoo.com>:\nSorry your message to reader@yahoo.com cannot be delivered. This account has been disabled or discontinued [#102].\n",
 [("reader@yahoo.com","hard")])
add("aol", "Mail Delivery Subsystem <MAILER-DAEMON@aol.com>", "Returned mail: User unknown",
"The original message was received at Mon, 1 Jun 2020 10:00:00 -0400\nfrom mail.example.org [192.0.2.1]\n\n   ----- The following addresses had permanent fatal errors -----\nreader@aol.com\n\n   ----- Transcript of session follows -----\n... while talking to air-xx.mail.aol.com.:\n>>> RCPT To:<reader@aol.com>\n<<< 550 MAILBOX NOT FOUND\n550 reader@aol.com... User unknown\n",
 [("reader@aol.com","hard")])
add("smtpsvc", "postmaster@corp.example.com", "Delivery Status Notification (Failure)",
"Your message did not reach some or all of the intended recipients.\n\n      Subject:\tNewsletter\n      Sent:\t1/1/2020 10:00 AM\n\nThe following recipient(s) could not be reached:\n\n      reader@corp.example.com on 1/1/2020 10:00 AM\n            The e-mail account does not exist at the organization this message was sent to.  Check the e-mail address, or contact the recipient directly to find out the correct address.\n            <mx.corp.example.com #5.1.1>\n",
 [("reader@corp.example.com","hard")])
add("qmail", "MAILER-DAEMON@mx.example.net", "failure notice",
"Hi. This is the qmail-send program at mx.example.net.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<reader@example.net>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n<second@example.net>:\nThe users mailfolder is over the allowed quota (size). (#5.2.2)\n\n--- Below this line is a copy of the message.\n\nReturn-Path: <bounce+tok@bounces.example.org>\nTo: reader@example.net\n",
 [("reader@example.net","hard"),("second@example.net","soft")])
add("exim", "Mail Delivery System <Mailer-Daemon@mx.example.com>", "Mail delivery failed: returning message to sender",
"This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  reader@example.com\n    SMTP error from remote mail server after RCPT TO:<reader@example.com>:\n    host mx.example.com [192.0.2.2]: 550 5.1.1 User unknown\n",
 [("reader@example.com","hard")])
add("exim-timeout", "Mail Delivery System <Mailer-Daemon@mx.example.com>", "Mail delivery failed: returning message to sender",
"This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  reader@example.com\n    retry timeout exceeded\n",
 [("reader@example.com","hard")])
add("exim-full", "Mail Delivery System <Mailer-Daemon@mx.example.com>", "Mail delivery failed: returning message to sender",
"This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  reader@example.com\n    mailbox is full: retry timeout exceeded\n",
 [("reader@example.com","soft")])
add("postfix-prose", "MAILER-DAEMON@mx.example.org (Mail Delivery System)", "Undelivered Mail Returned to Sender",
"This is the mail system at host mx.example.org.\n\nI'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below.\n\n                   The mail system\n\n<reader@example.com>: host mx.example.com[192.0.2.3] said: 550 5.1.1\n    <reader@example.com>: Recipient address rejected: User unknown in local\n    recipient table (in reply to RCPT TO command)\n",
 [("reader@example.com","hard")])
add("postfix-delay", "MAILER-DAEMON@mx.example.org (Mail Delivery System)", "Delayed Mail (still being retried)",
"This is the mail system at host mx.example.org.\n\n####################################################################\n# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n####################################################################\n\nYour message could not be delivered for more than 4 hour(s).\nIt will be retried until it is 5 day(s) old.\n\n<reader@example.com>: connect to mx.example.com[192.0.2.3]:25: Connection timed out\n",
 [("reader@example.com","delayed")])
add("sendmail-warn", "Mail Delivery Subsystem <MAILER-DAEMON@relay.example.org>", "Warning: could not send message for past 4 hours",
"    **********************************************\n    **      THIS IS A WARNING MESSAGE ONLY      **\n    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n    **********************************************\n\nThe original message was received at Mon, 1 Jun 2020 10:00:00 GMT\n\n   ----- Transcript of session follows -----\n<reader@example.com>... Deferred: Connection timed out with mx.example.com.\nWarning: message still undelivered after 4 hours\nWill keep trying until message is 5 days old\n",
 [("reader@example.com","delayed")])
add("gmail", "Mail Delivery Subsystem <mailer-daemon@googlemail.com>", "Delivery Status Notification (Failure)",
"Delivery to the following recipient failed permanently:\n\n     reader@example.com\n\nTechnical details of permanent failure:\nGoogle tried to deliver your message, but it was rejected by the server for the recipient domain example.com by mx.example.com. [192.0.2.4].\n\nThe error that the other server returned was:\n550 5.1.1 <reader@example.com>: Recipient address rejected: User unknown in virtual alias table\n",
 [("reader@example.com","hard")])
add("gmail-delay", "Mail Delivery Subsystem <mailer-daemon@googlemail.com>", "Delivery Status Notification (Delay)",
"This is an automatically generated Delivery Status Notification\n\nTHIS IS A WARNING MESSAGE ONLY.\n\nYOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\nDelivery to the following recipient has been delayed:\n\n     reader@example.com\n\nMessage will be retried for 2 more day(s)\n\nTechnical details of temporary failure:\nThe recipient server did not accept our requests to connect.\n",
 [("reader@example.com","delayed")])
add("gmx", "Mail Delivery System <mailer-daemon@gmx.net>", "Mail delivery failed: returning message to sender",
"This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of\nits recipients. This is a permanent error. The following address\nfailed:\n\nreader@gmx.de:\nSMTP error from remote server for RCPT TO command, host: mx.gmx.net (212.227.17.5) reason: 550 Requested action not taken: mailbox unavailable\n",
 [("reader@gmx.de","hard")])
add("notes", "Postmaster@notes.example.com", "DELIVERY FAILURE: User reader (reader@notes.example.com) not listed in Domino Directory",
"Your message\n\n  Subject: Newsletter\n\nwas not delivered to:\n\n  reader@notes.example.com\n\nbecause:\n\n  User reader (reader@notes.example.com) not listed in Domino Directory\n",
 [("reader@notes.example.com","hard")])
add("german", "MAILER-DAEMON@mail.example.de", "Unzustellbar: Newsletter",
"Ihre Nachricht konnte nicht zugestellt werden.\n\nEmpfaenger: leser@example.de\nGrund: Das Postfach ist voll.\n",
 [("leser@example.de","soft")])
add("german-unknown", "MAILER-DAEMON@mail.example.de", "Unzustellbar: Newsletter",
"Ihre Nachricht konnte nicht zugestellt werden.\n\nEmpfaenger: leser@example.de\nGrund: Benutzer unbekannt.\n",
 [("leser@example.de","hard")])
add("french", "MAILER-DAEMON@mail.example.fr", "Non remis: Lettre",
"Votre message n'a pas pu etre remis.\n\nDestinataire : lecteur@example.fr\nRaison : boite aux lettres pleine\n",
 [("lecteur@example.fr","soft")])
add("over-quota-550", "MAILER-DAEMON@mx.example.net", "Undeliverable",
"Delivery has failed to these recipients:\n\nreader@example.net\n550 Mailbox quota exceeded\n",
 [("reader@example.net","soft")])
add("groupwise", "Mail Administrator <Postmaster@gw.example.com>", "Mail System Error - Returned Mail",
"This Message was undeliverable due to the following reason:\n\nEach of the following recipients was rejected by a remote mail server.\nThe reasons given by the server are included to help you determine why\neach recipient was rejected.\n\n    Recipient: <reader@example.com>\n    Reason:    5.1.1 <reader@example.com>... User unknown\n",
 [("reader@example.com","hard")])
add("domain", "MAILER-DAEMON@mx.example.net", "Undeliverable mail",
"Could not deliver your message to the following recipient.\n\n<reader@nowhere.example>: Host or domain name not found. Name service error for name=nowhere.example type=MX: Host not found\n",
 [("reader@nowhere.example","hard")])
add("angle-only-original", "MAILER-DAEMON@mx.example.net", "Returned mail",
"Your message could not be delivered: 550 5.1.1 no such user.\n\n------ Original message follows ------\nFrom: news@letterbox.example.org\nTo: Reader One <reader.one@example.com>\nSubject: Newsletter\n\nHi\n",
 [("reader.one@example.com","hard")])


@pytest.mark.parametrize("name", sorted(cases))
def test_notice_shapes(name: str) -> None:
    raw, expected = cases[name]
    assert sorted((e.email, e.kind) for e in parse_report(raw).events) == sorted(expected)
