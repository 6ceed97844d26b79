"""Contract fuzzing: every operation of openapi.yaml against a real ``letterbox serve`` process.

Schemathesis generates valid and invalid requests from the committed file (not
from the app, so the file itself is what is checked) and sends them, with the

bootstrap admin key, to a server on a free port with its own database holding
a little real data.  Every answer must be below 500 and conform to the file:
a documented status code, its content type and its body schema.

Random ids and tokens almost never name a real row, so the hooks below swap
in, some of the time, the id of a seeded reader, a real list or segment slug,
or a correctly signed link (and form CSRF field): then the fuzzed bodies reach
the database instead of stopping at a 404 or a refused link.

Bounded so that CI stays quick and reproducible: a fixed number of examples per
operation, derandomized.  Nothing is excluded: operations that cannot succeed
under fuzzing (provider webhooks need signatures, the import is a stream) still
have to answer a documented 4xx.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.links import Links
from service.settings import Settings
from service.subscribers import csrf
from service.tokens import Purpose, TokenSigner
from tests.conftest import BOOTSTRAP_KEY, SECRET, _with_database
from tests.support.processes import Served
from tests.support.seed import seed_readers
from tests.support.smtp import free_port

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

SPEC = Path(__file__).resolve().parents[1] / "openapi.yaml"
ADMIN = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# CI's budget; raise it (and unset derandomize by setting a seed) to hunt further: LETTERBOX_CONTRACT_EXAMPLES=500.
EXAMPLES_PER_OPERATION = int(os.environ.get("LETTERBOX_CONTRACT_EXAMPLES", "25"))

schema = schemathesis.openapi.from_path(SPEC)
# The streamed import reads text; a raw mail (message/rfc822) is bytes, generated as binary (the text
# serializer sends a generated binary value as an empty body). tests/test_schemathesis.py registers the same.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
schemathesis.serializer.alias("message/rfc822", "application/octet-stream")

# Real values, by (path template, parameter): filled in by the server fixture once the data exists.
REAL_PATH_VALUES: dict[tuple[str, str], list[Any]] = {}
# Real form fields, by path template (a valid CSRF token for the form).
REAL_FORM_FIELDS: dict[str, dict[str, str]] = {}


@schema.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any] | None) -> Any:
    """Sometimes name a real row or carry a real signed link instead of the generated value."""
    assert context.operation is not None
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    choices = {
        name: st.sampled_from([value, *REAL_PATH_VALUES.get((context.operation.path, name), [])])
        for name, value in path_parameters.items()
    }
    return st.fixed_dictionaries(choices)


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> Any:
    """Sometimes carry a valid CSRF token in a public form, so the form's fields get checked."""
    assert context.operation is not None
    fields = REAL_FORM_FIELDS.get(context.operation.path)
    if not fields or not isinstance(body, dict):
        return st.just(body)
    return st.sampled_from([body, {**body, **fields}])


