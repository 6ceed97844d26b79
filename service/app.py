"""``create_app(settings)``: routes, dependencies, lifespan and error mapping in one place.

Nothing happens at import time.  The lifespan opens the one runtime (the database
pool, migrated and with every named query checked, the settings, the token signer,
links and metrics: service/runtime.py), keeps it as ``app.state.runtime`` for the
dependencies to hand out, and, when asked, runs the delivery worker in the same process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar, Request, Router
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.template import TemplateConfig

from .audit import routes as audit_routes
from .auth import require_scope
from .bounces import routes as bounce_routes
from .bounces.receiver import BounceReceiver
from .bounces.webhooks import check_webhook_secrets
from .console.routes import console_router, register_template_callables
from .db.pool import Database
from .editions.routes import EditionController
from .errors import exception_handlers
from .events.routes import EventEndpointController
from .health import healthz, metrics, readyz
from .http_observation import ObserveRequests
from .links import Links
from .metrics import Metrics
from .problem_docs import ProblemDocs
from .request_schemas import RequestBodySchemas
from .runtime import Runtime, open_runtime, runtime_of
from .segments import routes as segment_routes
from .settings import Settings
from .subscribers import routes as subscriber_routes
from .subscribers.web import template_engine, unavailable_page
from .supervision import Supervision
from .taxonomy.routes import TaxonomyController
from .tokens import TokenSigner

API_VERSION = "0.1.0"

RuntimeOpener = Callable[[], AbstractAsyncContextManager[Runtime]]
"""Opens the runtime a lifespan runs on (``open_runtime`` bound to settings and a clock)."""


def provide_runtime(request: Request[Any, Any, Any]) -> Runtime:
    """The one runtime (see service/runtime.py).

    Taken from the request's app rather than asking Litestar for ``state``: that builds a new
    ``State`` for every request, a twentieth of a public page's cost.
    """
    return runtime_of(request.app.state)


async def provide_conn(runtime: NamedDependency[Runtime]) -> AsyncGenerator[asyncpg.Connection, None]:
    """One connection and one transaction per request: committed on success, rolled back on error."""
    async with runtime.db.transaction() as conn:
        yield conn


def provide_db(runtime: NamedDependency[Runtime]) -> Database:
    """The shared pool and named queries."""
    return runtime.db


def provide_settings(runtime: NamedDependency[Runtime]) -> Settings:
    """The one settings object."""
    return runtime.settings


def provide_signer(runtime: NamedDependency[Runtime]) -> TokenSigner:
    """The one token signer."""
    return runtime.signer


def provide_links(runtime: NamedDependency[Runtime]) -> Links:
    """Every personal link in mail and pages, signed by the one signer."""
    return runtime.links


def provide_metrics(runtime: NamedDependency[Runtime]) -> Metrics:
    """The app's metrics."""
    return runtime.metrics


def api_router() -> Router:
    """Every ``/v1`` route; each is guarded by its scope (see service/auth.py)."""
    handlers = [
        TaxonomyController,
        EditionController,
        *subscriber_routes.api_handlers,
        *segment_routes.api_handlers,
        *bounce_routes.api_handlers,
        EventEndpointController,
        *audit_routes.api_handlers,
    ]
    return Router(path="/v1", route_handlers=handlers, guards=[require_scope], security=[{"bearer": []}],
                  dependencies={"audit": Provide(audit_routes.provide_api_audit, sync_to_thread=False)})


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
        raise ValueError("create_app needs a database URL and secret keys; see service/startup.py")
    check_webhook_secrets(settings.webhooks)  # a secret that cannot work stops the app being built
    return build_app(
        lambda: open_runtime(settings, clock=clock),
        max_body_bytes=settings.max_body_bytes,
        run_worker=run_worker,
        on_fatal=on_fatal,
    )


def build_app(
    runtime_opener: RuntimeOpener,
    *,
    max_body_bytes: int,
    run_worker: bool = False,
    on_fatal: Callable[[str], None] | None = None,
) -> Litestar:
    """The app around a runtime that each lifespan opens with ``runtime_opener``.

    ``create_app`` opens one from fixed settings.  Building the app (routes, signatures,
    dependencies) costs far more than opening a runtime, so the test suite builds one app and
    starts it once per test, each time on that test's settings and database.  Nothing the app
    keeps between lifespans may belong to a runtime (see ObserveRequests).
    """
    supervision = Supervision(on_fatal)

    def provide_supervision() -> Supervision:
        return supervision

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        async with runtime_opener() as runtime:
            app.state.runtime = runtime
            worker_task: asyncio.Task[None] | None = None
            receiver: BounceReceiver | None = None
            stop = asyncio.Event()
            try:
                if runtime.settings.bounce_smtp_port is not None:
                    # Started here, not as a task: a port already taken stops the start.
                    receiver = BounceReceiver(runtime.settings, runtime.db, runtime.signer, runtime.metrics)
                    await receiver.start()
                if run_worker:
                    from .background import run_worker as worker_main

                    worker_task = asyncio.create_task(worker_main(runtime, stop), name="letterbox-worker")
                    supervision.watch(worker_task, stop)
                yield
            finally:
                stop.set()
                if receiver is not None:
                    await receiver.stop()
                if worker_task is not None:
                    # A crashed worker was reported when it ended; shutting down must not raise it again.
                    await asyncio.gather(worker_task, return_exceptions=True)

    templates = template_engine()
    register_template_callables(templates)  # csrf_field() in the console's forms
    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            metrics,
            *subscriber_routes.public_handlers,
            *bounce_routes.webhook_handlers,
            api_router(),
            console_router(),
        ],
        lifespan=[lifespan],
        dependencies={
            "runtime": Provide(provide_runtime, sync_to_thread=False),
            "supervision": Provide(provide_supervision, sync_to_thread=False),
            "conn": Provide(provide_conn),
            "db": Provide(provide_db, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "signer": Provide(provide_signer, sync_to_thread=False),
            "links": Provide(provide_links, sync_to_thread=False),
            "metrics": Provide(provide_metrics, sync_to_thread=False),
        },
        exception_handlers=exception_handlers(unavailable_page),
        middleware=[ObserveRequests],
        plugins=[ProblemDocs(), RequestBodySchemas()],
        request_max_body_size=max_body_bytes,
        template_config=TemplateConfig(instance=templates),
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
