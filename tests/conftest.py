"""Shared fixtures: a real PostgreSQL (embedded, or LETTERBOX_TEST_DATABASE_URL), a fresh
database per test cloned from a migrated template, a real aiosmtpd server on loopback,
and the app behind Litestar's async test client."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
from _pytest.mark.expression import Expression
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import build_app, create_app
from service.db.embedded import EmbeddedPostgres
from service.db.pool import open_database
from service.runtime import Runtime, open_runtime
from service.settings import Settings, WebhookSecrets
from tests.support.clock import FakeClock
from tests.support.databases import DatabaseCopies
from tests.support.smtp import SmtpSink

BOOTSTRAP_KEY = "test-bootstrap-key-0123456789"
SECRET = "test-secret-key-0123456789abcdef"


# Modules that are slow even to collect: schemathesis builds test_contract's examples for every
# operation while collecting it (half a minute).  A run that leaves slow tests out skips them whole.
_SLOW_TO_COLLECT = frozenset({"test_contract.py"})


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Do not even collect a slow-to-collect module when the ``-m`` expression leaves ``slow`` out."""
    if collection_path.name not in _SLOW_TO_COLLECT or not config.option.markexpr:
        return None
    # pytest's own parser for -m, asked about a test marked only ``slow``.
    if Expression.compile(config.option.markexpr).evaluate(_only_slow):
        return None
    return True


def _only_slow(name: str, /, **_: str | int | bool | None) -> bool:
    return name == "slow"


def _with_database(dsn: str, name: str) -> str:
    """The same server URL pointing at another database (works for host= socket URLs too)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """A superuser-ish DSN on a throwaway server (or the one the environment names)."""
    given = os.environ.get("LETTERBOX_TEST_DATABASE_URL")
    if given:
        yield given
        return
    root = Path(tempfile.mkdtemp(prefix="letterbox-test-"))
    # Our own folder: let the unprivileged server user reach it when we run as root.
    root.chmod(0o755)
    server = EmbeddedPostgres(root / "postgres", durable=False)
    server.start()
    try:
        yield server.dsn()
    finally:
        server.stop()
        # Each run's cluster is 40-50 MB; left behind, /tmp grew by one per run of the suite.
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_database(postgres_admin_dsn: str) -> AsyncIterator[str]:
    """A database migrated once per run; each test gets a copy of it."""
    name = f"letterbox_template_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = await open_database(_with_database(postgres_admin_dsn, name), pool_size=2)
    await db.close()
    try:
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def database_copies(postgres_admin_dsn: str, template_database: str) -> Iterator[DatabaseCopies]:
    """Databases in the template's state, put back to it behind each test (tests/support/databases.py)."""
    copies = DatabaseCopies(postgres_admin_dsn, template_database, lambda name: _with_database(postgres_admin_dsn, name))
    try:
        yield copies
    finally:
        copies.close()


@pytest.fixture
async def database_url(
    postgres_admin_dsn: str, database_copies: DatabaseCopies, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A migrated database in the template's state for one test; slow tests get a new copy of their own."""
    slow = request.node.get_closest_marker("slow") is not None
    name = await database_copies.take(fresh=slow)
    try:
        yield _with_database(postgres_admin_dsn, name)
    finally:
        database_copies.give_back(name, reuse=not slow)


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    """A real aiosmtpd server on 127.0.0.1 that keeps what it receives."""
    sink = SmtpSink()
    await asyncio.to_thread(sink.start)
    try:
        yield sink
    finally:
        await asyncio.to_thread(sink.stop)


@pytest.fixture
def clock() -> FakeClock:
    """An injectable clock that tests move instead of sleeping."""
    return FakeClock()


@pytest.fixture
def settings(database_url: str, smtp_sink: SmtpSink, tmp_path: Path) -> Settings:
    """Settings for one test: its own database, the SMTP sink, a temporary var folder."""
    return Settings(
        database_url=database_url,
        smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}",
        secret_keys=(SECRET,),
        bootstrap_api_key=BOOTSTRAP_KEY,
        var_dir=str(tmp_path / "var"),
        public_url="https://news.example.org",
        from_addr="Partnership News <news@example.org>",
        log_format="console",
        lease_seconds=5,
    )


class SharedApp:
    """One app for the session, started once per test on that test's settings and clock.

    Building the app costs several times what a test does; its lifespan opens the runtime
    from whatever settings the current test set (``service.app.build_app``).
    """

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.clock: FakeClock | None = None
        self.max_body_bytes = Settings().max_body_bytes
        self.app = build_app(self._open, max_body_bytes=self.max_body_bytes)

    def _open(self) -> AbstractAsyncContextManager[Runtime]:
        assert self.settings is not None and self.clock is not None, "set by the app fixture"
        return open_runtime(self.settings, clock=self.clock)

    def fits(self, settings: Settings) -> bool:
        """Whether ``settings`` change nothing fixed when an app is built."""
        return settings.max_body_bytes == self.max_body_bytes and settings.webhooks == WebhookSecrets()


@pytest.fixture(scope="session")
def shared_app() -> SharedApp:
    """The session's one app (see SharedApp)."""
    return SharedApp()


@pytest.fixture
def app(settings: Settings, clock: FakeClock, shared_app: SharedApp) -> Litestar:
    """The app without a worker (tests that need one run it explicitly), on this test's settings."""
    if not shared_app.fits(settings):
        return create_app(settings, clock=clock)
    shared_app.settings, shared_app.clock = settings, clock
    return shared_app.app


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An HTTP client with the app's lifespan running."""
    async with AsyncTestClient(app, base_url="https://news.example.org") as test_client:
        yield test_client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """Authorization with the bootstrap (admin) key."""
    return {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


def replace_settings(settings: Settings, **changes: object) -> Settings:
    """A copy of ``settings`` with some fields changed."""
    return msgspec.structs.replace(settings, **changes)