@pytest.fixture(scope="module")
async def contract_database(postgres_admin_dsn: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this module's server: lists, agencies, roles and four readers."""
    name = f"letterbox_contract_{os.getpid()}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        url = _with_database(postgres_admin_dsn, name)
        await seed_readers(url, 3)  # agencies, roles, lists news and training, three active readers
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


async def _ids(database_url: str) -> tuple[list[int], dict[str, int]]:
    conn = await asyncpg.connect(database_url)
    try:
        readers = [r["id"] for r in await conn.fetch("SELECT id FROM subscribers ORDER BY id")]
        lists = {r["slug"]: r["id"] for r in await conn.fetch("SELECT slug, id FROM lists")}
        return readers, lists
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def contract_server(contract_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """``letterbox serve --no-worker`` on a free port; an edition, a segment and a suppression posted through it."""
    settings = Settings(
        database_url=contract_database,
        secret_keys=(SECRET,),
        # An existing folder: the Maildir outbox, which a proof writes to, is made inside it, not its parents.
        var_dir=str(tmp_path_factory.mktemp("contract")),
        public_url="https://news.example.org",
        from_addr="Partnership News <news@example.org>",
    )
    server = Served(settings, "--no-worker", port=free_port(), bootstrap_api_key=BOOTSTRAP_KEY)
    try:
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.base_url, headers=ADMIN) as http:
            edition = await http.post(
                "/v1/editions",
                json={"subject": "Contract briefing", "html": "<p>Hello {{name}}</p>", "lists": ["news"]},
                headers={"Idempotency-Key": "contract-1"},
            )
            assert edition.status_code == 202, edition.text
            segment = await http.post("/v1/segments", json={
                "slug": "police", "name": "Police", "lists": ["news"],
                "filter": {"field": "agency", "op": "eq", "value": "police"},
            })
            assert segment.status_code == 201, segment.text
            bounce = await http.post("/v1/bounces", json={"email": "reader3@example.org", "kind": "hard"})
            assert bounce.status_code == 200, bounce.text
        _remember_real_values(settings, *await _ids(contract_database), edition.json()["id"])
        yield server
    finally:
        server.stop()
        REAL_PATH_VALUES.clear()
        REAL_FORM_FIELDS.clear()
    assert "unhandled_error" not in server.log(), server.log()[-5000:]


def _remember_real_values(settings: Settings, readers: list[int], lists: dict[str, int], edition_id: int) -> None:
    signer = TokenSigner(settings.secret_keys)
    links = Links(settings, signer)
    first, *_, pending = readers
    REAL_PATH_VALUES.update({
        ("/confirm/{token}", "token"): [signer.sign(Purpose.CONFIRM, pending)],
        ("/unsubscribe/{token}", "token"): [
            links.unsubscribe_token(first, lists["news"], edition_id),
            links.unsubscribe_token(readers[1], None, None),
        ],
        ("/preferences/{token}", "token"): [signer.sign(Purpose.PREFERENCES, first)],
        ("/v1/lists/{slug}", "slug"): list(lists),
        ("/v1/segments/{slug}", "slug"): ["police"],
        ("/v1/suppressions/{email}", "email"): ["reader3@example.org"],
        ("/v1/webhooks/{provider}", "provider"): ["ses", "postmark", "sendgrid", "mailgun"],
    })
    for path in ("/v1/subscribers/{subscriber_id}", "/v1/subscribers/{subscriber_id}/export"):
        REAL_PATH_VALUES[(path, "subscriber_id")] = readers
    for action in ("", "/pause", "/resume", "/cancel", "/deliveries"):
        REAL_PATH_VALUES[(f"/v1/editions/{{edition_id}}{action}", "edition_id")] = [edition_id]
    REAL_FORM_FIELDS.update({
        "/subscribe": {csrf.FIELD: csrf.issue(signer, csrf.Form.SUBSCRIBE)},
        "/preferences/{token}": {csrf.FIELD: csrf.issue(signer, csrf.Form.PREFERENCES, first)},
    })


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_every_operation_keeps_the_contract(case: schemathesis.Case[Any], contract_server: Served) -> None:
    case.call_and_validate(base_url=contract_server.base_url, headers=ADMIN, checks=CHECKS, timeout=30)


async def test_the_server_serves_the_committed_schema(contract_server: Served) -> None:
    # The problem responses are added as routes register (service/problem_docs.py), so both agree.
    async with httpx.AsyncClient(base_url=contract_server.base_url) as http:
        served = await http.get("/schema/openapi.json")
    assert served.status_code == 200
    assert served.json() == yaml.safe_load(SPEC.read_text())


JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}
NUL_TEXT = "cannot be stored (NUL"


@pytest.mark.parametrize(
    ("method", "path", "request_args", "status", "detail"),
    [
        # PostgreSQL text cannot hold U+0000: a clear 422 (it used to say "out of range or malformed").
        ("POST", "/v1/agencies", {"json": {"slug": "nul", "name": "a\u0000b"}}, 422, NUL_TEXT),
        ("POST", "/v1/subscriptions", {"json": {"email": "odd@example.org", "lists": ["news"],
                                                "attributes": {"note": "a\u0000b"}}}, 422, NUL_TEXT),
        ("GET", "/v1/subscribers?q=%00", {}, 422, NUL_TEXT),
        # Ids are bigints: a larger one is refused before any query (it used to reach PostgreSQL), and the
        # largest is documented exactly (it used to be written as the float 2**63, which the route refuses).
        ("GET", "/v1/subscribers/9223372036854775808", {}, 422, "subscriber_id"),
        ("DELETE", "/v1/subscribers/9223372036854775808", {}, 422, "subscriber_id"),
        ("GET", "/v1/subscribers/9223372036854775807", {}, 404, None),
        ("GET", "/v1/editions/9223372036854775808", {}, 422, "edition_id"),
        ("GET", "/v1/editions/9223372036854775807", {}, 404, None),
        ("POST", "/v1/lists", {"content": b"\xff\xfe{", "headers": JSON}, 400, "malformed"),
        ("POST", "/v1/lists", {"content": b"", "headers": JSON}, 422, None),
        ("POST", "/v1/lists", {"json": {"slug": "x", "name": "y", "public": "yes"}}, 422, "public"),
    ],
)
async def test_odd_input_is_a_clear_problem(contract_server: Served, method: str, path: str,
                                            request_args: dict[str, Any], status: int, detail: str | None) -> None:
    async with httpx.AsyncClient(base_url=contract_server.base_url, headers=ADMIN) as http:
        response = await http.request(method, path, **request_args)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status
    assert detail is None or detail in response.json()["detail"], response.json()


async def test_a_nul_in_one_imported_row_refuses_that_row_only(contract_server: Served) -> None:
    rows = b'{"email": "fine@example.org", "lists": ["news"]}\n' \
           b'{"email": "odd@example.org", "lists": ["news"], "attributes": {"note": "a\\u0000b"}}\n'
    async with httpx.AsyncClient(base_url=contract_server.base_url, headers=ADMIN) as http:
        response = await http.post("/v1/subscribers/import", content=rows, headers=NDJSON)
    assert response.status_code == 200, response.text
    assert response.json()["created"] + response.json()["updated"] == 1
    assert [i["line"] for i in response.json()["invalid"]] == [2]
    assert "NUL" in response.json()["invalid"][0]["detail"]
