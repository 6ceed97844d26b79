"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.di import NamedDependency

from .errors import problem
from .problem_docs import PROBLEMS
from .runtime import Runtime
from .supervision import Supervision

# Litestar appends the charset itself.
_PROMETHEUS_TEXT = "text/plain; version=0.0.4"


@get("/healthz", tags=["health"], summary="The process is up", sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Answers while the process runs; touches nothing else."""
    return {"status": "ok"}


@get("/readyz", tags=["health"], summary="The database is reachable and migrated", opt={PROBLEMS: (503,)})
async def readyz(
    runtime: NamedDependency[Runtime], supervision: NamedDependency[Supervision]
) -> Response[dict[str, object]]:
    """200 when PostgreSQL answers within 2 s, every migration is applied and no background task of the
    process has failed; 503 otherwise."""
    if supervision.failure is not None:
        return problem(503, f"This process is stopping: {supervision.failure}.")
    try:
        async with asyncio.timeout(2):
            async with runtime.db.transaction() as conn:
                missing = await runtime.db.missing_migrations(conn)
    except Exception:  # any failure to reach the database means not ready
        return problem(503, "The database is not reachable.")
    if missing:
        return problem(503, f"Migrations not yet applied: {missing}.")
    return Response({"status": "ready"})


@get("/metrics", tags=["health"], summary="Prometheus metrics", media_type=_PROMETHEUS_TEXT)
async def metrics(runtime: NamedDependency[Runtime]) -> Response[bytes]:
    """Prometheus text; queue figures are read from the database at scrape time (absent when it is away)."""
    return Response(await runtime.metrics.scrape(runtime.db), media_type=_PROMETHEUS_TEXT)
