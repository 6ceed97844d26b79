"""``letterbox serve`` on every core: N HTTP processes on one port, the delivery worker in a process of its own.

With ``LETTERBOX_WEB_WORKERS`` above 1 the ``serve`` process becomes a supervisor.
It has already read the settings, made the secret key and started the embedded
PostgreSQL (once, for every child); it applies the migrations, checks the port,
and starts:

- N web processes, each running the HTTP app under uvicorn on its own listening
  socket bound to the one port with ``SO_REUSEPORT``, so that the kernel spreads
  new connections evenly between them (a socket shared by all would hand a burst
  of connections to whichever process woke first);
- one background process running the delivery worker (unless ``--no-worker``)
  and the bounce receiver (when ``LETTERBOX_BOUNCE_SMTP_PORT`` is set), so each
  runs once.

What happens when a child ends:

- a child that ends while it starts (before it serves, or before its worker runs)
  is started again after 1, 2, 4, 8 s: the database may have blinked. Five such
  ends within a minute stop ``serve`` (status 1): a fault at start would only repeat;
- a web process that ends after it served is replaced: the others kept answering,
  and losing the capacity of one for good would be worse than starting another;
- the background process ending once it runs stops ``serve`` (status 1), as a
  failed worker does in one process (service/supervision.py), for the supervisor
  to restart the lot;
- SIGTERM or SIGINT stops every child (SIGTERM, then SIGKILL after the grace
  period) and ``serve`` returns only once none is left; a child whose parent
  disappears stops by itself.

``/metrics`` counts across the processes: each child writes its counters to files
in a directory of ``serve``'s own (prometheus_client's multiprocess mode,
``PROMETHEUS_MULTIPROC_DIR``), and a scrape, whichever web process answers it,
adds them up (see service/metrics.py).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType
from typing import cast

import msgspec
import structlog

from .http_protocol import OneWritePerTurn
from .settings import Settings, SettingsError

log = structlog.get_logger(__name__)

STOP_GRACE_SECONDS = 60.0
"""How long children get to drain requests and hand back leased copies before SIGKILL."""
START_FAILURES = 5
START_FAILURE_WINDOW_SECONDS = 60.0
"""That many children ending as they start, within this window, stop ``serve``: a fault at start."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_LOOP = "uvloop"
HTTP_PARSER = "httptools"
"""The event loop and HTTP parser under every web process (uvicorn's ``loop``, and the protocol
:data:`HTTP_PROTOCOL` builds on), named rather than left to uvicorn's ``auto``, which takes whatever happens
to be installed: uvloop and httptools's C parser instead of asyncio's loop and h11's pure-Python one
(bench/http.py runs its bare app on the same pair)."""
HTTP_PROTOCOL = OneWritePerTurn
"""What the web processes give uvicorn as ``http``: httptools's protocol, one write per answer (see
service/http_protocol.py)."""


def listening_socket(settings: Settings, *, listen: bool = True) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT``, listening: one per web process.

    ``serve`` itself binds one without listening: that holds the port for the children (and
    says at once when it is taken) while the kernel hands connections only to listening sockets.
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # IPPROTO_TCP said out loud: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (the
    # default 0 does not), and without it a response written in two parts waits out the client's
    # delayed ACK, 40 ms each (uvicorn's own --workers sockets have that fault).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((settings.host, settings.port))
        if listen:
            sock.listen(2048)
    except OSError as exc:
        sock.close()
        where = f"{settings.host}:{settings.port}"
        raise SettingsError("LETTERBOX_PORT", f"cannot listen on {where}: {exc.strerror or exc}") from exc
    sock.set_inheritable(False)
    return sock


class _Child(msgspec.Struct):
    """One child process and what ``serve`` knows of it."""

    kind: str
    """``web`` or ``background``."""
    process: SpawnProcess
    ready: Event


