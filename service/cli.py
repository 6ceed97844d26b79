"""The ``letterbox`` command.

Every sub-command reads the settings first: a bad value prints one line
naming the variable and exits with status 2, before anything starts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg

from .auth import generate_key, validate_scopes
from .bounces.webhooks import check_webhook_secrets
from .db.embedded import EmbeddedPostgresError
from .db.migrations import MigrationError, migrate
from .db.queries import QueryError
from .db.sql_files import MIGRATIONS_DIR
from .delivery.preflight import check_mail_settings
from .logs import configure_logging
from .runtime import Runtime, open_runtime
from .settings import Settings, SettingsError, load_settings
from .startup import database_url, ensure_secret_keys

EXIT_FAILURE = 1
EXIT_CONFIG = 2


class _StopRequested(BaseException):
    """SIGTERM or SIGINT: unwind so that context managers (the embedded database) clean up."""


def _request_stop(signum: int, _frame: object) -> None:
    raise _StopRequested(signum)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    if settings.web_workers > 1:
        from .serving import serve_many

        return serve_many(settings, workers=settings.web_workers, run_worker=not args.no_worker)
    # One process (LETTERBOX_WEB_WORKERS=1): the API, the worker and the receiver share one event loop.
    import uvicorn

    # This process now serves for its life: logging as serve's processes do (see serving.py).
    configure_logging(settings, hold_lines=True, cache_loggers=True)

    from .app import create_app
    from .serving import HTTP_LOOP, HTTP_PROTOCOL

    failures: list[str] = []

    def on_fatal(reason: str) -> None:
        # The worker stopped for good: shut down the way SIGTERM does, then exit non-zero.
        failures.append(reason)
        os.kill(os.getpid(), signal.SIGTERM)

    app = create_app(settings, run_worker=not args.no_worker, on_fatal=on_fatal)
    # Uvicorn handles SIGINT/SIGTERM: it drains requests, runs the lifespan's
    # shutdown (which stops the worker), then returns here so the embedded
    # database is stopped by the caller's context manager.
    try:
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_config=None, access_log=False, server_header=False,
            lifespan="on", proxy_headers=True, forwarded_allow_ips=settings.trusted_proxies, loop=HTTP_LOOP,
            http=HTTP_PROTOCOL,
        )
    except _StopRequested:
        if not failures:
            raise
    if failures:
        print(f"letterbox: {failures[0]}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def _run_until_signal(settings: Settings, body: Callable[[Runtime, asyncio.Event], Awaitable[None]]) -> int:
    """Open the runtime, run ``body`` until SIGTERM/SIGINT sets its stop event, close the runtime."""

    async def main() -> None:
        async with open_runtime(settings) as runtime:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await body(runtime, stop)

    asyncio.run(main())
    return 0


def _worker(settings: Settings, _: argparse.Namespace) -> int:
    from .background import run_worker
    from .metrics_server import metrics_endpoint

    async def body(runtime: Runtime, stop: asyncio.Event) -> None:
        async with metrics_endpoint(settings, runtime.metrics, runtime.db):
            await run_worker(runtime, stop)

    return _run_until_signal(settings, body)


def _bounce_receiver(settings: Settings, _: argparse.Namespace) -> int:
    from .bounces.receiver import run_receiver
    from .metrics_server import metrics_endpoint

    if settings.bounce_smtp_port is None:
        print("letterbox: LETTERBOX_BOUNCE_SMTP_PORT: set it to the port to receive bounce mail on", file=sys.stderr)
        return EXIT_CONFIG

    async def body(runtime: Runtime, stop: asyncio.Event) -> None:
        # Its own counters only: the queue figures come from the API and the workers.
        async with metrics_endpoint(settings, runtime.metrics, None):
            await run_receiver(runtime, stop)

    return _run_until_signal(settings, body)


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    async def main() -> list[str]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await migrate(conn, MIGRATIONS_DIR)
        finally:
            await conn.close()

    applied = asyncio.run(main())
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")
    return 0


def _api_key(settings: Settings, args: argparse.Namespace) -> int:
    async def main() -> int:
        async with open_runtime(settings, pool_size=2) as runtime:
            db = runtime.db
            if args.action == "create":
                try:
                    scopes = validate_scopes(args.scope)
                except ValueError as exc:
                    print(f"letterbox: {exc}", file=sys.stderr)
                    return EXIT_CONFIG
                key = generate_key()
                await db.pool.execute(db.q["api-key-insert"], args.name, key.prefix, key.secret_hash, scopes)
                print(key.token)
                print(f"(shown once; name {args.name!r}, scopes {', '.join(scopes)})", file=sys.stderr)
            elif args.action == "list":
                for row in await db.pool.fetch(db.q["api-key-list"]):
                    state = "revoked" if row["revoked_at"] else "active"
                    print(f"{row['id']}\t{row['prefix']}\t{row['name']}\t{','.join(row['scopes'])}\t{state}")
            else:
                revoked = await db.pool.fetchrow(db.q["api-key-revoke"], args.key)
                if revoked is None:
                    print(f"letterbox: no API key with id or prefix {args.key!r}", file=sys.stderr)
                    return 1
                print(f"revoked {revoked['prefix']} ({revoked['name']})")
            return 0

    return asyncio.run(main())


def _user(settings: Settings, args: argparse.Namespace) -> int:
    from .accounts.users import create_user, disable_user, list_users
    from .errors import LetterboxError

    password: str | None = None
    if args.action == "create" and args.password_stdin:
        # One line, as `echo pw | letterbox user create …` or a secret file gives it; the newline is not part of it.
        password = sys.stdin.readline().rstrip("\r\n")

    async def main() -> int:
        async with open_runtime(settings, pool_size=2) as runtime:
            db = runtime.db
            try:
                async with db.transaction() as conn:
                    if args.action == "create":
                        user = await create_user(conn, db.q, args.email, args.role, password)
                        how = "" if password is not None else "; no password: signs in through OpenID Connect only"
                        print(f"created {user.email} ({user.role}){how}")
                    elif args.action == "list":
                        for user in await list_users(conn, db.q):
                            state = "disabled" if user.disabled else "active"
                            seen = user.last_sign_in_at.isoformat(timespec="seconds") if user.last_sign_in_at else None
                            print(f"{user.id}\t{user.email}\t{user.role}\t{state}\tlast sign-in {seen or 'never'}")
                    else:
                        user = await disable_user(conn, db.q, args.email)
                        print(f"disabled {user.email}; their sessions are signed out")
                return 0
            except LetterboxError as exc:
                print(f"letterbox: {exc.detail}", file=sys.stderr)
                return EXIT_CONFIG if exc.status_code == 422 else 1

    return asyncio.run(main())


def _demo(settings: Settings, _: argparse.Namespace) -> int:
    from .subscribers.demo import load_demo

    async def main() -> None:
        async with open_runtime(settings, pool_size=2) as runtime:
            await load_demo(runtime.db)

    asyncio.run(main())
    print("loaded the sample safeguarding-partnership agencies, roles and lists")
    return 0


def _openapi(_: Settings, args: argparse.Namespace) -> int:
    from .openapi import render_openapi

    text = render_openapi()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="letterbox", description="Letterbox: subscribers, double opt-in, segmentation, send queue and bounces."
    )
    parser.set_defaults(sends_mail=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the HTTP API in LETTERBOX_WEB_WORKERS processes (and, by default, the delivery worker)"
    )
    serve.add_argument("--no-worker", action="store_true", help="run the API only; run workers with 'letterbox worker'")
    serve.add_argument("--host", help="bind address (default LETTERBOX_HOST)")
    serve.add_argument("--port", type=int, help="bind port (default LETTERBOX_PORT)")
    serve.set_defaults(func=_serve, needs_db=True, sends_mail=True)

    worker = sub.add_parser("worker", help="run a delivery worker alone (any number may run against one database)")
    worker.set_defaults(func=_worker, needs_db=True, sends_mail=True)

    receiver = sub.add_parser("bounce-receiver", help="receive bounce mail and mailto: unsubscribes by SMTP, alone")
    receiver.set_defaults(func=_bounce_receiver, needs_db=True)

    mig = sub.add_parser("migrate", help="apply pending database migrations and exit")
    mig.set_defaults(func=_migrate, needs_db=True)

    keys = sub.add_parser("api-key", help="create, list or revoke API keys")
    key_sub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--scope", nargs="+", required=True, help="one or more of the scopes in the README")
    key_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = key_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key", help="the key's id or prefix")
    keys.set_defaults(func=_api_key, needs_db=True)

    users = sub.add_parser("user", help="create, list or disable operator console accounts")
    user_sub = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    user_create = user_sub.add_parser("create", help="create an account (password from standard input)")
    user_create.add_argument("--email", required=True, help="the address the user signs in with")
    user_create.add_argument("--role", required=True, choices=("viewer", "editor", "admin"), help="what they may do")
    user_create.add_argument("--password-stdin", action="store_true",
                             help="read the password (12 characters or more) from standard input; without it the "
                                  "account signs in only through OpenID Connect")
    user_sub.add_parser("list", help="list accounts (never their passwords)")
    user_disable = user_sub.add_parser("disable", help="disable an account and sign it out everywhere")
    user_disable.add_argument("email", help="the account's email address")
    users.set_defaults(func=_user, needs_db=True)

    demo = sub.add_parser("demo", help="load a sample taxonomy (agencies, roles, lists) so the form shows real choices")
    demo.set_defaults(func=_demo, needs_db=True)

    openapi = sub.add_parser("openapi", help="write the OpenAPI document generated from the app")
    openapi.add_argument("--output", default="openapi.yaml", help="file to write, or - for standard output")
    openapi.set_defaults(func=_openapi, needs_db=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``letterbox`` console script."""
    args = build_parser().parse_args(argv)
    env = dict(os.environ)
    # serve --host/--port stand for LETTERBOX_HOST/PORT, so that the default public URL follows them.
    if getattr(args, "host", None):
        env["LETTERBOX_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        env["LETTERBOX_PORT"] = str(args.port)
    try:
        settings = load_settings(env)
        check_webhook_secrets(settings.webhooks)  # certificates and keys must parse before anything starts
    except SettingsError as exc:
        print(f"letterbox: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    if args.sends_mail:
        try:
            check_mail_settings(settings)  # what would fail every copy stops the start instead
        except SettingsError as exc:
            print(f"letterbox: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    func: Callable[[Settings, argparse.Namespace], int] = args.func
    if not args.needs_db:
        return func(settings, args)
    # Uvicorn re-raises the signal it handled once it has shut down; turning that into an
    # exception (rather than the default "die now") lets the embedded database stop cleanly.
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    try:
        settings = ensure_secret_keys(settings)
        with database_url(settings) as resolved:
            return func(resolved, args)
    except _StopRequested:
        return 0
    except SettingsError as exc:  # found while starting: a port taken, a cap the file limit cannot hold
        print(f"letterbox: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (EmbeddedPostgresError, MigrationError, QueryError) as exc:
        print(f"letterbox: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"letterbox: cannot use the database: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

