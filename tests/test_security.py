"""Every /v1 route refuses a missing key (401) and a key without its scope (403); failures leak nothing."""

from __future__ import annotations

import re

import asyncpg
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from service.auth import SCOPES, generate_key
from service.runtime import runtime_of
from service.settings import Settings

Client = AsyncTestClient[Litestar]
# Providers cannot send our bearer key; these routes verify the provider's own signature instead.
UNAUTHENTICATED_V1 = re.compile(r"^/v1/webhooks/")


def _v1_operations(app: Litestar) -> list[tuple[str, str, str]]:
    """(method, concrete path, scope) for every /v1 operation of the app."""
    operations: list[tuple[str, str, str]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1/"):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method in {"HEAD", "OPTIONS"}:
                    continue
                path = re.sub(r"\{[^}:]+:int\}", "1", route.path)
                path = re.sub(r"\{[^}:]+(:[a-z]+)?\}", "x", path)
                operations.append((str(method), path, str(handler.opt.get("scope", "admin"))))
    return operations


async def _key_with(settings: Settings, scopes: list[str]) -> str:
    key = generate_key()
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO api_keys (name, prefix, secret_hash, scopes) VALUES ('t', $1, $2, $3)",
            key.prefix, key.secret_hash, scopes,
        )
    finally:
        await conn.close()
    return key.token


async def test_every_v1_route_needs_a_key_and_its_scope(client: Client, app: Litestar, settings: Settings) -> None:
    operations = _v1_operations(app)
    assert len(operations) >= 10, operations
    guarded = [op for op in operations if not UNAUTHENTICATED_V1.match(op[1])]
    for method, path, scope in guarded:
        missing = await client.request(method, path)
        assert missing.status_code == 401, (method, path, missing.status_code, missing.text)
        assert missing.headers["content-type"].startswith("application/problem+json")
        others = [s for s in SCOPES if s not in (scope, "admin")]
        token = await _key_with(settings, others)
        refused = await client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403, (method, path, scope, refused.status_code, refused.text)
        assert scope in refused.json()["detail"]


async def test_webhook_routes_without_a_valid_signature_are_401(client: Client, app: Litestar) -> None:
    hooks = [op for op in _v1_operations(app) if UNAUTHENTICATED_V1.match(op[1])]
    for method, path, _ in hooks:
        for provider in ("ses", "postmark", "sendgrid", "mailgun"):
            concrete = path.replace("/x", f"/{provider}")
            response = await client.request(method, concrete, content=b"{}", headers={"Content-Type": "application/json"})
            assert response.status_code == 401, (concrete, response.status_code)


async def test_an_internal_failure_is_a_bare_500(client: Client, app: Litestar, admin_headers: dict[str, str]) -> None:
    # Break a query after start-up, as a bad deploy or a dropped column would.
    queries = runtime_of(app.state).db.q._queries
    queries["list-all"] = "SELECT definitely_not_a_column FROM lists"
    response = await client.get("/v1/lists", headers=admin_headers)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    text = response.text.lower()
    for leak in ("definitely_not_a_column", "select", "asyncpg", "traceback", "postgres", "column"):
        assert leak not in text, leak


@pytest.mark.parametrize("path", ["/v1/lists", "/v1/editions"])
async def test_request_bodies_are_capped(client: Client, admin_headers: dict[str, str], settings: Settings, path: str) -> None:
    body = b"{" + b" " * settings.max_body_bytes + b"}"
    response = await client.post(path, content=body, headers={**admin_headers, "Content-Type": "application/json",
                                                              "Idempotency-Key": "big"})
    assert response.status_code == 413
