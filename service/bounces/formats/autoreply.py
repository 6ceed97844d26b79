"""RFC 3834 automatic replies (vacation, out-of-office): they prove the address works, so
they are never a bounce."""

from __future__ import annotations

import re
from email.message import Message

from service.bounces.formats.common import content_type, header, iter_parts, part_text

_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:\[?auto(?:matic)?[ -]?(?:reply|response|answer|antwort)\b|auto:|autoreply|out of (?:the )?office"
    r"|away from (?:the|my) (?:office|desk)|away until|on vacation|vacation(?: reply| notice|:)|i am away"
    r"|i'm away|abwesenheit|r[ée]ponse automatique|absence|risposta automatica|fuori sede"
    r"|respuesta autom[áa]tica|automatisch antwoord|afwezig|resposta autom[áa]tica|自動応答|不在)",
    re.IGNORECASE,
)
# Said in the first lines of an out-of-office that carries none of the headers above.
_AUTO_REPLY_BODY = re.compile(
    r"\b(?:i am|i'm|i will be) (?:currently )?(?:out of (?:the )?office|away from|on (?:annual )?leave|on vacation"
    r"|on holiday|travell?ing|not in the office)|this is an automatic(?:ally generated)? (?:reply|response)"
    r"|automatic reply|auto-?reply",
    re.IGNORECASE,
)
_AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-vacation")


def is_auto_reply(msg: Message) -> bool:
    """True when ``msg`` marks itself (or reads) as an automatic reply to a message.

    The caller has ruled out delivery notices first: RFC 3464 asks those to carry
    Auto-Submitted too.
    """
    if header(msg, "auto-submitted").lower().startswith("auto-replied"):
        return True
    if any(header(msg, name) for name in _AUTO_REPLY_HEADERS):
        return True
    if header(msg, "precedence").lower() in ("auto_reply", "auto-reply", "autoreply"):
        return True
    if header(msg, "x-precedence").lower() in ("auto_reply", "auto-reply", "autoreply"):
        return True
    if _AUTO_REPLY_SUBJECT.search(header(msg, "subject")):
        return True
    return bool(_AUTO_REPLY_BODY.search(_opening(msg)))


def _opening(msg: Message) -> str:
    """The first lines of the message's first text part."""
    for part in iter_parts(msg):
        if content_type(part) in ("text/plain", "text/html"):
            return part_text(part)[:1500]
    return ""
