"""Request bodies for openapi.yaml that Litestar cannot see: forms and the streamed import are read by hand."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

from ..schemas import PERSON_NAME, SLUG, SPECIAL_USE

_TEXT = Schema(type=OpenAPIType.STRING)
_FORM = "application/x-www-form-urlencoded"
# The fields as service/subscribers/forms.py checks them (the same checks as the API's, on text).
_EMAIL = Schema(
    type=OpenAPIType.STRING,
    format=OpenAPIFormat.IDN_EMAIL,
    schema_not=Schema(pattern=SPECIAL_USE),
    description="an e-mail address, international ones too (EAI, IDN)",
)
_NAME = Schema(type=OpenAPIType.STRING, pattern=PERSON_NAME, description="at most 200 characters, one line")
_CHOICE = Schema(
    type=OpenAPIType.STRING,
    pattern=f"^(?:{SLUG[1:-1]})?$",
    description="empty, or the slug of one offered on the form",
)
_LISTS = Schema(
    type=OpenAPIType.ARRAY,
    items=Schema(type=OpenAPIType.STRING, pattern=SLUG),
    description="one value per ticked list (the slug of a list offered on the form)",
)


def with_body(description: str, content: dict[str, Schema], *, required: bool = True) -> type[Operation]:
    """An Operation class that documents ``content`` as the request body."""
    body = RequestBody(
        content={media: OpenAPIMediaType(schema=schema) for media, schema in content.items()},
        description=description,
        required=required,
    )

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return WithBody


def _form(properties: dict[str, Schema | Reference], required: list[str] | None = None) -> dict[str, Schema]:
    return {_FORM: Schema(type=OpenAPIType.OBJECT, properties=properties, required=required)}


SUBSCRIBE_FORM = with_body(
    "The form as a browser posts it; `csrf` comes from the form page, `website` must stay empty.",
    _form(
        {
            "email": _EMAIL,
            "name": _NAME,
            "agency": _CHOICE,
            "role": _CHOICE,
            "lists": Schema(type=OpenAPIType.ARRAY, items=_LISTS.items, min_items=1, description=_LISTS.description),
            "csrf": _TEXT,
            "website": Schema(type=OpenAPIType.STRING, description="honeypot: leave empty"),
        },
        ["email", "lists", "csrf"],
    ),
)
PREFERENCES_FORM = with_body(
    "The preferences form; `action` is `save` (default) or `leave` (every list).",
    _form(
        {
            "name": _NAME,
            "agency": _CHOICE,
            "role": _CHOICE,
            "lists": _LISTS,
            "action": Schema(type=OpenAPIType.STRING, enum=["save", "leave"]),
            "csrf": _TEXT,
        },
        ["csrf"],
    ),
)
UNSUBSCRIBE_FORM = with_body(
    "Anything or nothing: RFC 8058 clients send `List-Unsubscribe=One-Click`; the page's button may add "
    "`scope=all` to leave every list.",
    _form(
        {
            "List-Unsubscribe": Schema(type=OpenAPIType.STRING, enum=["One-Click"]),
            "scope": Schema(type=OpenAPIType.STRING, enum=["all"]),
        }
    ),
    required=False,
)
IMPORT_BODY = with_body(
    "CSV with a header row (`email` required; `name`, `agency`, `role`; `lists` separated by `;` or `|`; "
    "`attributes` as a JSON object; any other column becomes a text attribute), or NDJSON with one object "
    "`{email, name?, agency?, role?, lists: [slug], attributes?}` per line. Streamed; one transaction.",
    {"text/csv": _TEXT, "application/x-ndjson": _TEXT},
)
