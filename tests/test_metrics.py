"""Metrics from every process (issue 12, finding 5).

The API's ``/metrics`` with HTTP requests by route template, queue figures per
edition in flight and the system-mail backlog read from the database at scrape
time; a real ``letterbox worker`` and ``letterbox bounce-receiver`` exporting on
``LETTERBOX_METRICS_PORT``; a scrape that still answers when the database is away.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import urllib.request

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from service.db.pool import open_database
from service.metrics import Metrics
from service.settings import Settings
from tests.editions.test_posting import edition
from tests.support.processes import start_letterbox
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink, free_port
from tests.support.worker import running_worker

Client = AsyncTestClient[Litestar]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when it is absent."""
    return found.get((name, tuple(sorted(labels.items()))))


async def test_http_requests_are_counted_by_route_template_never_by_raw_path(
    client: Client, admin_headers: dict[str, str]
) -> None:
    for _ in range(2):
        assert (await client.get("/unsubscribe/not-a-real-token-3f9a")).status_code in (400, 410)
    assert (await client.get("/v1/editions/987654", headers=admin_headers)).status_code == 404
    assert (await client.post("/v1/lists", json={"slug": "x"}, headers=admin_headers)).status_code == 422
    text = (await client.get("/metrics")).text
    assert "not-a-real-token" not in text and "987654" not in text, "no raw path, no token, no id"
    found = samples(text)
    unsubscribe = [labels for (name, labels) in found if name == "letterbox_http_requests_total"
                   and ("method", "GET") in labels and dict(labels)["route"].startswith("/unsubscribe/")]  # fmt: skip
    assert len(unsubscribe) == 1 and found[("letterbox_http_requests_total", unsubscribe[0])] == 2
    route = dict(unsubscribe[0])["route"]
    assert "{" in route, route
    assert value(found, "letterbox_http_requests_total", method="POST", route="/v1/lists", status="422") == 1
    editions = [dict(labels) for (name, labels) in found if name == "letterbox_http_requests_total"
                and dict(labels)["route"].startswith("/v1/editions/")]  # fmt: skip
    assert [e["status"] for e in editions] == ["404"]
    assert value(found, "letterbox_http_request_duration_seconds_count", method="POST", route="/v1/lists") == 1


async def test_an_app_started_again_counts_into_its_new_runtime(app: Litestar) -> None:
    # The suite starts one app once per test (service.app.build_app): requests made after a restart
    # must count into the new runtime's metrics, not into label children kept from the last one.
    for _ in range(2):
        async with AsyncTestClient(app, base_url="https://news.example.org") as started:
            assert (await started.get("/healthz")).status_code == 200
            found = samples((await started.get("/metrics")).text)
        assert value(found, "letterbox_http_requests_total", method="GET", route="/healthz", status="200") == 1


