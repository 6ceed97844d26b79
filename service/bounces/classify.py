"""Where bounces are classified: DSN status, SMTP reply code and reason text to hard/soft/complaint.

Rules (see DESIGN.md "Bounces"):

* status 5.x.x is a hard bounce, except 5.2.2 (mailbox full), which is soft: the
  address exists and will accept mail again once emptied;
* status 4.x.x is a soft bounce;
* status 2.x.x is not a bounce at all (delivered, relayed, expanded);
* ARF reports are complaints (decided by the reader, not here).

When a notice carries no enhanced status code we infer one: the class from the SMTP
reply code, else from the notice as a whole (a delay warning or a final failure),
else from wording that says the failure is temporary; the subject and detail from
well-known phrases ("user unknown" is X.1.1, "mailbox full" X.2.2).
"""

from __future__ import annotations

import re
from typing import Literal

BounceKind = Literal["hard", "soft", "complaint"]

# An RFC 3463 enhanced status code: not part of an IP address, a version number or a word.
_STATUS_RE = re.compile(r"(?<![\w.\-])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
# An SMTP reply code where a reply would start: not inside a longer number, and followed
# by a space, the end, or the '-' of a multi-line reply ("550-5.7.26 ...").
_REPLY_RE = re.compile(r"(?<![\w.\-/#+])([245][0-5]\d)(?=[\s,;:)\]]|-\d\.|-[^\d]|$)", re.MULTILINE)
# A reply code directly followed by an enhanced code is the best evidence a text has.
_PAIR_RE = re.compile(r"(?<![\w.\-:/#+])([245][0-5]\d)(?:[ \-:]+['\"]?)#?([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")


def find_status(text: str) -> str | None:
    """The 4.x.x/5.x.x enhanced status code in ``text``, preferring one that follows a reply code."""
    pair = find_reply_pair(text)
    if pair:
        return pair[1]
    for match in _STATUS_RE.finditer(text):
        if match.group(1) in "45":
            return match.group(0)
    return None


def find_reply_pair(text: str) -> tuple[int, str] | None:
    """The first consistent "550 5.1.1"-style pair (reply code, enhanced status) in ``text``."""
    for pair in _PAIR_RE.finditer(text):
        if pair.group(1)[0] == pair.group(2)[0] and pair.group(1)[0] in "45":
            return int(pair.group(1)), pair.group(2)
    return None


def find_reply_code(text: str) -> int | None:
    """The 4xx/5xx SMTP reply code in ``text``, preferring one that precedes an enhanced code."""
    for pair in _PAIR_RE.finditer(text):
        if pair.group(1)[0] in "45":
            return int(pair.group(1))
    for match in _REPLY_RE.finditer(text):
        if match.group(1)[0] in "45":
            return int(match.group(1))
    return None


# Phrase -> "subject.detail" of the status it implies. Checked in order: the specific
# reasons first, the broad "rejected"/"policy" wording last.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), detail)
    for pattern, detail in (
        (r"mail ?loop|hop count|too many hops|loops? back to myself|routing loop", "4.6"),
        (
            r"user ?unknown|unknown user|no such (?:user|mailbox|recipient|person|address|account|local user)"
            r"|(?:user|recipient|mailbox|address|account|addressee)\b[^.\n]{0,40}\b(?:does not|doesn't|did not) exist"
            r"|(?:user|recipient|mailbox|address|account)(?: name)? (?:is )?(?:not found|not known|unknown"
            r"|not recognized|not recognised|invalid)"
            r"|unknown (?:recipient|mailbox|address|local[ -]?part|e-?mail address)"
            r"|invalid (?:recipient|mailbox|address|user|e-?mail address)|not a valid (?:recipient|mailbox|user)"
            r"|no (?:valid )?(?:mailbox|account) (?:here|by that name|for)|unrouteable address|addressee unknown"
            r"|bad (?:recipient|destination mailbox)|(?:does ?n[o']t|doesn't) have an? [\w.-]{1,60} account"
            r"|not our customer|user not local|unknown or illegal alias|mailbox not found"
            r"|no longer (?:valid|available|active|exists)|(?:address|recipient) (?:is )?no longer"
            r"|not a known user|user not found|recipient not found|no such address",
            "1.1",
        ),
        (
            r"mail ?box (?:is )?full|mail ?folder is full|(?:is|was) full\b|over ?quota|quota (?:exceeded|full)"
            r"|exceeded (?:his |her |their |the )?(?:storage |disk |mailbox )?quota|(?:mailbox|disk|storage) quota"
            r"|exceeded storage|storage allocation|mailbox size limit|insufficient (?:disk|storage) space"
            r"|not enough (?:disk |storage )?space|full mailbox|user is over",
            "2.2",
        ),
        (
            r"message (?:is )?too (?:large|big)|too (?:large|big) for|message size|size limit"
            r"|exceeds? (?:the )?(?:maximum |max )?(?:allowed )?(?:message )?size|message length exceeds",
            "3.4",
        ),
        (r"has moved|no forwarding address|moved permanently|changed (?:his|her|their) address", "1.6"),
        (
            r"(?:account|mailbox|user|address|recipient)\b.{0,30}\b(?:disabled|suspended|deactivated"
            r"|inactive|locked|discontinued|closed|frozen|terminated|cancell?ed)|account (?:has )?expired"
            r"|(?:disabled|suspended|inactive|deactivated|closed) (?:user|account|mailbox|recipient|address)",
            "2.1",
        ),
        (
            r"host (?:not found|unknown)|unknown host|(?:domain|host)(?: name)? (?:not found|does not exist"
            r"|unknown)|no such domain|unrouteable (?:mail )?domain|dns (?:lookup )?(?:failure|error)"
            r"|name service error|no mx\b|non-?existent (?:domain|host)|nxdomain|bad destination system"
            r"|domain (?:is )?(?:not|no longer) (?:valid|registered)",
            "1.2",
        ),
        (r"address (?:syntax|format)|syntax (?:error|is invalid) in (?:address|recipient)|bad address syntax", "1.3"),
        (
            r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)|not permitted to relay"
            r"|(?:do not|don't|cannot|will not|unable to) relay|no relaying",
            "7.1",
        ),
        (r"reverse dns|reverse (?:lookup|domain)|ptr record|\brdns\b|no ptr|ptr lookup", "7.25"),
        (r"\bdmarc\b", "7.26"),
        (r"\bspf\b", "7.23"),
        (
            r"spam|black ?list|block ?list|\brbl\b|dnsbl|blocked|junk|reputation|banned|denied|refused"
            r"|not (?:authorized|allowed|permitted)|prohibited|virus|malware|policy",
            "7.1",
        ),
        (
            r"timed? ?out|expired|retry time|(?:in|on) (?:the )?queue too long|too long (?:in|on) (?:the )?queue"
            r"|could not deliver for|not delivered within|giving up|delivery time|retries exceeded"
            r"|delivery failed \d+ attempts|undeliverable for",
            "4.7",
        ),
        (
            r"connection (?:refused|reset|closed|lost|dropped|failed)|no route to host|unable to connect"
            r"|could not connect|cannot connect|socket error|network (?:is )?unreachable"
            r"|host (?:is )?(?:down|unreachable)|not responding|requests to connect|no answer",
            "4.1",
        ),
        # Postfix's "Recipient address rejected:" prefixes every reason; alone it means "unknown".
        (r"mailbox unavailable|mailbox not available|recipient rejected|address rejected", "1.1"),
        (r"rejected", "7.1"),
    )
)

