"""Request and response bodies of ``/v1/agencies``, ``/v1/roles`` and ``/v1/lists``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import msgspec

from ..schemas import Description, Input, Name, Slug, some_change


class TermIn(Input):
    """An agency or a role."""

    slug: Slug
    name: Name


class Term(msgspec.Struct, kw_only=True):
    """An agency or a role as stored."""

    slug: str
    name: str


class ListIn(Input):
    """A new mailing list."""

    slug: Slug
    name: Name
    description: Description = ""
    public: bool = True


class ListPatch(Input):
    """Changes to a list; absent fields stay as they are."""

    json_schema_extra: ClassVar[dict[str, Any]] = some_change("name", "description", "public")

    name: Name | None = None
    description: Description | None = None
    public: bool | None = None


class MailingList(msgspec.Struct, kw_only=True):
    """A mailing list as stored."""

    slug: str
    name: str
    description: str
    public: bool
    created_at: datetime