async def test_queue_figures_per_edition_and_system_mail_backlog_are_read_at_scrape_time(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    await seed_readers(settings.database_url or "", 30)
    before = samples((await client.get("/metrics")).text)
    assert value(before, "letterbox_database_up") == 1
    assert value(before, "letterbox_queue_depth", state="queued") == 0
    assert value(before, "letterbox_system_mail_backlog") == 0
    assert not [k for k in before if k[0] == "letterbox_edition_queued"], "no edition in flight, no series"
    posted = await client.post("/v1/editions", json=edition(), headers={**admin_headers, "Idempotency-Key": "m1"})
    assert posted.status_code == 202
    edition_id = str(posted.json()["id"])
    conn = await asyncpg.connect(settings.database_url)
    try:
        # Copies that have waited ten minutes, and a confirmation queued an hour ago.
        await conn.execute("UPDATE deliveries SET next_attempt_at = now() - interval '10 minutes'")
        await conn.execute(
            "INSERT INTO system_mails (kind, recipient, message, created_at) "
            "VALUES ('confirm', 'someone@example.org', 'x', now() - interval '1 hour')"
        )
    finally:
        await conn.close()
    found = samples((await client.get("/metrics")).text)
    assert value(found, "letterbox_edition_queued", edition=edition_id) == 30
    assert value(found, "letterbox_edition_sending", edition=edition_id) == 0
    assert 600 <= (value(found, "letterbox_edition_oldest_due_seconds", edition=edition_id) or 0) < 3600
    assert 600 <= (value(found, "letterbox_queue_oldest_due_seconds") or 0) < 3600
    assert value(found, "letterbox_queue_depth", state="queued") == 30
    assert value(found, "letterbox_system_mail_backlog") == 1
    assert 3600 <= (value(found, "letterbox_system_mail_oldest_seconds") or 0) < 7200
    # The API alone runs no worker: it says nothing about one.
    assert value(found, "letterbox_worker_running") is None


async def test_the_worker_in_the_process_reports_progress_and_liveness(
    app: Litestar, client: Client, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    await seed_readers(settings.database_url or "", 5)
    posted = await client.post("/v1/editions", json=edition(), headers={**admin_headers, "Idempotency-Key": "m2"})
    assert posted.status_code == 202
    async with running_worker(app):
        await smtp_sink.wait_for(5, within=30)
        found = samples((await client.get("/metrics")).text)
        assert value(found, "letterbox_worker_running") == 1
        progress = value(found, "letterbox_worker_last_progress_timestamp_seconds") or 0
        assert progress > 1_700_000_000, "a Unix time"
    found = samples((await client.get("/metrics")).text)
    assert value(found, "letterbox_worker_running") == 0, "the worker has stopped"
    assert value(found, "letterbox_deliveries_sent_total") == 5


async def test_a_scrape_answers_when_the_database_is_away(settings: Settings) -> None:
    db = await open_database(settings.database_url or "", pool_size=2, run_migrations=False)
    await db.close()
    metrics = Metrics()
    found = samples((await metrics.scrape(db)).decode())
    assert value(found, "letterbox_database_up") == 0
    assert value(found, "letterbox_queue_depth", state="queued") is None, "absent, not a stale or false zero"
    assert value(found, "letterbox_deliveries_sent_total") == 0


def _scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        assert response.status == 200
        return str(response.read().decode())


async def _scrape_when_up(process: subprocess.Popen[bytes], port: int) -> Samples:
    for _ in range(300):
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            return samples(await asyncio.to_thread(_scrape, port))
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the metrics port never answered")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


@pytest.mark.slow  # a real process
async def test_a_worker_process_exports_metrics_on_its_own_port(
    client: Client, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    await seed_readers(settings.database_url or "", 20)
    posted = await client.post("/v1/editions", json=edition(), headers={**admin_headers, "Idempotency-Key": "m3"})
    assert posted.status_code == 202
    port = free_port()
    worker = start_letterbox(settings, "worker", metrics_port=port)
    try:
        await smtp_sink.wait_for(20, within=60)
        found = await _scrape_when_up(worker, port)
        for _ in range(100):  # the recorder writes results a moment after the sink has them
            if value(found, "letterbox_deliveries_sent_total") == 20:
                break
            await asyncio.sleep(0.1)
            found = samples(await asyncio.to_thread(_scrape, port))
        assert value(found, "letterbox_deliveries_sent_total") == 20
        assert value(found, "letterbox_worker_running") == 1
        assert (value(found, "letterbox_worker_last_progress_timestamp_seconds") or 0) > 1_700_000_000
        assert value(found, "letterbox_database_up") == 1
        assert value(found, "letterbox_system_mail_backlog") == 0
        assert await asyncio.to_thread(_scrape, port, "/healthz") == "ok\n"
    finally:
        _stop(worker)


@pytest.mark.slow  # a real process
async def test_a_bounce_receiver_process_exports_metrics_on_its_own_port(settings: Settings) -> None:
    port = free_port()
    receiver = start_letterbox(settings, "bounce-receiver", bounce_smtp_port=free_port(), metrics_port=port)
    try:
        found = await _scrape_when_up(receiver, port)
        assert value(found, "letterbox_bounce_smtp_connections") == 0
        assert value(found, "letterbox_bounce_smtp_refused_total") == 0
        assert value(found, "letterbox_bounce_events_total", kind="hard") is None, "nothing acted on yet"
    finally:
        _stop(receiver)


@pytest.mark.slow  # a real process
def test_a_metrics_port_already_taken_stops_the_worker_with_status_2(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = start_letterbox(settings, "worker", metrics_port=port)
        assert worker.wait(timeout=60) == 2
    assert worker.stderr is not None
    assert b"LETTERBOX_METRICS_PORT" in worker.stderr.read()
