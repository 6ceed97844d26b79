"""The bounce receiver's connection cap and idle timeout (issue 12, finding 4).

In-process: the connection over the cap is answered 421 and closed while the others keep
their session; a silent connection is dropped after the idle timeout.  As `serve` runs it:
hundreds of idle connections beyond the cap, more than the process may open files, and the
HTTP API on the same process still answers `/readyz` and the public form.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import resource
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from service.bounces.receiver import BounceReceiver
from service.db.pool import Database, open_database
from service.metrics import Metrics
from service.settings import Settings
from service.tokens import TokenSigner
from tests.conftest import replace_settings
from tests.support.processes import Served
from tests.support.seed import seed_taxonomy
from tests.support.smtp import free_port

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """A pool on the test's own event loop, where the receiver runs."""
    database = await open_database(settings.database_url or "", pool_size=2, run_migrations=False)
    try:
        yield database
    finally:
        await database.close()


async def _connect(port: int | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Open a connection and read the server's first line."""
    assert port is not None, "the receiver is listening"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return reader, writer, await asyncio.wait_for(reader.readline(), 10)


async def test_the_connection_over_the_cap_gets_421_and_is_closed(settings: Settings, db: Database) -> None:
    settings = replace_settings(settings, bounce_smtp_max_connections=3)
    metrics = Metrics()
    async with BounceReceiver(settings, db, TokenSigner(settings.secret_keys), metrics, port=0) as receiver:
        held = [await _connect(receiver.port) for _ in range(3)]
        assert all(greeting.startswith(b"220 ") for _, _, greeting in held)
        reader, writer, greeting = await _connect(receiver.port)
        assert greeting.startswith(b"421 ")
        assert await asyncio.wait_for(reader.read(), 10) == b"", "closed at once"
        writer.close()
        # The held sessions still work, and a freed place is taken again.
        _, first, _ = held[0]
        first.write(b"QUIT\r\n")
        assert (await asyncio.wait_for(held[0][0].readline(), 10)).startswith(b"221 ")
        first.close()
        await asyncio.wait_for(held[0][0].read(), 10)
        for _ in range(100):  # the server sees the close on its next loop turn
            if metrics.bounce_smtp_connections._value.get() == 2:
                break
            await asyncio.sleep(0.01)
        _, again, greeting = await _connect(receiver.port)
        assert greeting.startswith(b"220 ")
        again.close()
        for _, other, _ in held[1:]:
            other.close()
    text = (await metrics.scrape(None)).decode()
    assert "letterbox_bounce_smtp_refused_total 1.0" in text


async def test_a_silent_connection_is_dropped_after_the_idle_timeout(settings: Settings, db: Database) -> None:
    settings = replace_settings(settings, bounce_smtp_idle_timeout_seconds=0.2)
    async with BounceReceiver(settings, db, TokenSigner(settings.secret_keys), Metrics(), port=0) as receiver:
        reader, writer, greeting = await _connect(receiver.port)
        assert greeting.startswith(b"220 ")
        # Without the timeout aiosmtpd would hold it for 300 s; the bound here is far below that.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


async def _hold_connections(port: int, count: int) -> list[asyncio.StreamWriter]:
    """Open ``count`` connections and keep them, whatever the server says; those never accepted are dropped."""

    async def one() -> asyncio.StreamWriter | None:
        with contextlib.suppress(OSError, TimeoutError):
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
            return writer
        return None

    opened = await asyncio.gather(*(one() for _ in range(count)))
    return [w for w in opened if w is not None]


async def _still_answers(base_url: str) -> None:
    """``/readyz`` is 200 and a real sign-up through the form is taken."""
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as http:
        assert (await http.get("/readyz")).status_code == 200
        form = await http.get("/subscribe")
        token = _CSRF.search(form.text)
        assert form.status_code == 200 and token is not None
        data = {"csrf": html.unescape(token[1]), "email": "reader@example.org", "lists": ["news"], "website": ""}
        answer = await http.post("/subscribe", data=data)
        assert answer.status_code == 200 and "inbox" in answer.text.lower()


async def test_idle_connections_beyond_the_cap_never_take_the_api_down(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    await seed_taxonomy(conn)
    await conn.close()
    smtp_port = free_port()
    # One web process (as the deploy files run it): the receiver shares the API's uvloop event loop.
    served = Served(settings, "--no-worker", port=free_port(), bounce_smtp_port=smtp_port,
                    bounce_smtp_max_connections=20, web_workers=1)  # fmt: skip
    held: list[asyncio.StreamWriter] = []
    try:
        served.wait_ready()
        # From now on the process may hold only 256 files: 400 idle connections would use them all.
        resource.prlimit(served.process.pid, resource.RLIMIT_NOFILE, (256, 256))
        held = await _hold_connections(smtp_port, 400)
        assert len(held) > 256, "the connections were made (accepted, or refused with 421)"
        await _still_answers(served.base_url)
    finally:
        for writer in held:
            writer.close()
        served.stop()
    assert "out of system resource" not in served.log()
    assert served.process.returncode == 0, served.log()[-3000:]
