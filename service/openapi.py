"""The OpenAPI document, generated from the app (``letterbox openapi``; checked by a test)."""

from __future__ import annotations

import yaml

from .app import create_app
from .settings import Settings

# Placeholder values: building the app touches neither the database nor the keys.
_SCHEMA_SETTINGS = Settings(database_url="postgresql://schema-only/", secret_keys=("schema-only-not-a-secret",))


def render_openapi() -> str:
    """The app's OpenAPI document as YAML, keys in the app's order."""
    schema = create_app(_SCHEMA_SETTINGS).openapi_schema.to_schema()
    return yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=100)
