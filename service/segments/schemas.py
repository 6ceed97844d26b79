"""Request and response bodies of the segments API.

The filter arrives as raw JSON and is checked by ``parse_filter``, so that a
fault is reported with its JSON path inside the filter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..schemas import Input, Name, Slug

ListSlugs = Annotated[list[Slug], Meta(min_length=1, max_length=100, description="slugs of mailing lists")]
RawFilter = Annotated[
    dict[str, object],
    Meta(description='{"all": […]}, {"any": […]}, {"not": {…}} or {"field", "op", "value"}; see DESIGN.md'),
]


class PreviewIn(Input):
    """Who would receive an edition: lists and an optional filter, or a saved segment."""

    lists: ListSlugs | None = None
    filter: RawFilter | None = None
    segment: Slug | None = None


class Preview(msgspec.Struct, kw_only=True):
    """The number of people an edition would reach now."""

    recipients: int


class SegmentIn(Input):
    """A segment to save: lists and an optional filter under a name."""

    slug: Slug
    name: Name
    lists: ListSlugs
    filter: RawFilter | None = None


class SegmentPatch(Input):
    """Changes to a segment; absent fields stay as they are, ``"filter": null`` removes the filter."""

    name: Name | None = None
    lists: ListSlugs | None = None
    filter: RawFilter | UnsetType | None = UNSET


class Segment(msgspec.Struct, kw_only=True):
    """A saved segment."""

    slug: str
    name: str
    lists: list[str]
    filter: dict[str, object] | None
    created_at: datetime
    updated_at: datetime
