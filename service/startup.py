"""Turning settings into a place to run: the generated secret and the embedded database.

Both are done by the CLI before the event loop starts (the embedded server
must be started from the main thread; see service/db/embedded.py).  The
embedded server is supervised: if its postmaster dies it is started again, and
if it cannot be, the process is asked to stop (SIGTERM, so requests drain) and
the command exits non-zero, for its own supervisor to restart it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

from .db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from .db.pool import ensure_database
from .settings import Settings

EMBEDDED_DATABASE = "letterbox"


def ensure_secret_keys(settings: Settings) -> Settings:
    """Use ``LETTERBOX_SECRET_KEYS``, or a key generated once into ``var/secret`` (mode 0600)."""
    if settings.secret_keys:
        return settings
    path = settings.var_path / "secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting together must not both write a different key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
    keys = tuple(k.strip() for k in path.read_text().split(",") if k.strip())
    return msgspec.structs.replace(settings, secret_keys=keys)


@contextmanager
def database_url(settings: Settings) -> Iterator[Settings]:
    """Yield settings with ``database_url`` set, starting the embedded server for the duration if needed.

    Raises :class:`EmbeddedPostgresError` on the way out when the embedded server died and
    could not be started again, whatever ended the body (the stop that failure asked for).
    """
    if settings.database_url:
        yield settings
        return
    server = EmbeddedPostgres(settings.var_path / "postgres")
    server.start()
    try:
        asyncio.run(ensure_database(server.dsn(), EMBEDDED_DATABASE))
        server.supervise(lambda _reason: os.kill(os.getpid(), signal.SIGTERM))
        yield msgspec.structs.replace(settings, database_url=server.dsn(EMBEDDED_DATABASE))
    finally:
        server.stop()
        if server.failure is not None:
            raise EmbeddedPostgresError(server.failure)
