"""The public forms' fields: reading them, checking them, and saying what is wrong in plain words.

Errors come back as a list in page order, each pointing at the field it is
about, for the error summary at the top of the page and the message beside
the field.
"""

from __future__ import annotations

import msgspec
from litestar.datastructures import FormMultiDict

from ..db.pool import Executor
from ..db.queries import Queries
from ..errors import InvalidValue
from ..taxonomy.choices import Choices, read_choices
from ..taxonomy.terms import ListRef
from .lifecycle import Details, SignUp
from .validation import clean_name, normalise_email
from .web import form_text

# Bump when the consent statement in templates/_consent.html changes: consent
# records name the wording the person saw.
WORDING_VERSION = "subscribe-form-1"
HONEYPOT = "website"


class FieldError(msgspec.Struct, frozen=True):
    """One problem with one field; ``anchor`` is the id of the control to jump to."""

    field: str
    anchor: str
    message: str


class Entered(msgspec.Struct, frozen=True):
    """The form as the person filled it in, to show back when something is wrong."""

    email: str = ""
    name: str = ""
    agency: str = ""
    role: str = ""
    lists: tuple[str, ...] = ()


async def load_choices(db: Executor, q: Queries, *, extra_lists: list[ListRef] | None = None) -> Choices:
    """Agencies, roles and public lists read now (plus ``extra_lists``: non-public lists someone is already on).

    One statement.  The subscription form's page keeps its choices instead (``FORM_CHOICES``).
    """
    choices = await read_choices(db, q)
    return choices.with_lists(extra_lists) if extra_lists else choices


def entered(form: FormMultiDict) -> Entered:
    """Read the fields (as text, whatever was sent)."""
    return Entered(
        email=form_text(form.get("email")),
        name=form_text(form.get("name")),
        agency=form_text(form.get("agency"), 100),
        role=form_text(form.get("role"), 100),
        lists=tuple(form_text(v, 100) for v in form.getall("lists", [])[:100]),
    )


def check_subscribe(values: Entered, choices: Choices) -> tuple[SignUp | None, list[FieldError]]:
    """A sign-up ready for :func:`lifecycle.subscribe`, or the problems to show."""
    errors: list[FieldError] = []
    email = ""
    try:
        email = normalise_email(values.email)
    except InvalidValue as exc:
        errors.append(FieldError("email", "email", str(exc)))
    details, detail_errors = _check_details(values, choices)
    errors += detail_errors
    lists, list_errors = _check_lists(values, choices, at_least_one=True)
    errors += list_errors
    if errors or details is None:
        return None, errors
    return SignUp(email=email, name=details.name, agency=details.agency, role=details.role, lists=lists), []


def check_preferences(values: Entered, choices: Choices) -> tuple[tuple[Details, list[ListRef]] | None,
                                                                   list[FieldError]]:
    """New details and the lists chosen, or the problems to show (no list at all is a fine choice)."""
    details, errors = _check_details(values, choices)
    lists, list_errors = _check_lists(values, choices, at_least_one=False)
    errors += list_errors
    if errors or details is None:
        return None, errors
    return (details, lists), []


def _check_details(values: Entered, choices: Choices) -> tuple[Details | None, list[FieldError]]:
    errors: list[FieldError] = []
    name = ""
    try:
        name = clean_name(values.name)
    except InvalidValue as exc:
        errors.append(FieldError("name", "name", str(exc)))
    if values.agency and values.agency not in {t.slug for t in choices.agencies}:
        errors.append(FieldError("agency", "agency", "Choose an organisation from the list."))
    if values.role and values.role not in {t.slug for t in choices.roles}:
        errors.append(FieldError("role", "role", "Choose a role from the list."))
    if errors:
        return None, errors
    return Details(name=name, agency=values.agency or None, role=values.role or None), []


def _check_lists(values: Entered, choices: Choices, *, at_least_one: bool) -> tuple[list[ListRef], list[FieldError]]:
    by_slug = {ref.slug: ref for ref in choices.lists}
    anchor = f"list-{choices.lists[0].slug}" if choices.lists else "lists"
    if any(slug not in by_slug for slug in values.lists):
        return [], [FieldError("lists", anchor, "Choose lists from those shown.")]
    if at_least_one and not values.lists:
        return [], [FieldError("lists", anchor, "Choose at least one newsletter.")]
    return [by_slug[slug] for slug in dict.fromkeys(values.lists)], []
