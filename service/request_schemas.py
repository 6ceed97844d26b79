"""openapi.yaml's request bodies, written from msgspec's own JSON Schema of the input Structs.

msgspec decodes every JSON request body, so its schema of a Struct is exactly what it enforces:
``additionalProperties: false`` for ``forbid_unknown_fields``, and each ``Meta`` constraint where it
sits, inside list items and ``Optional`` branches too (Litestar's generic Struct schema drops
both, so it promised clients bodies the server refused). What the checking code enforces beyond
msgspec is added to the schema, not to the decoding, so the document says it while the code,
unchanged, stays the final word (with its own messages): ``Meta(extra_json_schema=...)`` on a
field (a pattern, a grammar), and a Struct's ``json_schema_extra`` class variable on the whole
body (a required combination of fields, "at least one change"). A schema may name components of its own
under ``$defs`` (the recursive segment filter); they become components of the document.
Response bodies keep Litestar's schemas: no client is refused by those.
"""

from __future__ import annotations

import functools
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Reference, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

_DEFS = "#/$defs/"
# JSON Schema keyword → Schema attribute, and which keywords hold schemas.
_ATTRIBUTES = {str(f.metadata.get("alias", f.name)): f.name for f in fields(Schema)}
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_VALUES = frozenset({"not", "if", "then", "else", "items", "contains", "additionalProperties", "propertyNames"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})


class RequestBodySchemas(OpenAPISchemaPlugin):
    """Documents request bodies (Structs that forbid unknown fields) by msgspec's schema of them."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        """Structs that forbid unknown fields: the bodies clients send."""
        return (
            not field_definition.is_union
            and field_definition.is_subclass_of(msgspec.Struct)
            and bool(field_definition.type_.__struct_config__.forbid_unknown_fields)
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        """The Struct's component: Litestar's registry entry, filled in from msgspec's schema."""
        struct = field_definition.type_
        _, components = msgspec.json.schema_components([struct], ref_template=_DEFS + "{name}")
        # The registered schema is filled in place: references to it resolve to this component.
        component = schema_creator.schema_registry.get_schema_for_field_definition(field_definition)
        raw = {**components[struct.__name__], **getattr(struct, "json_schema_extra", {})}
        converted = _Converter(schema_creator).schema(raw)
        for attribute in fields(Schema):
            setattr(component, attribute.name, getattr(converted, attribute.name))
        return component


class _Converter:
    """JSON Schema (a dict) → Litestar's spec objects; ``$defs`` become components of the document."""

    def __init__(self, schema_creator: SchemaCreator) -> None:
        self.registry = schema_creator.schema_registry

    def schema(self, raw: dict[str, Any]) -> Schema | Reference:
        for name, definition in raw.get("$defs", {}).items():
            component = self.registry.get_schema_for_field_definition(_component_key(name))
            if component == Schema():  # not filled in yet (it may refer to itself)
                component.title = name
                converted = self.schema(definition)
                for attribute in fields(Schema):
                    if attribute.name != "title":
                        setattr(component, attribute.name, getattr(converted, attribute.name))
        if "$ref" in raw:
            name = str(raw["$ref"]).removeprefix(_DEFS)
            reference = self.registry.get_reference_for_field_definition(_component_key(name))
            if reference is None:
                raise ValueError(f"{raw['$ref']} names no schema under $defs")
            return reference
        values: dict[str, Any] = {}
        for keyword, value in raw.items():
            if keyword == "$defs":
                continue
            if keyword in _SCHEMA_LISTS:
                value = [self.schema(item) for item in value]
            elif keyword in _SCHEMA_MAPS:
                value = {key: self.schema(item) for key, item in value.items()}
            elif keyword in _SCHEMA_VALUES and isinstance(value, dict):
                value = self.schema(value)
            elif keyword == "type":
                value = [OpenAPIType(t) for t in value] if isinstance(value, list) else OpenAPIType(value)
            elif keyword == "format":
                value = OpenAPIFormat(value)
            values[_ATTRIBUTES[keyword]] = value
        return Schema(**values)


@functools.cache
def _component_key(name: str) -> FieldDefinition:
    """The registry's key for the hand-written component ``name``: one stand-in type per name."""
    return FieldDefinition.from_annotation(type(name, (), {"__module__": __name__}))
