"""The types every package's request and response bodies are built from: slugs, row ids, names, ``Input``.

Each package keeps its own bodies (``service/*/schemas.py``). Inputs forbid unknown fields so a
misspelt field is a 422, not silently ignored.
"""

from __future__ import annotations

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
