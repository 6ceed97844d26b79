"""What the public forms offer (agencies, roles, public lists), kept by each process until it changes.

The subscription form is drawn on every ``GET /subscribe``; reading its
choices was a round trip and three JSON decodes per page, a third of the
page's cost, for data an operator changes a few times a year.  So each process
keeps them (:data:`FORM_CHOICES` in ``runtime.kept``, service/db/kept.py) until
migration 0012's triggers announce a change to agencies, roles or lists.
"""

from __future__ import annotations

import msgspec

from ..db.kept import Kept
from ..db.pool import Executor
from ..db.queries import Queries
from .terms import ListRef

CHANNEL = "letterbox_form_choices"
"""Notified by migration 0012's triggers, at commit, when agencies, roles or lists change."""


class Option(msgspec.Struct, frozen=True):
    """An agency or role offered on a form."""

    slug: str
    name: str


class Choices(msgspec.Struct, frozen=True):
    """What the forms offer: agencies, roles and lists, from the database."""

    agencies: list[Option]
    roles: list[Option]
    lists: list[ListRef]
    descriptions: dict[int, str]

    def with_lists(self, extra: list[ListRef]) -> Choices:
        """These choices plus ``extra`` lists not among them (non-public lists someone is already on)."""
        known = {ref.id for ref in self.lists}
        added = [ref for ref in extra if ref.id not in known]
        return Choices(self.agencies, self.roles, [*self.lists, *added], self.descriptions) if added else self


class _Offered(msgspec.Struct, frozen=True):
    """A public list as ``form-choices`` returns it."""

    id: int
    slug: str
    name: str
    public: bool
    description: str


async def read_choices(db: Executor, q: Queries) -> Choices:
    """Agencies, roles and public lists, each in name order: one statement."""
    row = await db.fetchrow(q["form-choices"])
    assert row is not None, "a row of three aggregates"
    offered = msgspec.convert(row["lists"], list[_Offered])
    return Choices(
        msgspec.convert(row["agencies"], list[Option]),
        msgspec.convert(row["roles"], list[Option]),
        [ListRef(o.id, o.slug, o.name, o.public) for o in offered],
        {o.id: o.description for o in offered},
    )


FORM_CHOICES: Kept[Choices] = Kept(CHANNEL, read_choices)
"""The forms' choices, as each process keeps them (``runtime.kept``)."""
