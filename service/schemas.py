"""Every JSON request and response body of the API, as msgspec Structs.

Inputs forbid unknown fields so a misspelt field is a 422, not silently ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar.params import PathParameter
from msgspec import Meta

Slug = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="lower-case letters, digits, - and _")]
# A row id in a path: a positive PostgreSQL bigint, so a larger number is a 422 before any query.  The bounds
# are repeated as schema_extra because Litestar writes them into openapi.yaml as floats, and 2**63 - 1 as a
# float is 2**63: an id the route would refuse.
BIGINT_MAX = 2**63 - 1
RowId = Annotated[int, PathParameter(ge=1, le=BIGINT_MAX, schema_extra={"minimum": 1, "maximum": BIGINT_MAX})]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Description = Annotated[str, Meta(max_length=2000)]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies."""


# -- taxonomy: agencies, roles, lists -------------------------------------------


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
