"""The pages a reader reaches from a link in a mail: unsubscribe and preferences.

``POST /unsubscribe/{token}`` is also the RFC 8058 one-click target that mail
clients press: it works with the body ``List-Unsubscribe=One-Click`` (or any
body, or none), needs no cookie and no CSRF field, never redirects, answers
200, and is harmless when repeated.  Unsubscribe links never expire.

A proof (``POST /v1/editions/proof``) carries a token of its own purpose that
names no one: its page opens, marked as a proof, and its button changes nothing.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import MediaType, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Template

from ..db.pool import Database
from ..db.queries import Queries
from ..links import Links
from ..problem_docs import PROBLEMS
from ..runtime import Runtime
from ..taxonomy.choices import Choices
from ..taxonomy.terms import ListRef
from ..tokens import Purpose, TokenInvalid, TokenSigner
from . import csrf, lifecycle
from .forms import Entered, FieldError, check_preferences, entered, load_choices
from .lifecycle import Actor
from .openapi_bodies import PREFERENCES_FORM, UNSUBSCRIBE_FORM
from .web import AnyRequest, FilledPage, FormRefused, LinkExpired, LinkInvalid, form_text, page, read_token

TAGS = ["public pages"]
# The body RFC 8058 has mail clients send.
ONE_CLICK = b"List-Unsubscribe=One-Click"
GONE = "We no longer hold any details for this link: you are not on any of our lists."


@get("/unsubscribe/{token:str}", tags=TAGS, summary="The unsubscribe page (shows a button)")
async def unsubscribe_page(
    request: AnyRequest,
    token: FromPath[str],
    db: NamedDependency[Database],
    signer: NamedDependency[TokenSigner],
) -> Template:
    """Name the list the mail was for and offer the button (and leaving every list)."""
    if _is_proof(signer, token):
        return page(request, "unsubscribe.html", {"whole": True, "proof": True}, token_page=True)
    subscriber_id, list_id, _edition_id = read_token(signer, Purpose.UNSUBSCRIBE, token, fields=3)
    assert subscriber_id is not None, "read_token checks the first field"
    memberships = await db.pool.fetch(db.q["subscriber-memberships"], subscriber_id)
    this_list = next((r["name"] for r in memberships if r["id"] == list_id), None)
    others = sum(1 for r in memberships if r["id"] != list_id and r["status"] != "unsubscribed")
    context = {"list_name": this_list, "other_lists": others, "whole": list_id is None}
    return page(request, "unsubscribe.html", context, token_page=True)


@post("/unsubscribe/{token:str}", tags=TAGS, summary="Unsubscribe at once (the button; RFC 8058 one-click)",
      status_code=200, media_type=MediaType.HTML, operation_class=UNSUBSCRIBE_FORM)
async def unsubscribe_submit(
    request: AnyRequest, token: FromPath[str], runtime: NamedDependency[Runtime]
) -> Response[bytes]:
    """Leave the list the mail was for, or every list when asked; count it against the edition.

    One statement, with the other unsubscribes this process is recording now (group commit).
    """
    # Only the runtime as a dependency: two or more are resolved in an anyio task group (see public.py).
    signer = runtime.signer
    try:
        subscriber_id, list_id, edition_id = read_token(signer, Purpose.UNSUBSCRIBE, token, fields=3)
    except LinkInvalid:
        # Checked second: a proof's link is rare, and every one-click would pay for its failed check.
        if _is_proof(signer, token):
            return page(request, "unsubscribed.html", {"everything": True, "proof": True}, token_page=True)
        raise
    assert subscriber_id is not None, "read_token checks the first field"
    one_click, scope = await _posted(request)
    everything = list_id is None or scope == "all"
    left = await lifecycle.leave_soon(runtime.groups, lifecycle.Leaving(
        subscriber_id, None if everything else list_id, edition_id,
        Actor.of_request(request, "one-click" if one_click else "link")))
    return _unsubscribed(request, runtime.links, subscriber_id, left, everything=everything)


@get("/preferences/{token:str}", tags=TAGS, summary="The preferences page", opt={PROBLEMS: (410,)})
async def preferences_page(
    request: AnyRequest,
    token: FromPath[str],
    conn: NamedDependency[asyncpg.Connection],
    db: NamedDependency[Database],
    signer: NamedDependency[TokenSigner],
) -> Template:
    """Show the person's details and lists, ready to change."""
    (subscriber_id,) = read_token(signer, Purpose.PREFERENCES, token, fields=1)
    assert subscriber_id is not None, "read_token checks the first field"
    person = await conn.fetchrow(db.q["subscriber-get"], subscriber_id)
    if person is None:
        raise LinkExpired(GONE)
    choices, confirmed = await _choices_for(conn, db.q, subscriber_id)
    values = Entered(email=person["email"], name=person["name"], agency=person["agency"] or "",
                     role=person["role"] or "", lists=confirmed)
    return _preferences(request, signer, subscriber_id, choices, values, [])


