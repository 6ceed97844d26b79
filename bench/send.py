"""Send benchmark: an edition to N recipients, from the POST to the last copy received.

Printed beside the limits measured in the same run, all into the same sink
over the same number of connections with a copy of the same size:

- plain aiosmtplib sending the ready-made bytes (``sendmail``: it rewrites
  line endings and dot-stuffs every copy with regular expressions, one command
  and one round trip at a time);
- our transport sending the prepared copy (the ceiling Letterbox's worker sends
  under): into the sink as it is, offering PIPELINING and CHUNKING as Postfix
  does, the whole transaction in one write (BDAT); and into a copy of the sink
  that offers no CHUNKING, MAIL, RCPT and DATA pipelined, then the DATA form;
- Postfix's ``smtp-source`` (C, DATA) with the same body length: the sink's own ceiling.

Also runs the edition again with DKIM signing on, and reports the worker's peak RSS.

    .venv/bin/python -m bench.send [--recipients 20000] [--connections 4] [--no-dkim]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.testing import AsyncTestClient

from bench.common import bench_database, seed
from bench.smtp_sink import Sink, smtp_source_rate
from service.app import create_app
from service.delivery.transport import SmtpTransport
from service.mail.compose import EditionMail, Personalisation, prepare
from service.settings import Settings

SECRET = "bench-secret-key-0123456789abcdef"
KEY = "bench-bootstrap-key-0123456789"
# About 20 KB of HTML, like a real newsletter with a few articles.
HTML = (
    "<h1>Partnership briefing</h1><p>Dear {{name}},</p>"
    + "".join(
        f"<h2>Item {i}</h2><p>{'Practice learning and safeguarding updates for partners. ' * 12}</p>" for i in range(25)
    )
    + '<p><a href="{{unsubscribe_url}}">Unsubscribe</a> · <a href="{{preferences_url}}">Preferences</a></p>'
)


def sample_message() -> tuple[bytes, bytes]:
    """One rendered copy, for the baselines' ready-made bytes, and its DATA form."""
    mail = prepare(
        EditionMail(
            subject="Briefing",
            html=HTML,
            text=None,
            from_addr="news@example.org",
            reply_to=None,
            list_id="news.example.org",
            list_name="Newsletter",
        ),
        message_id_domain="example.org",
    )
    return mail.render_data(
        Personalisation(
            to_email="reader1@example.org",
            to_name="Reader 1",
            unsubscribe_url="https://news.example.org/unsubscribe/" + "x" * 40,
            unsubscribe_mailto="mailto:unsubscribe+" + "x" * 40 + "@example.org",
            preferences_url="https://news.example.org/preferences/" + "x" * 30,
            message_id="<1.abc@example.org>",
        )
    )