# Wording that a failure is temporary (the sender's MTA keeps or kept retrying).
_TEMPORARY_RE = re.compile(
    r"temporar|try again|try later|retry later|please retry|deferr|grey ?list|gray ?list|too many connections"
    r"|too many (?:concurrent|simultaneous)|rate limit|rate-limit|throttl|resources? (?:temporarily )?unavailable"
    r"|system (?:is )?busy|will be retried|delay reason",
    re.IGNORECASE,
)
# A reason is stated near its address; past this many characters a notice is quoting something.
_REASON_REACH = 10_000
# Reasons that are by nature transient: a timeout or expiry says nothing about the mailbox.
_TRANSIENT_DETAILS = ("4.7", "4.1", "4.6")


def phrase_detail(text: str) -> str | None:
    """The "subject.detail" ("1.1") that the wording of ``text`` implies, or None."""
    text = text[:_REASON_REACH]
    for pattern, implied in _PHRASES:
        if pattern.search(text):
            return implied
    return None


def infer_status(text: str, reply_code: int | None, notice_class: int | None) -> str:
    """A status code for a failure described by ``text`` that carries no enhanced code.

    The class is, in order: the reply code's; the notice's (``notice_class``: a delay
    warning or a final failure, as the reporting MTA decided); 4 when the text says the
    failure is temporary or names a transient reason (timeout, expiry); else 5, since a
    notice that reports a failure without qualification reports a final one.
    """
    detail = phrase_detail(text) or "0.0"
    if reply_code is not None and reply_code // 100 in (4, 5):
        cls = reply_code // 100
    elif notice_class in (4, 5):
        cls = notice_class
    elif _TEMPORARY_RE.search(text[:_REASON_REACH]) or detail in _TRANSIENT_DETAILS:
        cls = 4
    else:
        cls = 5
    return f"{cls}.{detail}"


def detail_status(text: str, cls: int) -> str:
    """The status of class ``cls`` whose detail best matches ``text`` ("5.0.0" when none does)."""
    return f"{cls}.{phrase_detail(text) or '0.0'}"


def status_class(status: str | None) -> int | None:
    """The class digit of a status code (5 for "5.1.1"), or None."""
    if status and status[:1] in ("2", "4", "5"):
        return int(status[0])
    return None


def classify(status: str | None) -> BounceKind | None:
    """hard, soft, or None (not a bounce) for a bounce's DSN status code.

    No status at all is treated as hard: a notice that reports a failure without
    saying why is, by its sender's own account, final.
    """
    cls = status_class(status)
    if cls == 2:
        return None
    if cls == 4:
        return "soft"
    if status == "5.2.2":
        return "soft"
    return "hard"
