"""Resolving the slugs of lists, agencies and roles that requests name: one resolver for every caller."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg
import msgspec

from ..db.queries import Queries
from ..errors import InvalidValue


class ListRef(msgspec.Struct, frozen=True):
    """A mailing list as a subscription or an edition refers to it."""

    id: int
    slug: str
    name: str
    public: bool


async def resolve_lists(
    conn: asyncpg.Connection, q: Queries, slugs: Iterable[str], *, public_only: bool = False
) -> list[ListRef]:
    """The lists named by ``slugs``, in order, duplicates dropped; or :class:`InvalidValue` naming every unknown one.

    ``public_only``: a list hidden from the form does not exist as far as the form is concerned.
    The problem carries ``unknown_lists``, so a client can tell which slugs to fix.
    """
    wanted = list(dict.fromkeys(slugs))
    rows = await conn.fetch(q["lists-by-slugs"], wanted)
    found = {r["slug"]: ListRef(r["id"], r["slug"], r["name"], r["public"]) for r in rows}
    if public_only:
        found = {slug: ref for slug, ref in found.items() if ref.public}
    unknown = [slug for slug in wanted if slug not in found]
    if unknown:
        raise InvalidValue(f"There is no list {_quoted(unknown)}.", extra={"unknown_lists": unknown})
    return [found[slug] for slug in wanted]


async def check_terms(conn: asyncpg.Connection, q: Queries, *, agency: str | None, role: str | None) -> None:
    """Raise :class:`InvalidValue` when the agency or the role is not known."""
    if agency is not None and not await conn.fetchval(q["agency-exists"], agency):
        raise InvalidValue(f"There is no agency '{agency}'.")
    if role is not None and not await conn.fetchval(q["role-exists"], role):
        raise InvalidValue(f"There is no role '{role}'.")


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