class _Stop(BaseException):
    """SIGTERM or SIGINT reached ``serve``."""


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def serve_many(settings: Settings, *, workers: int, run_worker: bool) -> int:
    """Run ``workers`` web processes and the background process until a signal or a fatal end; the exit status.

    ``settings`` must be resolved (database URL and secret keys), as the CLI leaves them.
    """
    from .db.pool import open_database

    async def migrate_once() -> None:
        # Once here rather than racing in every child; errors reach the CLI as in one process.
        db = await open_database(settings.database_url or "", pool_size=2)
        await db.close()

    asyncio.run(migrate_once())
    # The port is ours (or a clear error says why not) before any child starts.
    held = listening_socket(settings, listen=False)
    metrics_dir = tempfile.mkdtemp(prefix="letterbox-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # inherited by every child, read when it imports prometheus_client
    context = multiprocessing.get_context("spawn")
    children: list[_Child] = []

    def start(kind: str) -> None:
        ready = context.Event()
        target: Callable[..., None] = _web_child if kind == "web" else _background_child
        process = context.Process(target=target, args=(settings, ready, run_worker), name=f"letterbox-{kind}")
        process.start()
        log.info("process_started", kind=kind, child_pid=process.pid)
        children.append(_Child(kind, process, ready))

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    failure: str | None = None
    failed_starts: list[float] = []
    try:
        for _ in range(workers):
            start("web")
        if run_worker or settings.bounce_smtp_port is not None:
            start("background")
        log.info("serving", web_workers=workers, worker=run_worker, port=settings.port)
        while failure is None:
            wait([child.process.sentinel for child in children])
            for child in [c for c in children if not c.process.is_alive()]:
                children.remove(child)
                _forget(child, metrics_dir)
                code = child.process.exitcode
                if not child.ready.is_set():  # its start failed: the database may have blinked, try again
                    failed_starts = [t for t in failed_starts if t > time.monotonic() - START_FAILURE_WINDOW_SECONDS]
                    failed_starts.append(time.monotonic())
                    if len(failed_starts) >= START_FAILURES:
                        failure = f"{child.kind} processes keep exiting as they start (last status {code})"
                        break
                    # Backing off (1, 2, 4, 8 s) rides out an outage as long as the embedded database's own
                    # restarts take to give up, so that its reason, not ours, ends serve.
                    pause = 2.0 ** (len(failed_starts) - 1)
                    log.warning("process_start_failed", kind=child.kind, child_pid=child.process.pid, exit_code=code,
                                retry_in_seconds=pause)
                    time.sleep(pause)
                    start(child.kind)
                elif child.kind == "web":
                    log.warning("web_worker_replaced", child_pid=child.process.pid, exit_code=code)
                    start("web")
                else:
                    failure = f"the delivery worker process exited with status {code}"
        log.error("process_failing", reason=failure)
    except _Stop:
        pass
    finally:
        _stop_all(children, metrics_dir)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        held.close()
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if failure is not None:
        print(f"letterbox: {failure}", file=sys.stderr)
        return 1
    return 0


def _stop_all(children: list[_Child], metrics_dir: str) -> None:
    """SIGTERM every child, SIGKILL those still there after the grace period (or at a second signal)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, _raise_stop)
    for child in children:
        if child.process.is_alive():
            os.kill(child.process.pid or 0, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    try:
        for child in children:
            child.process.join(max(0.0, deadline - time.monotonic()))
    except _Stop:
        pass  # a second Ctrl-C: do not wait for the drain
    for child in children:
        if child.process.is_alive():
            child.process.kill()
        child.process.join()
        _forget(child, metrics_dir)


def _forget(child: _Child, metrics_dir: str) -> None:
    """Drop a dead child's live gauges (its counters stay counted)."""
    from prometheus_client import multiprocess

    # prometheus_client leaves this function untyped.
    mark_process_dead = cast(Callable[[int, str], None], multiprocess.mark_process_dead)
    if child.process.pid is not None:
        mark_process_dead(child.process.pid, metrics_dir)


def _watch_parent(on_gone: Callable[[], None]) -> None:
    """Call ``on_gone`` on this event loop when the ``serve`` process ends (SIGKILLed, say): never outlive it."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        asyncio.get_running_loop().add_reader(parent.sentinel, on_gone)


def _web_child(settings: Settings, ready: Event, _run_worker: bool) -> None:
    """One web process: the app under uvicorn on its own ``SO_REUSEPORT`` socket."""
    import uvicorn

    from .app import create_app
    from .logs import configure_logging

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # the lifespan (pool, migrations checked) succeeded: this process serves
                ready.set()
                log.info("web_worker_ready")

    configure_logging(settings, hold_lines=True, cache_loggers=True)  # configured once, for the process's life
    # The background process receives bounces; a second listener on the port would fail.
    settings = msgspec.structs.replace(settings, bounce_smtp_port=None)
    config = uvicorn.Config(
        create_app(settings), log_config=None, access_log=False, server_header=False, lifespan="on",
        proxy_headers=True, forwarded_allow_ips=settings.trusted_proxies, loop=HTTP_LOOP, http=HTTP_PROTOCOL,
    )
    server = Server(config)

    async def main() -> None:
        def parent_gone() -> None:
            server.should_exit = True

        _watch_parent(parent_gone)
        await server.serve(sockets=[listening_socket(settings)])

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())
    if not server.started:
        sys.exit(1)  # the lifespan failed (uvicorn logged why)


def _background_child(settings: Settings, ready: Event, run_worker: bool) -> None:
    """The delivery worker and the bounce receiver, until SIGTERM/SIGINT; any other end is an error."""
    from .background import run_worker as worker_main
    from .bounces.receiver import BounceReceiver
    from .logs import configure_logging
    from .runtime import open_runtime

    configure_logging(settings, hold_lines=True, cache_loggers=True)  # configured once, for the process's life
    log = structlog.get_logger(__name__)  # after configure_logging: lines go through the scrubber

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        _watch_parent(stop.set)
        async with open_runtime(settings) as runtime:
            receiver = None
            try:
                if settings.bounce_smtp_port is not None:
                    receiver = BounceReceiver(settings, runtime.db, runtime.signer, runtime.metrics)
                    await receiver.start()
                ready.set()
                log.info("background_process_ready", worker=run_worker, receiver=receiver is not None)
                if run_worker:
                    await worker_main(runtime, stop)
                else:
                    await stop.wait()
            finally:
                if receiver is not None:
                    await receiver.stop()
        if not stop.is_set():
            raise RuntimeError("the delivery worker returned without being asked to stop")

    try:
        asyncio.run(main())
    except Exception:
        log.exception("background_process_failed")
        sys.exit(1)
