"""What the two schemathesis suites share: the committed schema, the checks, and a seeded database.

tests/test_contract.py fuzzes every operation with valid and invalid requests; tests/test_schemathesis.py
sends valid ones and counts how many are accepted.  Both run against a real ``letterbox serve``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import BOOTSTRAP_KEY, _with_database
from tests.support.seed import seed_readers

SPEC = Path(__file__).resolve().parents[2] / "openapi.yaml"
ADMIN = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# The streamed import reads text; a raw mail (message/rfc822) is bytes, generated as binary (the text
# serializer would send a generated binary value as an empty body).
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
schemathesis.serializer.alias("message/rfc822", "application/octet-stream")


@asynccontextmanager
async def seeded_database(admin_dsn: str, template: str, name: str, readers: int) -> AsyncIterator[str]:
    """A copy of the migrated template named ``name`` with agencies, roles, the lists ``news`` and
    ``training``, ``readers`` active readers and one pending sign-up; dropped on exit."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        # Identifiers cannot be parameters; both names are the suite's own.
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url = _with_database(admin_dsn, name)
        await seed_readers(url, readers)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO subscribers (email, name, status) VALUES ('pending@example.org', 'Pending', 'pending')"
            )
        finally:
            await conn.close()
        yield url
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