async def prepared_ceiling(port: int, message: bytes, data: bytes, count: int, connections: int) -> float:
    """Our transport sending the prepared copy (BDAT, or its DATA form where the sink offers no
    CHUNKING) over the same number of connections as the baseline; msg/s."""
    transport = SmtpTransport(f"smtp://127.0.0.1:{port}", size=connections, messages_per_connection=count)
    remaining = count

    async def one_sender() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            outcome = await transport.send("bounce@example.org", "reader@example.org", message, data=data)
            assert outcome.accepted, outcome.reply

    started = time.perf_counter()
    await asyncio.gather(*(one_sender() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    await transport.close()
    return count / elapsed


async def baseline(port: int, message: bytes, count: int, connections: int) -> float:
    """Plain aiosmtplib: the same bytes, the same sink, the same number of connections; msg/s."""
    remaining = count

    async def one_connection() -> None:
        nonlocal remaining
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        while remaining > 0:
            remaining -= 1
            await client.sendmail("bounce@example.org", ["reader@example.org"], message)
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return count / (time.perf_counter() - started)


def worker_env(url: str, port: int, connections: int, dkim_key: Path | None) -> dict[str, str]:
    """Environment for a `letterbox worker` process against the bench database and sink."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env.update(
        {
            "LETTERBOX_DATABASE_URL": url,
            "LETTERBOX_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "LETTERBOX_SECRET_KEYS": SECRET,
            "LETTERBOX_PUBLIC_URL": "https://news.example.org",
            "LETTERBOX_FROM": "news@example.org",
            "LETTERBOX_SMTP_CONCURRENCY": str(connections),
            "LETTERBOX_WORKER_BATCH_SIZE": "500",
            "LETTERBOX_LOG_LEVEL": "warning",
            "LETTERBOX_LOG_FORMAT": "json",
        }
    )
    if dkim_key is not None:
        env |= {"LETTERBOX_DKIM_SELECTOR": "bench", "LETTERBOX_DKIM_KEY_FILE": str(dkim_key)}
    return env


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process and its live children (the DKIM signing
    process) have used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(
        cpu_seconds(int(child)) for child in children)


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def service_run(
    url: str, sink: Sink, count: int, connections: int, key: str, dkim: Path | None
) -> tuple[float, float, float, float]:
    """POST an edition and wait for the last copy; returns (msg/s, POST seconds, worker peak RSS MB,
    worker CPU µs per copy: what one core could do, whatever else the machine is busy with)."""
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, before the timing
        [sys.executable, "-m", "service.cli", "worker"], env=worker_env(url, sink.port, connections, dkim)
    )
    try:
        await asyncio.sleep(1.5)  # let the worker connect and go idle
        sink.reset()
        settings = Settings(
            database_url=url,
            secret_keys=(SECRET,),
            bootstrap_api_key=KEY,
            public_url="https://news.example.org",
            from_addr="news@example.org",
            log_level="warning",
            log_format="json",
        )
        async with AsyncTestClient(create_app(settings)) as client:
            cpu = cpu_seconds(worker.pid)
            started = time.perf_counter()
            response = await client.post(
                "/v1/editions",
                json={"subject": "Briefing", "html": HTML, "lists": ["news"]},
                headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": key},
            )
            posted = time.perf_counter() - started
            assert response.status_code == 202, response.text
            assert response.json()["recipients"] == count, response.text
            while sink.count < count:
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with {worker.returncode}")
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(worker.pid) - cpu
        rss = peak_rss_mb(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    return count / elapsed, posted, rss, cpu / count * 1e6


def dkim_key_file(folder: Path) -> Path:
    """A fresh 2048-bit RSA key in PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--no-dkim", action="store_true")
    args = parser.parse_args()
    sink = Sink()
    try:
        with bench_database() as url:
            asyncio.run(seed(url, args.recipients))
            message, data = sample_message()
            limit = asyncio.run(baseline(sink.port, message, args.recipients, args.connections))
            ceiling = asyncio.run(prepared_ceiling(sink.port, message, data, args.recipients, args.connections))
            data_sink = Sink(chunking=False)
            try:
                data_ceiling = asyncio.run(
                    prepared_ceiling(data_sink.port, message, data, args.recipients, args.connections))
            finally:
                data_sink.stop()
            body = len(message) - message.index(b"\r\n\r\n") - 4
            source = smtp_source_rate(sink, args.recipients, args.connections, body)
            rate, posted, rss, cpu = asyncio.run(
                service_run(url, sink, args.recipients, args.connections, "plain", None)
            )
            print(f"message size                    {len(message):>10,} bytes")
            print(f"baseline: aiosmtplib ready bytes {limit:>10,.0f} msg/s  ({args.connections} connections)")
            print(f"ceiling: our transport, BDAT     {ceiling:>10,.0f} msg/s  = {ceiling / limit:.2f} of the baseline")
            print(f"  the same, pipelined DATA        {data_ceiling:>10,.0f} msg/s  = "
                  f"{data_ceiling / limit:.2f} of the baseline (a sink without CHUNKING)")
            if source is not None:
                print(f"sink's own ceiling: smtp-source  {source:>10,.0f} msg/s  ({body:,}-byte body)")
            print(f"letterbox: POST to last copy     {rate:>10,.0f} msg/s  = {rate / limit:.2f} of the baseline, "
                  f"{rate / ceiling:.2f} of the ceiling ({rate / data_ceiling:.2f} of pipelined DATA's)")
            print(f"  POST answered in               {posted:>10.2f} s for {args.recipients:,} recipients")
            print(f"  worker CPU per copy            {cpu:>10.0f} µs   = {1e6 / cpu:,.0f} copies/s per core")
            print(f"  worker peak RSS                {rss:>10.1f} MB")
            if not args.no_dkim:
                with tempfile.TemporaryDirectory() as folder:
                    key = dkim_key_file(Path(folder))
                    dkim_rate, _, dkim_rss, dkim_cpu = asyncio.run(
                        service_run(url, sink, args.recipients, args.connections, "dkim", key)
                    )
                print(
                    f"letterbox with DKIM (RSA 2048)   {dkim_rate:>10,.0f} msg/s  "
                    f"= {dkim_rate / limit:.2f} of the baseline, {dkim_rate / ceiling:.2f} of the ceiling "
                    f"({dkim_rate / data_ceiling:.2f} of pipelined DATA's), {dkim_rate / rate:.2f} of unsigned  "
                    f"(peak RSS {dkim_rss:.1f} MB)"
                )
                print(f"  worker CPU per copy            {dkim_cpu:>10.0f} µs   (both processes: the event loop "
                      f"and the signing process)")
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
