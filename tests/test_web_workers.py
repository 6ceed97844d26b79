"""``serve`` with LETTERBOX_WEB_WORKERS=2: two HTTP processes on one port and the delivery worker apart.

Real processes throughout: the layout is the point (service/serving.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dkim
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.serving import listening_socket
from service.settings import Settings
from tests.editions.test_posting import edition
from tests.support.dkim import dkim_key
from tests.support.processes import Served
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink, free_port

pytestmark = pytest.mark.slow


def _lines(served: Served) -> list[dict[str, object]]:
    # Every line is one JSON object, whichever process wrote it: lines never run into each other.
    return [json.loads(line) for line in served.log().splitlines() if line.startswith("{")]


def _started(served: Served, kind: str) -> list[int]:
    """Pids of the children of ``kind`` serve has started so far, in order."""
    return [int(str(e["child_pid"])) for e in _lines(served) if e["event"] == "process_started" and e["kind"] == kind]


def _ready(served: Served) -> list[int]:
    """Pids of the web processes that have said they serve."""
    return [int(str(e["process"])) for e in _lines(served) if e["event"] == "web_worker_ready"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(re.findall(r"^PPid:\s+(\d+)", (entry / "status").read_text(), re.M)[0])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {p for p in found if _alive(p)}


def _get(url: str) -> str:
    # A new connection each time, so the kernel picks a process for each.
    with httpx.Client() as fresh:
        return fresh.get(url, timeout=10).text


def _wait_until(condition: object, within: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {within:.0f} s: {what}")


def _counted(metrics: str, route: str) -> float:
    pattern = rf'^letterbox_http_requests_total\{{method="GET",route="{re.escape(route)}",status="200"\}} (\S+)$'
    found = re.search(pattern, metrics, re.M)
    return float(found[1]) if found else 0.0


async def test_connections_to_a_web_process_send_without_delay() -> None:
    # asyncio sets TCP_NODELAY only when the listening socket says IPPROTO_TCP; without it a response
    # written in two parts (head, body) waits for the client's delayed ACK, 40 ms a request.
    listening = listening_socket(Settings(port=0))
    nodelay: list[int] = []

    def accepted(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nodelay.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=listening)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", listening.getsockname()[1])
        for _ in range(100):
            if nodelay:
                break
            await asyncio.sleep(0.05)
        writer.close()
    finally:
        server.close()
    assert nodelay and nodelay[0] != 0


async def test_two_processes_answer_and_metrics_count_both(settings: Settings) -> None:
    served = Served(settings, "--no-worker", port=free_port(), web_workers=2)
    try:
        await asyncio.to_thread(served.wait_ready)
        url = f"{served.base_url}/healthz"

        def spread() -> int:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: _get(url), range(64)))
            return 64

        asked = 0
        for _ in range(20):
            asked += await asyncio.to_thread(spread)
            pids = {e["process"] for e in _lines(served) if e["event"] == "request" and e.get("path") == "/healthz"}
            if len(pids) == 2:
                break
        assert len(pids) == 2, "both HTTP processes answer"
        assert pids == set(_started(served, "web")), "they are the processes serve started"
        # Whichever process answers the scrape counts every process's requests.
        for _ in range(4):
            assert _counted(await asyncio.to_thread(_get, f"{served.base_url}/metrics"), "/healthz") == asked
    finally:
        assert served.stop() == 0


async def test_sigterm_stops_every_child(settings: Settings) -> None:
    served = Served(settings, port=free_port(), web_workers=2)
    await asyncio.to_thread(served.wait_ready)
    children = _descendants(served.process.pid)
    assert set(_started(served, "web")) | set(_started(served, "background")) <= children
    assert served.stop() == 0
    await asyncio.to_thread(_wait_until, lambda: not any(_alive(p) for p in children), 10, "every child gone")


async def test_a_killed_web_process_is_replaced_and_the_service_keeps_answering(settings: Settings) -> None:
    served = Served(settings, "--no-worker", port=free_port(), web_workers=2)
    try:
        await asyncio.to_thread(served.wait_ready)
        # Both must be serving: one killed before it was ready would stop serve instead.
        await asyncio.to_thread(_wait_until, lambda: len(_ready(served)) == 2, 30, "two web processes ready")
        first, second = _started(served, "web")
        assert set(_ready(served)) == {first, second}
        os.kill(first, signal.SIGKILL)
        await asyncio.to_thread(_wait_until, lambda: len(_started(served, "web")) == 3, 30, "a replacement")
        assert served.process.poll() is None, "serve carries on"
        await asyncio.to_thread(_wait_until, served.ready, 30, "ready again")
        assert _alive(second)
        assert any(e["event"] == "web_worker_replaced" for e in _lines(served))
    finally:
        assert served.stop() == 0


async def test_the_delivery_worker_runs_in_its_own_process_and_sends(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    await seed_readers(settings.database_url or "", 3)
    served = Served(settings, port=free_port(), web_workers=2)
    try:
        await asyncio.to_thread(served.wait_ready)
        posted = await client.post("/v1/editions", json=edition(), headers={**admin_headers, "Idempotency-Key": "w"})
        assert posted.status_code == 202, posted.text
        await smtp_sink.wait_for(3, within=60)
        (background,) = _started(served, "background")
        senders = {e["process"] for e in _lines(served) if str(e["event"]).startswith("worker_")}
        assert senders == {background}, "the worker's lines come from the background process only"
    finally:
        assert served.stop() == 0


async def test_a_dead_delivery_worker_stops_serve_with_an_error(settings: Settings) -> None:
    served = Served(settings, port=free_port(), web_workers=2)
    await asyncio.to_thread(served.wait_ready)
    # Once its worker runs: one killed while it starts is started again (service/serving.py).
    await asyncio.to_thread(_wait_until, lambda: any(e["event"] == "background_process_ready" for e in _lines(served)),
                            30, "the background process running")
    children = _descendants(served.process.pid)
    (background,) = _started(served, "background")
    os.kill(background, signal.SIGKILL)
    code = await asyncio.to_thread(served.process.wait, 90)
    assert code == 1
    assert "the delivery worker process exited" in served.log()
    await asyncio.to_thread(_wait_until, lambda: not any(_alive(p) for p in children), 10, "every child gone")



async def test_one_process_sends_signed_editions_and_proofs_on_its_event_loop(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    # LETTERBOX_WEB_WORKERS=1, as the deploy files set it: the worker and its DKIM signing process
    # share the web process's event loop (uvloop), so they must work on uvloop's transports too.
    await seed_readers(settings.database_url or "", 3)
    key_file, dns = dkim_key(tmp_path)
    served = Served(settings, port=free_port(), web_workers=1, bootstrap_api_key=settings.bootstrap_api_key or "",
                    dkim_selector="lb1", dkim_key_file=str(key_file))
    try:
        await asyncio.to_thread(served.wait_ready)
        async with httpx.AsyncClient(base_url=served.base_url, headers=admin_headers, timeout=30) as http:
            proof = await http.post("/v1/editions/proof", json={"subject": "Proof", "html": "<p>Hi</p>",
                                                                "to": ["proof@example.org"]})
            assert proof.status_code == 202 and proof.json()["sent_to"] == ["proof@example.org"], proof.text
            posted = await http.post("/v1/editions", json=edition(), headers={"Idempotency-Key": "one"})
            assert posted.status_code == 202, posted.text
        received = await smtp_sink.wait_for(4, within=60)
        verified = {message.rcpt_tos[0]: dkim.verify(message.content, dnsfunc=dns) for message in received}
        assert all(verified.values()), verified
    finally:
        assert served.stop() == 0
