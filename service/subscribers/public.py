"""The subscription form and the confirmation page: double opt-in, read top to bottom.

``POST /subscribe`` answers the same "check your inbox" page whether the
address is new, pending, active or suppressed, so the form cannot be used to
find out who reads the newsletter.  It also takes the same time: the request
does only what is the same for every address (the form, the rate limits, a
check that a confirmation could be written to it) and the decision (new,
pending, already active, suppressed: see :mod:`.signups`) is made once the
answer has gone.  ``GET /confirm/{token}`` only shows a button: mail scanners
follow links, and they must not subscribe anyone.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import MediaType, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from ..errors import BadRequest, InvalidValue
from ..problem_docs import PROBLEMS
from ..runtime import Runtime
from ..settings import Settings
from ..taxonomy.choices import FORM_CHOICES, Choices
from ..tokens import Purpose, TokenSigner
from . import csrf, lifecycle, ratelimit, signups
from .forms import HONEYPOT, WORDING_VERSION, Entered, FieldError, check_subscribe, entered
from .lifecycle import Actor
from .openapi_bodies import SUBSCRIBE_FORM
from .web import AnyRequest, FilledPage, FormRefused, LinkExpired, client_key, form_text, page, read_token

log = structlog.get_logger(__name__)
TAGS = ["public pages"]
REFUSED = "This form has expired or did not come from this site. Please reload the form and try again."


@get("/subscribe", tags=TAGS, summary="The subscription form", media_type=MediaType.HTML)
async def subscribe_form(request: AnyRequest, runtime: NamedDependency[Runtime]) -> Response[bytes]:
    """The form: address, name, organisation, role, and one checkbox per public list."""
    # Only the runtime as a dependency, here and on the other public pages: Litestar resolves two or
    # more dependencies in an anyio task group, a tenth of a page's cost.
    choices = await runtime.kept.get(FORM_CHOICES, runtime.db.pool, runtime.db.q)
    token = csrf.issue(runtime.signer, csrf.Form.SUBSCRIBE)
    return _BLANK_FORM.response(request, choices, lambda: _form_context(choices, Entered(), [], FilledPage.SLOT),
                                token)


@post("/subscribe", tags=TAGS, summary="Ask to subscribe (form post)", status_code=200, media_type=MediaType.HTML,
      operation_class=SUBSCRIBE_FORM, opt={PROBLEMS: (403, 429)})
async def subscribe_submit(request: AnyRequest, runtime: NamedDependency[Runtime]) -> Response[bytes]:
    """Check the form and start double opt-in; the answer never says whether the address is known.

    One statement, committed on its own (a counted attempt stays counted): the limits and the record
    together, with the other sign-ups this process is answering now (:func:`signups.record_soon`).
    The form is checked against the choices the process keeps, as the form was drawn from them.
    """
    db, settings, signer = runtime.db, runtime.settings, runtime.signer
    form = await request.form()
    if not csrf.passes(signer, form_text(form.get(csrf.FIELD)), csrf.Form.SUBSCRIBE,
                       request=request):
        raise FormRefused(REFUSED)
    if form_text(form.get(HONEYPOT)):
        # A bot filled the field people cannot see: tell it what it wants to hear, do nothing.
        log.info("subscribe_honeypot")
        return _CHECK_INBOX.response(request, (), dict)

    now = runtime.clock()
    choices = await runtime.kept.get(FORM_CHOICES, db.pool, db.q)
    values = entered(form)
    sign_up, errors = check_subscribe(values, choices)
    if sign_up is None:
        # A form in error counts against its client too: a script posting rubbish is still a script.
        wait = await ratelimit.hit(db.pool, db.q, ratelimit.per_client(settings),
                                   ratelimit.client_bucket(client_key(request)), now)
        if wait is not None:
            return _too_many(request, wait)
        return _form(request, signer, choices, values, errors, status=400)

    try:
        signups.check_mailable(sign_up)
    except InvalidValue as exc:
        raise BadRequest(str(exc)) from exc
    consenting = Actor.of_request(request, "form", WORDING_VERSION)
    recorded = await signups.record_soon(runtime.groups, signups.Attempt(sign_up, consenting, client_key(request), now))
    if recorded.request_id is None:
        assert recorded.retry_after is not None, "a sign-up not recorded was refused by a limit"
        return _too_many(request, recorded.retry_after)
    answer = _CHECK_INBOX.response(request, (), dict)
    # Decided once the answer has gone (its record is already committed); see signups.py.
    answer.background = BackgroundTask(signups.decide, runtime.groups, recorded.request_id)
    return answer


@get("/confirm/{token:str}", tags=TAGS, summary="The confirmation page (shows a button)", opt={PROBLEMS: (410,)})
async def confirm_page(
    request: AnyRequest,
    token: FromPath[str],
    settings: NamedDependency[Settings],
    signer: NamedDependency[TokenSigner],
) -> Template:
    """Check the link and show the confirm button; following the link alone changes nothing."""
    read_token(signer, Purpose.CONFIRM, token, fields=1, max_age=settings.confirm_max_age_seconds)
    return page(request, "confirm.html", token_page=True)


@post("/confirm/{token:str}", tags=TAGS, summary="Confirm a subscription (the button)", status_code=200,
      media_type=MediaType.HTML, opt={PROBLEMS: (410,)})
async def confirm_submit(
    request: AnyRequest, token: FromPath[str], runtime: NamedDependency[Runtime]
) -> Response[bytes]:
    """Confirm every pending list of the person; pressing the button again is harmless.

    One statement, with the other confirmations this process is recording now (group commit).
    """
    settings, signer = runtime.settings, runtime.signer
    (subscriber_id,) = read_token(signer, Purpose.CONFIRM, token, fields=1,
                                  max_age=settings.confirm_max_age_seconds)
    assert subscriber_id is not None, "read_token checks the first field"
    if not await lifecycle.confirm_soon(runtime.groups, subscriber_id,
                                        Actor.of_request(request, "link", WORDING_VERSION)):
        raise LinkExpired("This link no longer works.")
    preferences_url = runtime.links.preferences_url(subscriber_id)
    return _CONFIRMED.response(request, _CONFIRMED_SOURCE, _confirmed_context, preferences_url)


# The answer to every sign-up, the same whatever the address (drawn once; see FilledPage).
_CHECK_INBOX = FilledPage("check_inbox.html")
# The blank form, drawn once per set of choices (see FilledPage).
_BLANK_FORM = FilledPage("subscribe.html")
# The answer to a confirmation, drawn once from nothing but the template; the reader's own preferences
# link goes in the slot.
_CONFIRMED = FilledPage("confirmed.html", token_page=True)
_CONFIRMED_SOURCE = ()


def _confirmed_context() -> dict[str, Any]:
    return {"preferences_url": FilledPage.SLOT}


def _form_context(choices: Choices, values: Entered, errors: list[FieldError], token: str) -> dict[str, Any]:
    return {
        "choices": choices,
        "values": values,
        "errors": errors,
        "field_errors": {e.field: e.message for e in errors},
        "csrf_field": csrf.FIELD,
        "csrf_token": token,
        "honeypot": HONEYPOT,
    }


def _form(request: AnyRequest, signer: TokenSigner, choices: Choices, values: Entered,
          errors: list[FieldError], *, status: int = 200) -> Template:
    context = _form_context(choices, values, errors, csrf.issue(signer, csrf.Form.SUBSCRIBE))
    return page(request, "subscribe.html", context, status=status)


def _too_many(request: AnyRequest, wait: int) -> Template:
    # Returned, not raised: the attempt that was counted must stay counted.
    minutes = max(1, round(wait / 60))
    return page(request, "too_many.html", {"minutes": minutes}, status=429, headers={"Retry-After": str(wait)})
