"""``create_app(settings)``: routes, dependencies, lifespan and error mapping in one place.

Nothing happens at import time.  The lifespan opens the one database pool
(migrating and checking every named query first), keeps it on ``app.state``
with the settings, the token signer and the metrics, and, when asked, runs
the delivery worker in the same process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

import asyncpg
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.template import TemplateConfig

from .auth import require_scope
from .bounces import routes as bounce_routes
from .bounces.receiver import BounceReceiver
from .bounces.webhook_config import load_webhook_secrets
from .db.pool import Database, open_database
from .editions.routes import EditionController
from .errors import exception_handlers
from .events.routes import EventEndpointController
from .health import healthz, metrics, readyz
from .http_metrics import HttpMetricsMiddleware
from .logs import RequestIdMiddleware
from .metrics import Metrics
from .problem_docs import ProblemDocs
from .segments import routes as segment_routes
from .settings import Settings
from .subscribers import routes as subscriber_routes
from .subscribers.web import template_engine
from .supervision import Supervision
from .taxonomy import TaxonomyController
from .tokens import TokenSigner

API_VERSION = "0.1.0"


async def provide_conn(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """One connection and one transaction per request: committed on success, rolled back on error."""
    db: Database = state.db
    async with db.transaction() as conn:
        yield conn


def provide_db(state: State) -> Database:
    """The shared pool and named queries."""
    return state.db  # type: ignore[no-any-return]


def provide_settings(state: State) -> Settings:
    """The one settings object."""
    return state.settings  # type: ignore[no-any-return]


def provide_signer(state: State) -> TokenSigner:
    """The one token signer."""
    return state.signer  # type: ignore[no-any-return]


def provide_metrics(state: State) -> Metrics:
    """The app's metrics."""
    return state.metrics  # type: ignore[no-any-return]


def api_router() -> Router:
    """Every ``/v1`` route; each is guarded by its scope (see service/auth.py)."""
    handlers = [
        TaxonomyController,
        EditionController,
        *subscriber_routes.api_handlers,
        *segment_routes.api_handlers,
        *bounce_routes.api_handlers,
        EventEndpointController,
    ]
    return Router(path="/v1", route_handlers=handlers, guards=[require_scope], security=[{"bearer": []}])


def create_app(
    settings: Settings,
    *,
    run_worker: bool = False,
    clock: Callable[[], float] = time.time,
    on_fatal: Callable[[str], None] | None = None,
) -> Litestar:
    """Build the ASGI app. ``settings.database_url`` and ``settings.secret_keys`` must be resolved.

    ``on_fatal`` is called once if a background task (the worker) stops unexpectedly; ``serve``
    uses it to shut the process down with a non-zero status.
    """
    if not settings.database_url or not settings.secret_keys:
        raise ValueError("create_app needs a database URL and secret keys; see service/runtime.py")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        db = await open_database(settings.database_url or "", pool_size=settings.db_pool_size)
        app.state.db = db
        worker_task: asyncio.Task[None] | None = None
        receiver: BounceReceiver | None = None
        stop = asyncio.Event()
        try:
            if settings.bounce_smtp_port is not None:
                # Started here, not as a task: a port already taken stops the start.
                receiver = BounceReceiver(settings, db, app.state.signer, app.state.metrics)
                await receiver.start()
            if run_worker:
                from .delivery.worker import run_worker as worker_main

                worker_task = asyncio.create_task(
                    worker_main(settings, db, app.state.metrics, app.state.signer, stop), name="letterbox-worker"
                )
                supervision.watch(worker_task, stop)
            yield
        finally:
            stop.set()
            if receiver is not None:
                await receiver.stop()
            if worker_task is not None:
                # A crashed worker was reported when it ended; shutting down must not raise it again.
                await asyncio.gather(worker_task, return_exceptions=True)
            await db.close()

    supervision = Supervision(on_fatal)

    state = State(
        {
            "settings": settings,
            "signer": TokenSigner(settings.secret_keys, now=clock),
            "metrics": Metrics(),
            "clock": clock,
            "supervision": supervision,
            "webhook_secrets": load_webhook_secrets(settings),
        }
    )
    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            metrics,
            *subscriber_routes.public_handlers,
            *bounce_routes.webhook_handlers,
            api_router(),
        ],
        lifespan=[lifespan],
        state=state,
        dependencies={
            "conn": Provide(provide_conn),
            "db": Provide(provide_db, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "signer": Provide(provide_signer, sync_to_thread=False),
            "metrics": Provide(provide_metrics, sync_to_thread=False),
        },
        exception_handlers=exception_handlers(),
        middleware=[RequestIdMiddleware, HttpMetricsMiddleware],
        plugins=[ProblemDocs()],
        request_max_body_size=settings.max_body_bytes,
        template_config=TemplateConfig(instance=template_engine()),
        openapi_config=OpenAPIConfig(
            title="Letterbox",
            version=API_VERSION,
            description="Subscriber and mailing-list microservice.",
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", description="API key")}
            ),
        ),
        debug=False,
        logging_config=None,
        pdb_on_exception=False,
        signature_namespace={"asyncpg": asyncpg},
    )
