"""Accounts: the ``letterbox user`` commands, Argon2id hashes, the sign-in throttle, no user enumeration."""

from __future__ import annotations

import asyncio
import io
import random
import time

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import cli
from service.settings import Settings
from tests.support.console import PASSWORD, csrf_token, make_user, sign_in

Client = AsyncTestClient[Litestar]


def _cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str,
         stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setenv("LETTERBOX_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("LETTERBOX_SECRET_KEYS", settings.secret_keys[0])
    monkeypatch.setenv("LETTERBOX_LOG_FORMAT", "console")
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_user_commands_create_list_and_disable(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(settings, monkeypatch, capsys, "user", "create", "--email", "Comms@Example.org", "--role",
                        "editor", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, out
    assert "created comms@example.org (editor)" in out
    code, out, _ = _cli(settings, monkeypatch, capsys, "user", "list")
    assert code == 0
    assert "comms@example.org\teditor\tactive\tlast sign-in never" in out
    code, out, _ = _cli(settings, monkeypatch, capsys, "user", "disable", "comms@example.org")
    assert code == 0
    code, out, _ = _cli(settings, monkeypatch, capsys, "user", "list")
    assert "comms@example.org\teditor\tdisabled" in out

    async def stored() -> str:
        conn = await asyncpg.connect(settings.database_url)
        try:
            hashed: str = await conn.fetchval("SELECT password_hash FROM users")
            return hashed
        finally:
            await conn.close()

    hashed = asyncio.run(stored())
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), "RFC 9106's low-memory choice, not a test's light one"
    assert PASSWORD not in hashed


def test_user_create_refuses_bad_input(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(settings, monkeypatch, capsys, "user", "create", "--email", "a@example.org", "--role",
                        "viewer", "--password-stdin", stdin="short\n")
    assert code == 2
    assert "at least 12 characters" in err
    code, _, err = _cli(settings, monkeypatch, capsys, "user", "create", "--email", "not-an-address", "--role",
                        "viewer", "--password-stdin", stdin=PASSWORD)
    assert code == 2
    assert "not an e-mail address" in err
    with pytest.raises(SystemExit) as exited:
        _cli(settings, monkeypatch, capsys, "user", "create", "--email", "a@example.org", "--role", "owner")
    assert exited.value.code == 2
    assert _cli(settings, monkeypatch, capsys, "user", "create", "--email", "a@example.org", "--role", "viewer",
                "--password-stdin", stdin=PASSWORD)[0] == 0
    code, _, err = _cli(settings, monkeypatch, capsys, "user", "create", "--email", "A@example.org", "--role",
                        "admin", "--password-stdin", stdin=PASSWORD)
    assert code == 1
    assert "already an account" in err
    code, _, err = _cli(settings, monkeypatch, capsys, "user", "disable", "nobody@example.org")
    assert code == 1
    assert "no account" in err


async def _attempt(client: Client, email: str, password: str) -> tuple[int, str]:
    page = await client.get("/console/sign-in")
    response = await client.post("/console/sign-in", data={"email": email, "password": password,
                                                            "csrf": csrf_token(page.text)})
    return response.status_code, response.text


async def test_failures_slow_the_account_down(client: Client, settings: Settings) -> None:
    await make_user(settings, "ed@example.org", "editor")
    await make_user(settings, "other@example.org", "viewer")
    for _ in range(5):
        assert (await _attempt(client, "ed@example.org", "wrong password!"))[0] == 400
    status, text = await _attempt(client, "ed@example.org", PASSWORD)
    assert status == 429  # even the right password must wait now
    assert "Too many failed attempts" in text
    assert (await _attempt(client, "other@example.org", PASSWORD))[0] == 303  # another account is not held up
    client.cookies.clear()
    conn = await asyncpg.connect(settings.database_url)
    try:
        blocked = await conn.fetchval("SELECT blocked_until - now() FROM sign_in_failures WHERE key = $1",
                                      "account:ed@example.org")
        assert 20 < blocked.total_seconds() <= 30  # the first wait is 30 s, doubling from there
        await conn.execute("UPDATE sign_in_failures SET blocked_until = now() WHERE key = 'account:ed@example.org'")
    finally:
        await conn.close()
    assert (await _attempt(client, "ed@example.org", PASSWORD))[0] == 303


async def test_failures_slow_the_client_address_down(client: Client, settings: Settings) -> None:
    await make_user(settings, "ed@example.org", "editor")
    for n in range(20):
        assert (await _attempt(client, f"guess{n}@example.org", "wrong password!"))[0] == 400
    assert (await _attempt(client, "ed@example.org", PASSWORD))[0] == 429


async def test_unknown_email_and_wrong_password_get_the_same_answer(client: Client, settings: Settings) -> None:
    await make_user(settings, "ed@example.org", "editor")
    await make_user(settings, "gone@example.org", "editor")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("UPDATE users SET disabled = true WHERE email = 'gone@example.org'")
    finally:
        await conn.close()
    answers = [await _attempt(client, email, password) for email, password in (
        ("ed@example.org", "wrong password!"), ("nobody@example.org", "wrong password!"),
        ("gone@example.org", PASSWORD))]
    assert {status for status, _ in answers} == {400}
    bodies = {text.replace(csrf_token(text), "").replace(email, "") for (_, text), email in
              zip(answers, ("ed@example.org", "nobody@example.org", "gone@example.org"), strict=True)}
    assert len(bodies) == 1


@pytest.mark.slow
async def test_unknown_email_takes_as_long_as_a_wrong_password(client: Client, settings: Settings) -> None:
    """Rank comparison, as tests/test_timing_oracle.py: without the dummy hash an unknown address answers
    in about a millisecond against Argon2id's tens, and P(known slower) is 1.0; with it, about 0.5."""
    await make_user(settings, "ed@example.org", "editor", light=False)  # the dummy hash's own cost
    plan = [("ed@example.org", "known"), ("nobody@example.org", "unknown")] * 20
    random.Random(15).shuffle(plan)
    took: dict[str, list[float]] = {"known": [], "unknown": []}
    conn = await asyncpg.connect(settings.database_url)
    try:
        for email, side in plan:
            await conn.execute("DELETE FROM sign_in_failures")  # the throttle must not answer instead
            page = await client.get("/console/sign-in")
            started = time.perf_counter()
            response = await client.post("/console/sign-in", data={"email": email, "password": "wrong password!",
                                                                    "csrf": csrf_token(page.text)})
            took[side].append(time.perf_counter() - started)
            assert response.status_code == 400
    finally:
        await conn.close()
    wins = sum((a > b) + 0.5 * (a == b) for a in took["known"] for b in took["unknown"])
    assert 0.2 < wins / 400 < 0.8


async def test_sign_in_records_last_sign_in(client: Client, settings: Settings) -> None:
    await make_user(settings, "ed@example.org", "editor")
    await sign_in(client, "ed@example.org")
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT last_sign_in_at IS NOT NULL FROM users") is True
    finally:
        await conn.close()


async def test_old_failure_windows_are_forgotten_on_a_sign_in(client: Client, settings: Settings) -> None:
    await make_user(settings, "ed@example.org", "editor")
    assert (await _attempt(client, "typo@example.org", "wrong password!"))[0] == 400
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("UPDATE sign_in_failures SET window_start = now() - interval '16 minutes'")
        await sign_in(client, "ed@example.org")
        assert await conn.fetchval("SELECT count(*) FROM sign_in_failures") == 0
    finally:
        await conn.close()
