"""The types every package's request and response bodies are built from: slugs, row ids, names, ``Input``.

With them, the patterns openapi.yaml states for what the code checks beyond the types (see
service/request_schemas.py, which writes the request bodies' schemas from these annotations).

Each package keeps its own bodies (``service/*/schemas.py``). Inputs forbid unknown fields so a
misspelt field is a 422, not silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.params import PathParameter, QueryParameter
from msgspec import Meta

# Patterns the document states for checks made in code.  Each accepts at least what the code accepts (the
# code may refuse more: it stays the final word), in the regular expressions JSON Schema and Python share.
# White space the code strips before it checks may hold control characters, and Python's str.strip()
# removes a little more than JSON Schema's \s: \x1c-\x1f and \x85.
CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"  # what service/mail/compose.py and validation.py refuse
STRIPPED = r"[\s\x1c-\x1f\x85]*"  # what str.strip() removes
STRIPPED_ONE_LINE = r"(?:[^\S\r\n]|[\x1c-\x1f\x85])*"  # what one_line() lets through, then strips
NO_NUL = r"^[^\x00]*$"
"""Text PostgreSQL can store: no U+0000."""
ONE_LINE = rf"^[^{CONTROL}]*$"
"""A header value as the composer checks it: no control character anywhere (CR, LF, tab, NUL, ...)."""
PERSON_NAME = rf"^{STRIPPED}[^{CONTROL}]{{0,200}}{STRIPPED}$"
"""A display name as ``clean_name`` checks it: at most 200 characters and no control character, once stripped."""
HEADER_NAME = rf"^{STRIPPED_ONE_LINE}[^{CONTROL}]*{STRIPPED_ONE_LINE}$"
"""A name put in a header as ``one_line`` and the composer check it: no CR or LF, no other control once stripped."""
_SPECIAL_USE = "|".join(
    "".join(f"[{c.upper()}{c}]" for c in name) for name in ("arpa", "invalid", "local", "localhost", "onion", "test")
)
SPECIAL_USE = rf"[.@](?:{_SPECIAL_USE})\s*$"
"""An address at a special-use domain mail cannot go to (RFC 6761): email-validator refuses these."""

STORABLE_JSON: dict[str, Any] = {
    "$ref": "#/$defs/StorableJson",
    "$defs": {
        "StorableJson": {
            "description": "any JSON value whose texts (keys too) PostgreSQL can store: no U+0000",
            "anyOf": [
                {"type": "string", "pattern": NO_NUL},
                {"type": ["number", "boolean", "null"]},
                {"type": "array", "items": {"$ref": "#/$defs/StorableJson"}},
                {
                    "type": "object",
                    "propertyNames": {"pattern": NO_NUL},
                    "additionalProperties": {"$ref": "#/$defs/StorableJson"},
                },
            ],
        }
    },
}
"""A JSON object's member values as jsonb takes them (the ``holds_nul`` check in validation.py)."""

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Slug = Annotated[str, Meta(pattern=SLUG, description="lower-case letters, digits, - and _")]
Name = Annotated[str, Meta(min_length=1, max_length=200, extra_json_schema={"pattern": NO_NUL})]
Description = Annotated[str, Meta(max_length=2000, extra_json_schema={"pattern": NO_NUL})]
# The address check is the code's (service/subscribers/validation.py: email-validator, no DNS). The schema
# states the format, which covers international addresses (EAI local parts, IDN domains), and a pattern
# only for what that format allows and the code refuses.
Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=320,
        description="an e-mail address, international ones too (EAI, IDN), not at a special-use domain "
        "(.test, .invalid, .localhost, ...); surrounding white space is ignored",
        extra_json_schema={"format": "idn-email", "not": {"pattern": SPECIAL_USE}},
    ),
]

# A slug in a path or a query: documented, not checked by Litestar, so an unknown one keeps its own answer
# (404 for the row in the path, 422 naming the filter in a query).
SlugPath = Annotated[str, PathParameter(description="a slug", schema_extra={"pattern": SLUG})]
EmailPath = Annotated[str, PathParameter(description="an e-mail address", schema_extra={"format": "idn-email"})]


def slug_query(description: str, *, name: str | None = None) -> QueryParameter:
    """A query parameter naming an agency, role or list by slug; an unknown one is a 422."""
    return QueryParameter(name=name, description=description, schema_extra={"pattern": SLUG})


# The Idempotency-Key header as documented; service/editions/posting.py checks it (a 400 when it is
# missing, blank, too long or not printable). Documented, not enforced here, so its 400 stays.
IDEMPOTENCY_KEY: dict[str, Any] = {
    "required": True,
    "description": "any printable text, at most 200 characters: a retried post with the same key is not sent twice",
    "schema_extra": {
        "oneOf": None,
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "pattern": r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
    },
}
# A row id in a path: a positive PostgreSQL bigint, so a larger number is a 422 before any query.  The bounds
# are repeated as schema_extra because Litestar writes them into openapi.yaml as floats, and 2**63 - 1 as a
# float is 2**63: an id the route would refuse.
BIGINT_MAX = 2**63 - 1
RowId = Annotated[int, PathParameter(ge=1, le=BIGINT_MAX, schema_extra={"minimum": 1, "maximum": BIGINT_MAX})]


def some_change(*names: str, null_is_a_change: tuple[str, ...] = ()) -> dict[str, Any]:
    """A PATCH body's ``json_schema_extra``: at least one of ``names`` is given, and not null unless
    null itself is a change (``"filter": null`` removes a filter); the handler answers 422 otherwise."""
    return {
        "anyOf": [
            {"required": [name]} if name in null_is_a_change
            else {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
            for name in names
        ]
    }


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies."""