@post("/preferences/{token:str}", tags=TAGS, summary="Save preferences, or leave every list", status_code=200,
      media_type=MediaType.HTML, operation_class=PREFERENCES_FORM, opt={PROBLEMS: (403, 410)})
async def preferences_submit(
    request: AnyRequest,
    token: FromPath[str],
    conn: NamedDependency[asyncpg.Connection],
    db: NamedDependency[Database],
    links: NamedDependency[Links],
    signer: NamedDependency[TokenSigner],
) -> Response[bytes]:
    """Save name, organisation, role and lists; or, with the other button, leave everything."""
    (subscriber_id,) = read_token(signer, Purpose.PREFERENCES, token, fields=1)
    assert subscriber_id is not None, "read_token checks the first field"
    form = await request.form()
    if not csrf.passes(signer, form_text(form.get(csrf.FIELD)), csrf.Form.PREFERENCES, subscriber_id,
                       request=request):
        raise FormRefused("This form has expired or did not come from this site. Please open the link again.")
    person = await conn.fetchrow(db.q["subscriber-lock"], subscriber_id)
    if person is None:
        raise LinkExpired(GONE)
    if form_text(form.get("action")) == "leave":
        left = await lifecycle.leave(conn, db.q, subscriber_id, None, None, Actor.of_request(request, "link"))
        return _unsubscribed(request, links, subscriber_id, left, everything=True)

    choices, _ = await _choices_for(conn, db.q, subscriber_id)
    values = entered(form)
    values = Entered(email=person["email"], name=values.name, agency=values.agency, role=values.role,
                     lists=values.lists)
    checked, errors = check_preferences(values, choices)
    if checked is None:
        return _preferences(request, signer, subscriber_id, choices, values, errors, status=400)
    details, chosen = checked
    await lifecycle.change_preferences(conn, db.q, subscriber_id, details, choices.lists, chosen,
                                       Actor.of_request(request, "link"))
    choices, confirmed = await _choices_for(conn, db.q, subscriber_id)
    values = Entered(email=person["email"], name=details.name, agency=details.agency or "",
                     role=details.role or "", lists=confirmed)
    return _preferences(request, signer, subscriber_id, choices, values, [], saved=True)


def _is_proof(signer: TokenSigner, token: str) -> bool:
    """Whether the link came in a proof, whose unsubscribe changes nothing."""
    try:
        signer.verify(Purpose.PROOF_UNSUBSCRIBE, token)
    except TokenInvalid:
        return False
    return True


async def _posted(request: AnyRequest) -> tuple[bool, str]:
    """Whether the post is an RFC 8058 one-click, and its ``scope`` field.

    A body that cannot be read counts as an empty form: a one-click post must work whatever body a
    mail client sends.  The body mail clients send is recognised before the form parser runs.
    """
    try:
        if request.content_type[0] == RequestEncodingType.URL_ENCODED and await request.body() == ONE_CLICK:
            return True, ""
        form = await request.form()
    except HTTPException:
        return False, ""
    return form_text(form.get("List-Unsubscribe")) == "One-Click", form_text(form.get("scope"))


async def _choices_for(conn: asyncpg.Connection, q: Queries, subscriber_id: int) -> tuple[Choices, tuple[str, ...]]:
    """Public lists plus any hidden list the person is on, and the slugs they are confirmed on."""
    memberships = await conn.fetch(q["subscriber-memberships"], subscriber_id)
    on = [ListRef(r["id"], r["slug"], r["name"], r["public"]) for r in memberships if r["status"] != "unsubscribed"]
    confirmed = tuple(r["slug"] for r in memberships if r["status"] == "confirmed")
    return await load_choices(conn, q, extra_lists=on), confirmed


def _preferences(request: AnyRequest, signer: TokenSigner, subscriber_id: int, choices: Choices, values: Entered,
                 errors: list[FieldError], *, status: int = 200, saved: bool = False) -> Template:
    context = {
        "choices": choices,
        "values": values,
        "errors": errors,
        "field_errors": {e.field: e.message for e in errors},
        "csrf_field": csrf.FIELD,
        "csrf_token": csrf.issue(signer, csrf.Form.PREFERENCES, subscriber_id),
        "saved": saved,
    }
    return page(request, "preferences.html", context, status=status, token_page=True)


def _unsubscribed(request: AnyRequest, links: Links, subscriber_id: int, left: lifecycle.Left | None, *,
                  everything: bool) -> Response[bytes]:
    """The answer to an unsubscribe (``left`` None: the person is no longer on file)."""
    if left is None:
        return page(request, "unsubscribed.html", {"everything": True, "remaining": []}, token_page=True)
    everything = everything or not left.remaining
    remaining = left.remaining

    def context() -> dict[str, Any]:
        return {"everything": everything, "remaining": remaining, "preferences_url": FilledPage.SLOT}

    return _UNSUBSCRIBED.response(request, (everything, remaining), context, links.preferences_url(subscriber_id))


# The answer, drawn once per outcome (every list left, or those still received; see FilledPage).
_UNSUBSCRIBED = FilledPage("unsubscribed.html", token_page=True)
