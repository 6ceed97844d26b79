"""A batch of new people as the bodies of three ``COPY`` statements: the people, their lists, their consent records.

An import's batch of people who are all new is written with ``COPY`` (PostgreSQL's
text format) rather than one ``INSERT … SELECT`` over the batch's columns:
``COPY`` fills each heap page with one WAL record instead of a record per
row, and skips the statement's planning, splitting and materialising of the
columns. For 100,000 new people, PostgreSQL's CPU went from 1.9–2.3 s to
1.4 s (``service/subscribers/importer.py`` sends the statements).

Values are checked before they get here (:mod:`service.subscribers.importer`):
no value holds a tab or a line break, which the bodies' shape is checked
against as well, so that a value that did could never shift the columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeVar

PEOPLE_COLUMNS = ("id", "email", "name", "agency", "role", "attributes", "status", "confirmed_at")
"""The columns of :attr:`CopyBodies.people`, in order."""
SUBSCRIPTION_COLUMNS = ("list_id", "subscriber_id", "status")
"""The columns of :attr:`CopyBodies.subscriptions`, in order."""
CONSENT_COLUMNS = ("subscriber_id", "action", "lists", "source")
"""The columns of :attr:`CopyBodies.consents`, in order."""

# COPY's text format: \N is NULL, a backslash is written twice. ``now`` is read by timestamptz's
# input as the transaction's start, what now() gives.
_NULL = "\\N"
_Text = TypeVar("_Text", str, str | None)


class CopyBodies(NamedTuple):
    """The three bodies, and the people they create with the line each came from."""

    people: bytes
    subscriptions: bytes
    consents: bytes
    ids: list[int]
    lines: list[int]


def copy_bodies(ids: Sequence[int | None], lines: Sequence[int], emails: Sequence[str],
                names: Sequence[str | None], agencies: Sequence[str | None], roles: Sequence[str | None],
                attributes: Sequence[str | None], lists: Sequence[str], list_ids: Sequence[str]) -> CopyBodies:
    """The bodies for the rows whose ``ids`` are given (a row with None is left out: a suppressed address).

    The columns are a batch's, one row per address; ``lists`` and ``list_ids`` are array literals
    of slugs and ids (``{a,b}``), one of which each row has at least.
    """
    emails, names, attributes = _escaped(emails), _escaped(names), _escaped(attributes)
    people: list[str] = []
    subscriptions: list[str] = []
    consents: list[str] = []
    created: list[int] = []
    created_lines: list[int] = []
    for person, line, email, name, agency, role, attribute, slugs, numbers in zip(
            ids, lines, emails, names, agencies, roles, attributes, lists, list_ids, strict=True):
        if person is None:
            continue
        created.append(person)
        created_lines.append(line)
        people.append(f"{person}\t{email}\t{name or ''}\t{agency or _NULL}\t{role or _NULL}\t"
                      f"{attribute or '{}'}\tactive\tnow\n")
        subscriptions.extend(f"{number}\t{person}\tconfirmed\n" for number in numbers[1:-1].split(","))
        consents.append(f"{person}\timport\t{slugs}\timport\n")
    bodies = "".join(people), "".join(subscriptions), "".join(consents)
    for body, rows, columns in zip(bodies, (len(people), len(subscriptions), len(consents)),
                                   (PEOPLE_COLUMNS, SUBSCRIPTION_COLUMNS, CONSENT_COLUMNS), strict=True):
        if body.count("\n") != rows or body.count("\t") != rows * (len(columns) - 1):
            raise ValueError("a value of an import batch holds a tab or a line break")
    people_body, subscriptions_body, consents_body = (body.encode() for body in bodies)
    return CopyBodies(people_body, subscriptions_body, consents_body, created, created_lines)


def _escaped(values: Sequence[_Text]) -> Sequence[_Text]:
    """``values`` with each backslash written twice (looked for once per column: most have none)."""
    if not any(value and "\\" in value for value in values):
        return values
    return [value.replace("\\", "\\\\") if value else value for value in values]
