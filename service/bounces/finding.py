"""The one shape every way a bounce arrives is reduced to before it is classified.

A mail report (SMTP receiver, ``POST /v1/bounces/raw``), a bounce reported by
another system (``POST /v1/bounces``), a provider webhook (SES, Postmark,
SendGrid, Mailgun) and a 5xx at send time all become :class:`Finding` tuples:
what the report *says*, with no decision in it.  ``classify.py`` alone turns a
finding into hard, soft, complaint, delayed or unknown.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Action = Literal["failed", "delayed", "delivered"]


class Finding(NamedTuple):
    """One recipient of one report, as its reader saw it."""

    email: str
    """The recipient, lower-cased; '' only for a complaint whose report redacts it."""
    status: str | None = None
    """The RFC 3463 status code a structured field declares (DSN ``Status``, a provider's status)."""
    diagnostic: str | None = None
    """The remote server's words or the notice's, as stored (<= 1000 characters)."""
    reply_code: int | None = None
    """The SMTP reply code the report shows (550), if any."""
    complaint: bool = False
    feedback_type: str | None = None
    action: Action | None = None
    """What the reporter says it did: gave up (failed), will retry (delayed), or delivered."""
    hint: str | None = None
    """The provider's own label ("ses:permanent", "postmark:softbounce"): a hint, never the decision."""
    text: str | None = None
    """Wording about this recipient for the phrase table, when there is more than the diagnostic."""
    event_id: str | None = None
    """The provider's id of the event, so that a replayed event changes nothing."""
