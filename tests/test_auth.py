"""API keys: hashed storage, scopes, 401/403, the CLI."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import cli
from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY


def _cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    monkeypatch.setenv("LETTERBOX_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("LETTERBOX_SECRET_KEYS", settings.secret_keys[0])
    monkeypatch.setenv("LETTERBOX_LOG_FORMAT", "console")
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


async def test_missing_or_bad_key_is_401_with_problem_json(client: AsyncTestClient[Litestar]) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer lbk_deadbeef_wrongsecret"}):
        response = await client.get("/v1/lists", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["detail"]


async def test_bootstrap_key_is_admin(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/v1/lists", json={"slug": "news", "name": "News"},
                                 headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"})
    assert response.status_code == 201, response.text


def test_cli_keys_are_hashed_scoped_and_revocable(
    settings: Settings, app: Litestar, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(settings, monkeypatch, capsys, "api-key", "create", "--name", "renderer", "--scope", "subscribers:read")
    assert code == 0
    token = out.strip()
    assert token.startswith("lbk_")

    async def check() -> None:
        conn = await asyncpg.connect(settings.database_url)
        row = await conn.fetchrow("SELECT prefix, secret_hash, scopes FROM api_keys")
        await conn.close()
        assert row is not None and token not in str(dict(row))
        assert row["secret_hash"] == hashlib.sha256(token.split("_", 2)[2].encode()).digest()
        assert row["scopes"] == ["subscribers:read"]
        async with AsyncTestClient(app) as client:
            auth = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/v1/lists", headers=auth)).status_code == 200
            forbidden = await client.post("/v1/lists", json={"slug": "x", "name": "X"}, headers=auth)
            assert forbidden.status_code == 403
            assert "admin" in forbidden.json()["detail"]

    asyncio.run(check())

    code, out = _cli(settings, monkeypatch, capsys, "api-key", "list")
    assert code == 0 and "renderer" in out and "active" in out
    code, _ = _cli(settings, monkeypatch, capsys, "api-key", "revoke", token.split("_")[1])
    assert code == 0

    async def revoked() -> None:
        async with AsyncTestClient(app) as client:
            response = await client.get("/v1/lists", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401

    asyncio.run(revoked())
    code, _ = _cli(settings, monkeypatch, capsys, "api-key", "create", "--name", "x", "--scope", "everything")
    assert code == 2
