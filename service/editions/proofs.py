"""Proofs: up to ten copies of an edition-to-be, composed exactly as edition copies and sent at once.

A proof goes through the same ``prepare``/``render`` as every edition copy, with
the same headers and DKIM signature, plus ``X-Letterbox-Proof: yes``.  It writes
no edition and no delivery: the only row it touches is its API key's counter
in ``rate_limits``.  Its unsubscribe link (and its preferences and view links,
which have no reader or edition behind them) opens the unsubscribe page marked as
a proof, where pressing the button changes nothing.  Bounces of a proof go to the
From address, since there is no copy for the bounce receiver to count them against.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Annotated

import asyncpg
import msgspec
from msgspec import Meta

from ..auth import Principal
from ..db.pool import Database
from ..delivery.dkim_keys import DkimKeys
from ..delivery.transport import Outcome, make_transport
from ..errors import LetterboxError, Unprocessable
from ..links import Links
from ..mail.addresses import UnsendableAddress, wire_address
from ..mail.compose import HeaderInjectionError, Personalisation
from ..schemas import HEADER_NAME, Email
from ..settings import Settings
from ..subscribers.ratelimit import Limit, hit
from ..subscribers.validation import normalise_email
from .composition import compose_posted, one_line
from .schemas import From, ReplyTo, Subject

MAX_RECIPIENTS = 10
PROOF_HEADER = b"X-Letterbox-Proof: yes\r\n"
# 30 proof requests per key per 10 minutes: plenty for an editor checking drafts, too few for a mailing.
LIMIT = Limit("proof-key", 30, 600)


class ProofIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A draft edition and the few addresses that should see it first."""

    subject: Subject
    html: Annotated[str, Meta(min_length=1)]
    text: str | None = None
    from_: From | None = msgspec.field(default=None, name="from")
    reply_to: ReplyTo | None = None
    to: Annotated[list[Email], Meta(min_length=1, max_length=MAX_RECIPIENTS)]
    name: Annotated[
        str,
        Meta(
            max_length=200, description="what {{name}} becomes in the proof", extra_json_schema={"pattern": HEADER_NAME}
        ),
    ] = ""


class ProofSent(msgspec.Struct, kw_only=True):
    """The addresses the relay accepted a proof for."""

    sent_to: list[str]


class TooManyProofs(LetterboxError):
    """This API key, or console user, sent its share of proofs for now."""

    status_code = 429


class RelayRefused(LetterboxError):
    """The mail relay refused a proof (its reply is in the detail)."""

    status_code = 502


class RelayUnreachable(LetterboxError):
    """The mail relay could not be reached or dropped the connection."""

    status_code = 503


def _recipients(addresses: list[str]) -> list[str]:
    """Each address in its normal form, or a 422 naming the one that is not an address."""
    found: list[str] = []
    for index, raw in enumerate(addresses):
        address = normalise_email(one_line(f"to[{index}]", raw), field=f"to[{index}]")
        if address.lower() not in (a.lower() for a in found):
            found.append(address)
    return found


def compose_proofs(body: ProofIn, settings: Settings, links: Links) -> tuple[str, list[tuple[str, bytes]]]:
    """The envelope sender and every copy, ready to send; 422 for anything the composer refuses.

    All copies are composed before any is sent, so a bad address sends nothing.
    """
    from_addr = one_line("from", body.from_ or settings.from_addr)
    one_line("name", body.name)
    recipients = _recipients(body.to)
    try:
        envelope_from = wire_address(parseaddr(from_addr)[1])
    except UnsendableAddress as exc:
        raise Unprocessable(f"'from' cannot be used for mail: {exc}.") from None
    mail, domain = compose_posted(body, from_addr, settings)
    token = links.proof_unsubscribe_token()
    proof_page = links.unsubscribe_url(token)
    try:
        copies = [
            (
                wire_address(address),
                PROOF_HEADER
                + mail.render(
                    Personalisation(
                        to_email=address,
                        to_name=body.name.strip(),
                        unsubscribe_url=proof_page,
                        unsubscribe_mailto=links.unsubscribe_mailto(token),
                        preferences_url=proof_page,
                        message_id="",
                        view_url=proof_page,
                    )
                ),
            )
            for address in recipients
        ]
    except (HeaderInjectionError, UnsendableAddress) as exc:
        raise Unprocessable(f"The proof cannot be composed as posted: {exc}.") from None
    dkim = DkimKeys.from_settings(settings)
    if dkim is not None:
        try:
            copies = [(rcpt, dkim.sign(message, domain)) for rcpt, message in copies]
        except ValueError as exc:
            raise Unprocessable(f"The proof cannot be DKIM-signed for '{domain}': {exc}.") from None
    return envelope_from, copies


def _failure(recipient: str, outcome: Outcome, sent_to: list[str]) -> LetterboxError:
    extra = {"sent_to": sent_to, "relay_reply": outcome.reply}
    if outcome.code is None and not outcome.permanent:
        return RelayUnreachable(f"The mail relay could not be reached to send the proof to {recipient}: "
                                f"{outcome.reply}", extra=extra, headers={"Retry-After": "60"})
    return RelayRefused(f"The mail relay refused the proof to {recipient}: {outcome.reply}", extra=extra)


def api_requester(principal: Principal) -> str:
    """Whose share of proofs an API call spends: its key's."""
    return f"key:{principal.key_id if principal.key_id is not None else principal.name}"


async def send_proofs(conn: asyncpg.Connection, db: Database, settings: Settings, links: Links,
                      requester: str, now: float, body: ProofIn) -> ProofSent:
    """Check ``requester``'s rate limit, compose every copy, then send them one by one through the relay.

    ``requester`` names whose share of proofs this spends: an API key (:func:`api_requester`)
    or a console user.
    """
    envelope_from, copies = compose_proofs(body, settings, links)
    wait = await hit(conn, db.q, LIMIT, f"proof-{requester}", now)
    if wait is not None:
        raise TooManyProofs(f"{LIMIT.hits} proofs were sent this way in the last {LIMIT.window_seconds // 60} "
                            f"minutes; try again in {wait} seconds.", headers={"Retry-After": str(wait)})
    sent_to: list[str] = []
    transport = make_transport(settings)
    try:
        for recipient, message in copies:
            outcome = await transport.send(envelope_from, recipient, message)
            if not outcome.accepted:
                raise _failure(recipient, outcome, sent_to)
            sent_to.append(recipient)
    finally:
        await transport.close()
    return ProofSent(sent_to=sent_to)
