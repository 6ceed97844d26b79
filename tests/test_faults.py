"""Faults survived with real processes and servers: a failing SMTP server, a stopped and restarted PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from service.app import create_app
from service.db.embedded import EmbeddedPostgres
from service.db.pool import ensure_database, open_database
from service.runtime import runtime_of
from service.settings import Settings
from service.tokens import Purpose, TokenSigner
from tests.conftest import replace_settings
from tests.editions.test_posting import edition
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow


async def _states(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {r["status"]: r["n"] for r in await conn.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY 1")}
    finally:
        await conn.close()


async def _until_all_sent(url: str, total: int, within: float = 60) -> None:
    for _ in range(int(within / 0.1)):
        try:
            if (await _states(url)).get("sent") == total:
                return
        except (OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"not all sent: {await _states(url)}")


async def test_smtp_outage_mid_edition_delays_but_loses_and_repeats_nothing(
    settings: Settings, smtp_sink: SmtpSink, admin_headers: dict[str, str]
) -> None:
    total = 200
    emails = await seed_readers(settings.database_url or "", total)
    fast = replace_settings(settings, retry_base_seconds=0.05, retry_max_seconds=0.3, send_max_attempts=50)
    app = create_app(fast)
    smtp_sink.delay = 0.003
    async with AsyncTestClient(app) as client:
        response = await client.post("/v1/editions", json=edition(), headers={**admin_headers, "Idempotency-Key": "f"})
        assert response.status_code == 202
        async with running_worker(app, fast):
            await smtp_sink.wait_for(40)
            smtp_sink.default_reply = "451 4.3.0 Mail server temporarily overloaded"
            await asyncio.sleep(0.4)
            smtp_sink.default_reply = None
            smtp_sink.dropping = True
            await asyncio.sleep(0.4)
            smtp_sink.default_reply = "421 4.3.2 Service shutting down"
            smtp_sink.dropping = False
            await asyncio.sleep(0.4)
            smtp_sink.default_reply = None
            await _until_all_sent(fast.database_url or "", total)
    copies = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert set(copies) == set(emails)
    assert max(copies.values()) == 1
    states = await _states(settings.database_url or "")
    assert states == {"sent": total}


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, since the test restarts it."""
    root = Path(tempfile.mkdtemp(prefix="letterbox-restart-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root / "postgres", durable=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def restartable_url(own_postgres: EmbeddedPostgres) -> str:
    """A migrated database on the test's own server."""
    await ensure_database(own_postgres.dsn(), "letterbox")
    url = own_postgres.dsn("letterbox")
    db = await open_database(url, pool_size=2)
    await db.close()
    return url


async def test_postgres_restart_mid_edition(
    settings: Settings, smtp_sink: SmtpSink, admin_headers: dict[str, str],
    own_postgres: EmbeddedPostgres, restartable_url: str,
) -> None:
    total = 300
    emails = await seed_readers(restartable_url, total)
    ours = replace_settings(settings, database_url=restartable_url)
    app = create_app(ours)
    smtp_sink.delay = 0.004
    async with AsyncTestClient(app) as client:
        response = await client.post("/v1/editions", json=edition(), headers={**admin_headers, "Idempotency-Key": "pg"})
        assert response.status_code == 202
        async with running_worker(app, ours):
            await smtp_sink.wait_for(60)
            await asyncio.to_thread(own_postgres.stop)
            outage = await client.get("/readyz")
            assert outage.status_code == 503
            assert outage.headers["content-type"].startswith("application/problem+json")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(own_postgres.start)
            await _until_all_sent(restartable_url, total)
            ready = await client.get("/readyz")
            assert ready.status_code == 200
    copies = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert set(copies) == set(emails), "nothing lost"
    assert max(copies.values()) == 1, "nothing sent twice"


async def test_postgres_outage_is_a_503_with_one_warning_and_heals(
    settings: Settings, admin_headers: dict[str, str], own_postgres: EmbeddedPostgres, restartable_url: str,
) -> None:
    await seed_readers(restartable_url, 1)
    app = create_app(replace_settings(settings, database_url=restartable_url))
    unsubscribe = "/unsubscribe/" + TokenSigner(settings.secret_keys).sign(Purpose.UNSUBSCRIBE, 1, None, None)
    async with AsyncTestClient(app, base_url="https://news.example.org") as client:
        assert (await client.get("/v1/lists", headers=admin_headers)).status_code == 200
        assert (await client.get("/subscribe")).status_code == 200
        await asyncio.to_thread(own_postgres.stop)
        with capture_logs() as logs:
            for _ in range(3):
                api = await client.get("/v1/lists", headers=admin_headers)
                assert api.status_code == 503, api.text
                assert api.headers["content-type"].startswith("application/problem+json")
                assert api.headers["retry-after"] == "5"
                assert api.json()["status"] == 503
                for page in (await client.get("/subscribe"), await client.post(unsubscribe)):
                    assert page.status_code == 503, page.text
                    assert page.headers["content-type"].startswith("text/html")
                    assert page.headers["retry-after"] == "5"
                    assert "Service unavailable" in page.text
            assert (await client.get("/readyz")).status_code == 503
        loud = [entry for entry in logs if entry["log_level"] in ("warning", "error", "critical")]
        assert [entry["event"] for entry in loud] == ["database_unavailable"], loud
        assert not any("exc_info" in entry for entry in logs), "no traceback per request"

        await asyncio.to_thread(own_postgres.start)
        statuses = [(await client.get("/v1/lists", headers=admin_headers)).status_code for _ in range(3)]
        assert statuses[-1] == 200, statuses
        assert (await client.get("/subscribe")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


async def test_a_connection_cut_mid_request_is_a_503_not_a_500(
    client: AsyncTestClient[Litestar], app: Litestar, admin_headers: dict[str, str]
) -> None:
    # The server ends this request's own connection mid-statement, as a crash or failover would;
    # closing the transaction then finds the connection closed too.
    for name in ("list-all", "form-choices"):
        runtime_of(app.state).db.q._queries[name] = "SELECT pg_terminate_backend(pg_backend_pid())"
    response = await client.get("/v1/lists", headers=admin_headers)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    page = await client.get("/subscribe")
    assert page.status_code == 503, page.text
    assert page.headers["content-type"].startswith("text/html") and "Service unavailable" in page.text
