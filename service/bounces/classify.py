"""The one place a bounce is classified: a :class:`~service.bounces.finding.Finding` in, a kind out.

Every way a bounce arrives (the SMTP receiver, ``POST /v1/bounces/raw``,
``POST /v1/bounces``, the provider webhooks, a 5xx at send time) is reduced to
findings by its reader, and :func:`classify` alone decides what each one is:

* ``hard``: the address does not (or will never again) accept mail; suppress it;
* ``soft``: this copy failed but the address may work later; counted toward the limit;
* ``complaint``: the reader reported our mail as spam (or opted out through a feedback loop);
* ``delayed``: the reporter is still retrying; recorded, never a bounce;
* ``unknown``: nothing in the report says which; recorded for review, never counted;
* ``None``: not a failure at all (delivered, relayed, expanded: RFC 3463 class 2).

The rules are the data tables below (``STATUS_CLASSES``, ``SUBJECTS``,
``REPLY_CODES``, ``STATED``, ``PHRASES``, ``PROVIDER_HINTS``), documented
again in README.md, "How bounces are classified".  Evidence is weighed in this
order, the first that speaks deciding the class (4 temporary, 5 permanent):

1. a complaint is a complaint; ``Action: delivered/relayed/expanded`` or a 2.x.x code is no failure;
2. ``Action: delayed`` (or a provider's delay event) is a delay warning, unless the warning
   shows a permanent (5xx) refusal for that very recipient;
3. the status code a structured field declares (DSN ``Status``, a provider's status field);
4. an enhanced status code written in the text, prose included, then an SMTP reply code;
5. the notice saying outright that it gave up ("permanent error", "PERMANENT fatal delivery
   errors": class 5) or that it is still trying ("delayed", "will retry": a delay warning);
6. the reporter's own account: ``Action: failed`` or a notice of failure says class 5;
7. the provider's label (SES ``Permanent``, Postmark ``HardBounce``, ``POST /v1/bounces`` ``soft``…);
8. wording that the failure is temporary ("try again later", greylisting): class 4;
9. the reason's nature (the phrase table): "user unknown" 5, "timed out" 4.

Class 5 is hard, except a full mailbox (X.2.2, or any class-5 code but an X.1.x
addressing one whose words say the mailbox is full), which is soft: the address
exists and takes mail again once emptied.  Class 4 is soft: it is reported as a failure (a 4.x.x after
days of retries did fail); a warning would have said ``delayed``.  When no rule
speaks the finding is ``unknown``: kept for review, never silently counted soft.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from service.bounces.finding import Finding

Kind = Literal["hard", "soft", "complaint", "delayed", "unknown"]
"""Every kind an event can have; only ``hard`` and ``soft`` are bounces."""
ReportedKind = Literal["hard", "soft", "complaint"]
"""What another system may say a bounce was (``POST /v1/bounces``): a hint to the classifier."""
BOUNCE_KINDS: frozenset[Kind] = frozenset({"hard", "soft"})

# A reason is stated near its address; past this many characters a notice is quoting something.
_REASON_REACH = 10_000


class Verdict(NamedTuple):
    """What a finding is, the status code it rests on, and which rule decided."""

    kind: Kind
    status: str | None
    rule: str


# -- RFC 3463 enhanced status codes ------------------------------------------------------

# An RFC 3463 enhanced status code: not part of an IP address, a version number or a word.
_STATUS_RE = re.compile(r"(?<![\w.\-])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
# An SMTP reply code where a reply would start: not inside a longer number, and followed
# by a space, the end, or the '-' of a multi-line reply ("550-5.7.26 ...").
_REPLY_RE = re.compile(r"(?<![\w.\-/#+])([245][0-5]\d)(?=[\s,;:)\]]|-\d\.|-[^\d]|$)", re.MULTILINE)
# A reply code directly followed by an enhanced code is the best evidence a text has.
_PAIR_RE = re.compile(r"(?<![\w.\-:/#+])([245][0-5]\d)(?:[ \-:]+['\"]?)#?([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")

# Class digit -> (kind, why).
STATUS_CLASSES: dict[int, tuple[Kind | None, str]] = {
    2: (None, "success (delivered, relayed, expanded): not a failure"),
    4: ("soft", "persistent transient failure: this copy failed, the address may accept mail later"),
    5: ("hard", "permanent failure: the address does not accept mail"),
}
# Subject.detail of a failure whose kind is not its class's: (subject.detail, kind, why).
SUBJECTS: tuple[tuple[str, Kind, str], ...] = (
    ("2.2", "soft", "mailbox full: temporary by nature, the mailbox exists and takes mail once emptied"),
    ("4.6", "soft", "routing loop: Postfix and Exim give up on a loop (5.4.6), but the route is at fault, "
                    "not the address"),
)

# -- SMTP reply codes (RFC 5321), for reports that show no enhanced code ----------------

# Reply code -> (subject.detail it implies, why); any other 4xx/5xx gives X.0.0. The class is the
# code's first digit; words in the reply that name a reason (the phrase table) give the detail.
REPLY_CODES: dict[int, tuple[str, str]] = {
    421: ("3.2", "service not available, closing the channel"),
    450: ("2.0", "mailbox unavailable (busy or blocked for now)"),
    451: ("3.0", "local error in processing"),
    452: ("3.1", "insufficient system storage"),
    550: ("0.0", "mailbox unavailable (not found, no access, or refused by policy)"),
    551: ("1.6", "user not local: the address has moved"),
    552: ("2.2", "exceeded storage allocation: mailbox full"),
    553: ("1.3", "mailbox name not allowed"),
    554: ("0.0", "transaction failed"),
}


# -- Words ------------------------------------------------------------------------------


class Phrase(NamedTuple):
    """A row of the phrase table: wording, the status subject.detail it implies, its natural class."""

    pattern: re.Pattern[str]
    detail: str
    natural_class: int | None
    """The class the reason has by nature when nothing else says (None: either class)."""
    why: str


def _phrase(pattern: str, detail: str, natural_class: int | None, why: str) -> Phrase:
    return Phrase(re.compile(pattern, re.IGNORECASE), detail, natural_class, why)


# Checked in order: the specific reasons first, the broad "rejected"/"policy" wording last.
PHRASES: tuple[Phrase, ...] = (
    _phrase(
        r"mail ?loop|hop count|too many hops|loops? back to myself|routing loop|loop (?:alert|detected)"
        r"|is looping|forwarding loop",
        "4.6", 5, "mail loop: the reporter gave up on a loop, a fault of the route, not the address",
    ),
    _phrase(
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
        r"|not a known user|user not found|recipient not found|no such address"
        # The same in the languages notices are most often written in besides English.
        r"|(?:benutzer|empf[aä]nger|adresse|postfach)\W{0,3}(?:ist )?unbekannt"
        r"|unbekannte[rn]? (?:empf[aä]nger|benutzer)"
        r"|existiert nicht|(?:utilisateur|destinataire|adresse) inconnu|n'existe pas"
        r"|(?:usuario|destinatario|direcci[oó]n) desconocid|(?:utente|destinatario|indirizzo) sconosciut"
        r"|onbekende? (?:gebruiker|ontvanger|adres)|(?:usu[aá]rio|destinat[aá]rio) desconhecid",
        "1.1", 5, "user unknown / no such user: the mailbox does not exist",
    ),
    _phrase(
        r"mail ?box (?:is )?full|mail ?folder is full|(?:is|was) full\b|over ?quota|quota (?:exceeded|full)"
        r"|exceeded (?:his |her |their |the )?(?:storage |disk |mailbox )?quota|(?:mailbox|disk|storage) quota"
        r"|exceeded storage|storage allocation|mailbox size limit|insufficient (?:disk|storage) space"
        r"|not enough (?:disk |storage )?space|full mailbox|user is over"
        r"|(?:postfach|mailbox|speicher)\W{0,3}(?:ist )?(?:voll|[uü]berf[uü]llt)"
        r"|bo[iî]te (?:aux lettres )?(?:est )?pleine"
        r"|buz[oó]n (?:est[aá] )?lleno|casella (?:di posta )?(?:[eè] )?piena|(?:mailbox|postvak) (?:is )?vol\b"
        r"|caixa (?:postal )?(?:est[aá] )?(?:cheia|lotada)",
        "2.2", None, "mailbox full / over quota: the mailbox exists and takes mail once emptied (soft)",
    ),
    _phrase(
        r"message (?:is )?too (?:large|big)|too (?:large|big) for|message size|size limit"
        r"|exceeds? (?:the )?(?:maximum |max )?(?:allowed )?(?:message )?size|message length exceeds",
        "3.4", 5, "message too large: refused for good at this size",
    ),
    _phrase(
        r"has moved|no forwarding address|moved permanently|changed (?:his|her|their) address",
        "1.6", 5, "moved, no forwarding address",
    ),
    _phrase(
        r"(?:account|mailbox|user|address|recipient)\b.{0,30}\b(?:disabled|suspended|deactivated"
        r"|inactive|locked|discontinued|closed|frozen|terminated|cancell?ed)|account (?:has )?expired"
        r"|(?:disabled|suspended|inactive|deactivated|closed) (?:user|account|mailbox|recipient|address)",
        "2.1", 5, "mailbox disabled or closed",
    ),
    _phrase(
        r"host (?:not found|unknown)|unknown host|(?:domain|host)(?: name)? (?:not found|does not exist"
        r"|unknown)|no such domain|unrouteable (?:mail )?domain|dns (?:lookup )?(?:failure|error)"
        r"|name service error|no mx\b|non-?existent (?:domain|host)|nxdomain|bad destination system"
        r"|domain (?:is )?(?:not|no longer) (?:valid|registered)",
        "1.2", 5, "domain not found: no mail host for the address",
    ),
    _phrase(
        r"address (?:syntax|format)|syntax (?:error|is invalid) in (?:address|recipient)|bad address syntax",
        "1.3", 5, "bad address syntax",
    ),
    _phrase(
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)|not permitted to relay"
        r"|(?:do not|don't|cannot|will not|unable to) relay|no relaying",
        "7.1", 5, "relay denied: the host does not take mail for this address",
    ),
    _phrase(
        r"reverse dns|reverse (?:lookup|domain)|ptr record|\brdns\b|no ptr|ptr lookup",
        "7.25", 5, "refused for our reverse DNS (a policy block)",
    ),
    _phrase(r"\bdmarc\b", "7.26", 5, "refused by DMARC policy"),
    _phrase(r"\bspf\b", "7.23", 5, "refused by SPF policy"),
    _phrase(
        r"timed? ?out|expired|retry time|(?:in|on) (?:the )?queue too long|too long (?:in|on) (?:the )?queue"
        r"|could not deliver for|not delivered within|giving up|delivery time|retries exceeded"
        r"|delivery failed \d+ attempts|undeliverable for",
        "4.7", 4, "expired after retries / timed out: says nothing about the mailbox",
    ),
    _phrase(
        r"connection (?:refused|reset|closed|lost|dropped|failed)|no route to host|unable to connect"
        r"|could not connect|cannot connect|socket error|network (?:is )?unreachable"
        r"|host (?:is )?(?:down|unreachable)|not responding|requests to connect|no answer",
        "4.1", 4, "could not connect: a network fault, not the mailbox",
    ),
    _phrase(
        r"spam|black ?list|block ?list|\brbl\b|dnsbl|blocked|junk|reputation|banned|denied|refused"
        r"|not (?:authorized|allowed|permitted)|prohibited|virus|malware|policy",
        "7.1", 5, "spam / policy block: refused by the receiver's policy",
    ),
    # Postfix's "Recipient address rejected:" prefixes every reason; alone it means "unknown".
    _phrase(
        r"mailbox unavailable|mailbox not available|recipient rejected|address rejected",
        "1.1", 5, "recipient rejected: the mailbox is refused",
    ),
    _phrase(r"rejected", "7.1", 5, "rejected: refused by the receiver"),
)

# The notice saying outright whether it gave up or will retry: (pattern, class or "delayed", why).
_STATED_ROWS: tuple[tuple[str, int | Literal["delayed"], str], ...] = (
    (
            r"permanent(?:ly)? (?:fatal )?(?:delivery )?(?:error|failure)|fatal (?:delivery )?errors?"
            r"|failed permanently|permanently (?:failed|rejected|undeliverable)|(?:is|was) a permanent"
            r"|not going to try again|will not (?:be )?retr(?:y|ied)|no further (?:delivery )?attempts",
            5, "'permanent error', 'PERMANENT fatal delivery errors': the reporter gave up for good",
        ),
        (
            r"has been delayed|delivery (?:has been |is )?delayed|not yet been delivered|warning message only"
            r"|will (?:be retried|retry|continue to try|keep trying)|delivery attempts will continue"
            r"|still (?:trying|being retried)",
            "delayed", "'delayed', 'will retry': a warning, the reporter is still trying",
        ),
        (
            r"temporar|try again|try later|retry later|please retry|deferr|grey ?list|gray ?list"
            r"|too many connections|too many (?:concurrent|simultaneous)|rate limit|rate-limit|throttl"
            r"|resources? (?:temporarily )?unavailable|system (?:is )?busy",
            4, "'temporary', 'try again later', greylisting, rate limits: a transient failure",
        ),
)
STATED: tuple[tuple[re.Pattern[str], int | Literal["delayed"], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), verdict, why) for pattern, verdict, why in _STATED_ROWS
)

# -- Provider labels: a hint, weighed only when the report has no code ---------------------

# "provider:label" (lower-case) -> class 4, 5, "delayed", or None (says nothing).
PROVIDER_HINTS: dict[str, int | Literal["delayed"] | None] = {
    "ses:permanent": 5,
    "ses:transient": 4,
    "ses:undetermined": None,  # SES could not tell: the text decides, else "unknown"
    "ses:deliverydelay": "delayed",
    "postmark:hardbounce": 5,
    "postmark:bademailaddress": 5,
    "postmark:softbounce": 4,
    "postmark:dnserror": 4,
    "postmark:blocked": 5,
    "postmark:transient": "delayed",  # Postmark: "message delayed", it keeps trying
    "sendgrid:bounce": 5,
    "sendgrid:blocked": 4,
    "sendgrid:deferred": "delayed",
    "sendgrid:dropped": 5,
    "mailgun:permanent": 5,
    "mailgun:temporary": "delayed",  # Mailgun retries; its final give-up is a permanent failure
    "api:hard": 5,
    "api:soft": 4,
}


# -- Finding codes in text ----------------------------------------------------------------


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


def phrase_of(text: str) -> Phrase | None:
    """The first row of the phrase table that ``text`` matches, or None."""
    text = text[:_REASON_REACH]
    for phrase in PHRASES:
        if phrase.pattern.search(text):
            return phrase
    return None


def phrase_detail(text: str) -> str | None:
    """The "subject.detail" ("1.1") that the wording of ``text`` implies, or None."""
    phrase = phrase_of(text)
    return phrase.detail if phrase else None


def stated(text: str) -> tuple[int | Literal["delayed"], str] | None:
    """What the notice says outright (class 5, class 4 or a delay), with why; None if it does not."""
    text = text[:_REASON_REACH]
    for pattern, verdict, why in STATED:
        if pattern.search(text):
            return verdict, why
    return None


def status_class(status: str | None) -> int | None:
    """The class digit of a status code (5 for "5.1.1"), or None."""
    if status and status[:1] in ("2", "4", "5"):
        return int(status[0])
    return None


def refine(status: str, text: str) -> str:
    """A generic code (X.0.0, or X.Y.0) made specific by what the words say, when they agree."""
    cls, subject, detail = status.split(".")
    phrase = phrase_of(text)
    if phrase is None or detail != "0":
        return status
    if subject == "0" or phrase.detail.split(".")[0] == subject:
        return f"{cls}.{phrase.detail}"
    return status


# -- The decision -----------------------------------------------------------------------


def classify(finding: Finding) -> Verdict | None:
    """What ``finding`` is (see the module docstring for the order of the rules); None for no failure."""
    if finding.complaint:
        return Verdict("complaint", None, "complaint report")
    if finding.action == "delivered":
        return None
    diagnostic = finding.diagnostic or ""
    text = "\n".join(t for t in (diagnostic, finding.text or "") if t)[:_REASON_REACH]
    declared = _valid_status(finding.status)
    in_text = find_status(text)
    if status_class(declared) == 2:
        return None
    hint = PROVIDER_HINTS.get((finding.hint or "").lower())
    said = stated(text)
    reply_code = finding.reply_code if finding.reply_code and 400 <= finding.reply_code <= 599 else None
    reply_code = reply_code or find_reply_code(text)
    # A reporter's "delayed" stands, unless its own text for this recipient shows a permanent
    # refusal (a 550 in a Sendmail warning that also deferred another host).
    shown = status_class(in_text) or (reply_code // 100 if reply_code else None)
    if (finding.action == "delayed" or (hint == "delayed" and status_class(declared) != 5)) and (
        declared is not None or shown != 5
    ):
        return Verdict("delayed", _delay_status(declared or in_text, text), "the reporter is still trying (delayed)")
    phrase = phrase_of(text)

    cls: int | None
    rule: str
    status: str | None = None
    if declared is not None:
        cls, rule, status = int(declared[0]), "declared status code", declared
    elif in_text is not None:
        cls, rule, status = int(in_text[0]), "status code in the text", in_text
    elif reply_code is not None:
        cls, rule = reply_code // 100, f"SMTP reply code {reply_code}"
        status = f"{cls}.{phrase.detail if phrase else REPLY_CODES.get(reply_code, ('0.0', ''))[0]}"
    elif said is not None and said[0] == 5:
        cls, rule = 5, said[1]
    elif said is not None and said[0] == "delayed":
        return Verdict("delayed", _delay_status(None, text), said[1])
    elif finding.action == "failed":
        cls, rule = 5, "the reporter says delivery failed"
    elif isinstance(hint, int):
        cls, rule = hint, f"provider label {finding.hint}"
    elif said is not None:
        cls, rule = 4, said[1]
    elif phrase is not None and phrase.natural_class is not None:
        cls, rule = phrase.natural_class, phrase.why
    elif phrase is not None:  # mailbox full, with nothing saying the class
        return Verdict("soft", f"4.{phrase.detail}", phrase.why)
    else:
        return Verdict("unknown", None, "no rule matched: kept for review")
    status = refine(status or f"{cls}.0.0", text)
    kind = _kind_of(status)
    if kind == "hard" and phrase is not None and phrase.detail == "2.2" and status.split(".")[1] != "1":
        # "5.x.x ... mailbox full": the words say why, and a full mailbox is temporary by nature;
        # only a code that names the address itself (X.1.x) outranks them.
        return Verdict("soft", status, phrase.why)
    return Verdict(kind, status, rule)


def _delay_status(status: str | None, text: str) -> str:
    """The status of a delay warning: the one reported, else 4.X.X from its words."""
    return status or f"4.{phrase_detail(text) or '0.0'}"


def _kind_of(status: str) -> Kind:
    """hard or soft for a 4.x.x / 5.x.x status, by its class and the subject table."""
    if status[0] == "5":
        subject = status.split(".", 1)[1]
        for prefix, kind, _why in SUBJECTS:
            if subject == prefix or subject.startswith(prefix + "."):
                return kind
    by_class = STATUS_CLASSES[int(status[0])][0]
    return by_class if by_class is not None else "unknown"


def _valid_status(status: str | None) -> str | None:
    """``status`` when it is an RFC 3463 code, else None."""
    match = _STATUS_RE.fullmatch(status.strip()) if status else None
    return match.group(0) if match else None
